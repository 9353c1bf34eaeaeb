"""Teachers: train one with torch and export ONNX, or load any ONNX image classifier.

A teacher is an ONNX model with one image input (N×C×H×W float) and one logits
output (N×classes). How store pixels become that input is the teacher's
:class:`Preprocess`, stored as ONNX metadata (``labelcast.preprocess``) in the
files labelcast writes and read back from them; other models take a preset.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codec.preprocess import PRESETS, Preprocess

__all__ = [
    "Preprocess",
    "PRESETS",
    "TeacherConfig",
    "train_teacher",
    "train_confidence",
    "calibrate",
    "export_onnx",
    "Teacher",
]


@dataclass
class TeacherConfig:
    width: int = 32  # channels of the first conv block (doubled in the second)
    epochs: int = 12  # passes over the labelled data
    batch: int = 128  # images per step
    lr: float = 3e-3  # peak AdamW learning rate
    weight_decay: float = 5e-4
    warmup: float = 0.05  # fraction of steps with linear warm-up
    seed: int = 0
    augment_shift: int = 2  # max random translation in pixels
    flip: bool = False  # horizontal flips (off for digits)
    preprocess: Preprocess = field(default_factory=Preprocess)


def _build(classes: int, channels: int, width: int):
    """Conv 5×5 → pool → conv → pool → conv → global pool → linear (~8M MACs at 28×28, width 32)."""
    import torch.nn as nn

    w = width

    def block(i, o, k=3):
        return [nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(channels, w, 5),
        nn.MaxPool2d(2),
        *block(w, 2 * w),
        nn.MaxPool2d(2),
        *block(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(4 * w, classes),
    )


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up then cosine decay to zero; a pure function of the step."""
    w = max(1, int(total * warmup))
    if step < w:
        return peak * (step + 1) / w
    return peak * 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def train_teacher(x: np.ndarray, y: np.ndarray, classes: int, cfg: TeacherConfig | None = None, progress=None):
    """Train the built-in teacher CNN on uint8 images; returns the torch model (eval mode)."""
    import torch
    import torch.nn.functional as F

    cfg = cfg or TeacherConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pp = cfg.preprocess
    model = _build(classes, pp.channels, cfg.width)
    xs = torch.from_numpy(pp.apply(x))
    ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per = math.ceil(len(xs) / cfg.batch)
    total = steps_per * cfg.epochs
    step = 0
    model.train()
    for _ in range(cfg.epochs):
        perm = torch.from_numpy(rng.permutation(len(xs)))
        for b in range(steps_per):
            idx = perm[b * cfg.batch : (b + 1) * cfg.batch]
            xb = _augment(xs[idx], cfg.augment_shift, cfg.flip, rng)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg.lr, cfg.warmup)
            loss = F.cross_entropy(model(xb), ys[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if progress:
                progress(1)
    model.eval()
    return model


def _augment(xb, shift: int, flip: bool, rng: np.random.Generator):
    import torch

    if shift:
        dx, dy = rng.integers(-shift, shift + 1, size=2)
        xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
    if flip and rng.random() < 0.5:
        xb = torch.flip(xb, dims=(3,))
    return xb


def export_onnx(model, path: str | os.PathLike, preprocess: Preprocess, classes: list[str], meta: dict | None = None):
    """Export a torch classifier to one self-contained ONNX file with labelcast metadata."""
    import onnx
    import torch

    path = Path(path)
    dummy = torch.zeros(2, preprocess.channels, preprocess.size, preprocess.size)
    tmp = path.with_name(path.name + ".tmp.onnx")
    _quiet_export(model, dummy, tmp)
    m = onnx.load(str(tmp))
    props = {"labelcast.preprocess": preprocess.to_json(), "labelcast.classes": json.dumps(classes)}
    for k, v in (meta or {}).items():
        props[f"labelcast.{k}"] = json.dumps(v)
    for k, v in props.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    os.replace(tmp, path)
    return path


def _quiet_export(model, dummy, path: Path) -> None:
    """torch.export-based ONNX export to one self-contained file (no .onnx.data side file)."""
    import contextlib
    import io
    import logging
    import warnings

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _meta_probability(meta: dict, key: str) -> float | None:
    try:
        v = float(json.loads(meta[key]))
    except (KeyError, ValueError, TypeError):
        return None
    return v if 0.0 < v <= 1.0 else None


class Teacher:
    """An ONNX Runtime session over any image classifier, with its preprocessing."""

    def __init__(self, path: str | os.PathLike, preprocess: Preprocess | str | None = None, threads: int = 0):
        import onnxruntime as ort

        from ..codec.errors import DecodeError

        self.path = Path(path)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types
            raise DecodeError(f"cannot load teacher {self.path} with ONNX Runtime: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if isinstance(preprocess, str):
            if preprocess not in PRESETS:
                raise ValueError(f"unknown preprocess preset {preprocess!r}; known: {', '.join(PRESETS)}")
            preprocess = PRESETS[preprocess]
        if preprocess is None and "labelcast.preprocess" in meta:
            preprocess = Preprocess.from_json(meta["labelcast.preprocess"])
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            raise ValueError(f"{self.path}: a teacher needs one N×C×H×W image input, found {[i.shape for i in inp]}")
        shp = inp[0].shape
        if preprocess is None:
            c = shp[1] if isinstance(shp[1], int) else 3
            s = shp[2] if isinstance(shp[2], int) else 224
            preprocess = (
                PRESETS["imagenet"] if (c, s) == (3, 224) else Preprocess(s, c, 1 / 255, (0.0,) * c, (1.0,) * c)
            )
        for want, got, what in ((preprocess.channels, shp[1], "channels"), (preprocess.size, shp[2], "height")):
            if isinstance(got, int) and got != want:
                raise ValueError(f"{self.path}: model input has {got} {what}, preprocessing gives {want}")
        self.preprocess = preprocess
        self.input_name = inp[0].name
        self.classes = json.loads(meta["labelcast.classes"]) if "labelcast.classes" in meta else None
        #: median max-softmax on the teacher's training data (``teacher train`` writes it); None if unknown
        self.confidence = _meta_probability(meta, "labelcast.train_confidence")
        out = self.session.get_outputs()[0].shape
        self.num_classes = out[1] if isinstance(out[1], int) else (len(self.classes) if self.classes else None)

    def logits(self, x_uint8: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: self.preprocess.apply(x_uint8)})[0]


def train_and_export(x, y, classes: list[str], out: str | os.PathLike, cfg: TeacherConfig | None = None, progress=None):
    cfg = cfg or TeacherConfig()
    t0 = time.time()
    model = train_teacher(x, y, len(classes), cfg, progress)
    meta = {
        "trained_seconds": round(time.time() - t0, 2),
        "train_confidence": train_confidence(model, x, cfg.preprocess),
    }
    export_onnx(model, out, cfg.preprocess, classes, meta)
    return model


def train_confidence(model, x: np.ndarray, preprocess: Preprocess, batch: int = 1024) -> float:
    """Median max-softmax probability of a trained model over its training images (eval mode).

    Stored as ``labelcast.train_confidence``; ``send --strategy auto`` compares the pool's
    median against it to tell a near pool from a far one."""
    import torch

    from .selection import median_confidence

    with torch.no_grad():
        z = [model(torch.from_numpy(preprocess.apply(x[s : s + batch]))).numpy() for s in range(0, len(x), batch)]
    return round(median_confidence(np.concatenate(z)), 6)


def calibrate(
    model: str | os.PathLike,
    x: np.ndarray,
    out: str | os.PathLike | None = None,
    *,
    preprocess: Preprocess | str | None = None,
    batch: int = 1024,
) -> float:
    """Measure any ONNX teacher's median max-softmax on images of its own domain ``x`` (uint8
    N×H×W×C, e.g. its training or validation data) and store it as ``labelcast.train_confidence``
    in ``out`` (default: the model file itself, replaced atomically), so that
    ``send --strategy auto`` can tell near pools from far ones. Returns the figure."""
    import onnx

    from ..codec.errors import DecodeError, StorageError
    from .selection import median_confidence

    src = Path(model)
    if len(x) == 0:
        raise ValueError("calibration needs at least one image")
    t = Teacher(src, preprocess)
    conf = round(median_confidence(np.concatenate([t.logits(x[s : s + batch]) for s in range(0, len(x), batch)])), 6)
    try:
        m = onnx.load(str(src))
    except Exception as e:  # onnx raises its own types
        raise DecodeError(f"cannot read {src} as ONNX: {e}") from e
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != "labelcast.train_confidence"]
    del m.metadata_props[:]
    for k, v in keep:
        e = m.metadata_props.add()
        e.key, e.value = k, v
    e = m.metadata_props.add()
    e.key, e.value = "labelcast.train_confidence", json.dumps(conf)
    dst = Path(out) if out is not None else src
    tmp = dst.with_name(dst.name + ".tmp.onnx")
    try:
        onnx.save(m, str(tmp))
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {dst}: {e.strerror}; {src} is unchanged") from e
    return conf
