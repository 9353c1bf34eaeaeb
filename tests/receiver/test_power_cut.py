"""SIGKILL during training, then `receive --resume`: the same model as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.keys import generate_keypair, load_private_key
from labelcast.receiver.evaluate import evaluate
from tests.conftest import signed_payload
from tests.receiver.test_watch import learnable_store

ENV = {**os.environ, "LABELCAST_PROGRESS": "0"}


def _cmd(tmp: Path, out: str, state: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "labelcast",
        "receive",
        str(tmp / "p.lcst"),
        "--reference",
        str(tmp / "ref"),
        "--trust",
        str(tmp / "keys" / "sender.pub"),
        "--out",
        str(tmp / out),
        "--state",
        str(tmp / state),
        "--train-samples",
        "15000",
        "--json",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("start", ["scratch", "pretrained, last:2", "semi-supervised round"])
def test_sigkill_during_training_then_resume_matches_uninterrupted(tmp_path, start):
    store, y = learnable_store(tmp_path / "ref")
    extra: tuple[str, ...] = ("--semi", "off")
    if start == "semi-supervised round":
        extra = ("--semi", "on")  # killed in round 2: round 1's final checkpoint and round 2's own resume
    elif start != "scratch":
        from labelcast.sender.pretrain import PretrainConfig, pretrain

        pretrain(tmp_path / "ref", cfg=PretrainConfig(pseudo_classes=8, train_samples=3000))
        extra = ("--finetune", "last:2")  # the store's backbone is the default start
    priv, pub = generate_keypair(tmp_path / "keys")
    idx = np.sort(np.random.default_rng(0).choice(store.n, 600, replace=False))
    data = signed_payload(store, load_private_key(priv), idx, y[idx], 4, segments=None)
    (tmp_path / "p.lcst").write_bytes(data)
    t = time.time()
    whole = subprocess.run(_cmd(tmp_path, "whole", "s1", *extra), env=ENV, check=True, capture_output=True, text=True)
    if "--finetune" in extra:
        assert json.loads(whole.stdout.splitlines()[-1])["training"]["init"]["tensors"] > 0
    full = time.time() - t

    proc = subprocess.Popen(
        _cmd(tmp_path, "cut", "s2", *extra), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ck = tmp_path / "cut" / ".work" / ("checkpoint-semi.pt" if "on" in extra else "checkpoint.pt")
    end = time.time() + full * 3
    while not ck.exists() and time.time() < end:  # kill once training has checkpointed at least once
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ck.exists() and not (tmp_path / "cut" / "student.onnx").exists()
    assert (
        json.loads((tmp_path / "s2" / next(p.name for p in (tmp_path / "s2").glob("key-*.json"))).read_text())[
            "accepted"
        ]
        == 0
    )  # the replay state was not advanced by the unfinished run
    r = subprocess.run(_cmd(tmp_path, "cut", "s2", "--resume", *extra), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    x = np.asarray(store.items)
    a = evaluate(tmp_path / "whole" / "student.onnx", x, y)["accuracy"]
    b = evaluate(tmp_path / "cut" / "student.onnx", x, y)["accuracy"]
    assert abs(a - b) <= 0.005, (a, b)
    if "on" in extra:
        assert json.loads(r.stdout.splitlines()[-1])["semi"]["ran"] is True
    import torch

    w1, w2 = (torch.load(next((tmp_path / s / "chains").rglob("model-*.pt")), weights_only=True) for s in ("s1", "s2"))
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1), "resumed weights differ"
