"""Teacher metadata: the training-data confidence that ``send --strategy auto`` reads, and ``calibrate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _foreign_model(path: Path) -> Path:
    """A tiny classifier exported like any third-party ONNX file: a plain torch.onnx.export, no labelcast
    metadata at all (preprocessing, classes or confidence)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 8, 4)).eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, 8, 8),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        dynamo=False,
    )
    return path


def test_train_and_export_stores_the_confidence_and_teacher_reads_it(tmp_path: Path):
    from labelcast.codec.preprocess import Preprocess
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.zeros((300, 8, 8, 1), np.uint8)
    x[np.arange(300), y * 2, :, 0] = 255  # a bright row per class: easy to learn
    cfg = TeacherConfig(epochs=3, width=8, preprocess=Preprocess(8, 1, 1 / 255, (0.0,), (1.0,)))
    train_and_export(x, y, ["r0", "r2", "r4"], tmp_path / "t.onnx", cfg)
    t = Teacher(tmp_path / "t.onnx")
    assert t.confidence is not None and 1 / 3 < t.confidence <= 1.0


def test_calibrate_writes_the_figure_once_and_keeps_the_rest(tmp_path: Path):
    from labelcast.sender.selection import softmax
    from labelcast.sender.teacher import Teacher, calibrate

    src = _foreign_model(tmp_path / "foreign.onnx")
    before = src.read_bytes()
    t = Teacher(src)
    assert t.confidence is None  # auto treats such a pool as near
    x = np.random.default_rng(1).integers(0, 256, (500, 8, 8, 1), dtype=np.uint8)
    want = float(np.median(softmax(t.logits(x)).max(1)))
    out = tmp_path / "calibrated.onnx"
    got = calibrate(src, x, out, batch=128).train_confidence
    assert abs(got - want) < 1e-5 and src.read_bytes() == before  # the source is left alone
    c = Teacher(out)
    assert c.confidence == pytest.approx(got) and c.spec_source == "stored" and not c.notes  # nothing guessed now
    again = calibrate(out, x[:100]).train_confidence  # in place; the key is replaced, not added twice
    import onnx

    keys = [p.key for p in onnx.load(str(out)).metadata_props]
    assert keys.count("labelcast.train_confidence") == 1 and Teacher(out).confidence == pytest.approx(again)


def test_calibrate_refuses_bad_input(tmp_path: Path):
    from labelcast.codec.errors import DecodeError
    from labelcast.sender.teacher import calibrate

    src = _foreign_model(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="at least one image"):
        calibrate(src, np.empty((0, 8, 8, 1), np.uint8))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(DecodeError):
        calibrate(junk, np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="preprocessing spec"):
        calibrate(src, np.zeros((4, 8, 8, 1), np.uint8), preprocess="no-such-preset")
