"""Evaluate an ONNX classifier with ONNX Runtime on labelled uint8 images."""

from __future__ import annotations

import os

import numpy as np

from ..codec.errors import DecodeError
from ..codec.preprocess import PRESETS, Preprocess

__all__ = ["evaluate", "load_session"]


def load_session(path: str | os.PathLike):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise DecodeError(f"cannot load {path} with ONNX Runtime: {e}") from e
    meta = sess.get_modelmeta().custom_metadata_map
    if "labelcast.preprocess" in meta:
        pp = Preprocess.from_json(meta["labelcast.preprocess"])
    else:
        shp = sess.get_inputs()[0].shape
        pp = PRESETS["imagenet"] if shp[1:] == [3, 224, 224] else Preprocess(int(shp[2]), int(shp[1]))
    return sess, pp


def evaluate(path: str | os.PathLike, x: np.ndarray, y: np.ndarray, batch: int = 512) -> dict:
    sess, pp = load_session(path)
    name = sess.get_inputs()[0].name
    correct = 0
    per_class = np.zeros((2, int(y.max()) + 1 if y.size else 0), dtype=np.int64)
    for s in range(0, x.shape[0], batch):
        pred = sess.run(None, {name: pp.apply(np.asarray(x[s : s + batch]))})[0].argmax(1)
        yy = y[s : s + batch]
        correct += int((pred == yy).sum())
        np.add.at(per_class[0], yy, pred == yy)
        np.add.at(per_class[1], yy, 1)
    acc = correct / max(1, x.shape[0])
    return {
        "accuracy": round(acc, 4),
        "items": int(x.shape[0]),
        "per_class_accuracy": [round(float(a / max(b, 1)), 4) for a, b in zip(*per_class, strict=False)],
    }
