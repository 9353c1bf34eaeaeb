"""The README's Python snippet runs as written (paths aside) on a small folder of a user's own images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[2] / "README.md"


def _images(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for c, kind in enumerate(("dark", "mid", "bright")):
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (20, 20, 3)) + 80 * c
            img[5 + c * 4 : 9 + c * 4, :] = 255  # a band whose place tells the class
            Image.fromarray(img.astype(np.uint8)).save(root / kind / f"{i:03d}.png")
    return root


@pytest.mark.slow  # end to end, 7–20 s: make test-slow
def test_the_readme_python_snippet_runs_on_a_small_folder(tmp_path, monkeypatch):
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "train_and_export" in snippet and "send(" in snippet and "receive(" in snippet
    labelled = _images(tmp_path / "labelled", 30, 0)
    pool = _images(tmp_path / "pool", 40, 1)
    snippet = snippet.replace("/data/labelled", str(labelled)).replace("/data/pool", str(pool))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABELCAST_STATE_DIR", str(tmp_path / "never-used"))  # the snippet names its own
    # the suite's time, not the snippet's: the device's recipe on a short schedule (its default is 100k images)
    from dataclasses import replace

    import labelcast.receiver.receive as rr

    real = rr._student_config
    monkeypatch.setattr(rr, "_student_config", lambda *a, **k: replace(real(*a, **k), train_samples=4000))
    ns: dict = {}
    exec(compile(snippet, str(README), "exec"), ns)
    rep, got = ns["rep"], ns["got"]
    assert rep.framed_bytes <= 4096 and rep.labels > 0 and ns["teacher"].validation_items > 0
    assert (tmp_path / "device" / "student.onnx").is_file() and got["student"]
    # class names travel by default: the device's student says which class, by name
    from labelcast.receiver.serve import load_classifier

    assert rep.class_names_sent and load_classifier(tmp_path / "device" / "student.onnx").classes == ns["names"]
    assert (tmp_path / "state").is_dir() and not (tmp_path / "never-used").exists()
