"""The selection benchmark keeps working against today's encoder, framer and trainer, and renders what it ran."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import selection  # noqa: E402

from labelcast.profiles import load_link  # noqa: E402


def _env(n: int = 600, classes: int = 4) -> dict:
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    x = (rng.integers(0, 40, (n, 28, 28, 1)) + 50 * y[:, None, None, None]).astype(np.uint8)
    logits = np.eye(classes, dtype=np.float32)[y] * 4 + rng.normal(0, 1, (n, classes)).astype(np.float32)
    return dict(
        clusters=0,
        x=x,
        segs=np.array([n // 2, n - n // 2]),
        logits={"teacher": logits, "detector": logits},
        xte=x[:100],
        yte=y[:100],
        xval=x[100:200],
        yval=y[100:200],
        teacher_acc=0.9,
        classes=classes,
        key=Ed25519PrivateKey.from_private_bytes(bytes(32)),
    )


def test_one_run_fits_the_framed_budget_trains_and_renders():
    env, link = _env(), load_link("iridium-sbd-mt")
    rows = [
        selection.run_one(env, name, 540, seed, link, 400, {"min_epochs": 1, "max_epochs": 2})
        for name in ("random+quota", "energy-high+quota+soft4-T2")
        for seed in (0, 1)
    ]
    for r in rows:
        assert 0 < r["k"] <= 600 and r["framed_B"] <= 540 and 0 <= r["accuracy"] <= 1 and r["val_accuracy"] is not None
    soft = [r for r in rows if "soft" in r["strategy"]]
    assert soft[0]["k"] < rows[0]["k"]  # soft labels cost bytes per item
    blocks = selection.render({"scenarios": {"toy": {"teacher_accuracy": 0.9, "runs": rows}}})
    table = blocks["selection:toy"]
    assert "| random+quota |" in table and "energy-high+quota + soft labels (E 4, T 2)" in table
    assert table.count("| **") == 1  # one bold cell: the best on validation at the one budget
