"""Teachers: train one with torch and export ONNX, or bring any ONNX image classifier.

A teacher is an ONNX model with one image input and one class-score output. How store
pixels become that input is the teacher's :class:`Preprocess` — stored as ONNX metadata
(``labelcast.preprocess``) in files labelcast writes or calibrates, given as a spec
(``--preprocess``) for any other model, or, failing both, guessed from the model's input
shape (and said so). The spec is checked against the model's real input (rank, static
dimensions, layout, dtype): a mismatch is a :class:`ModelError` naming both sides, never
silently wrong scores. Models with a static batch dimension (batch 1 is common in exported
models) are run in batches of that size; models with several inputs or outputs take
``input_name``/``output_name``; models that end in a softmax declare ``output: "probs"`` and
are scored from log-probabilities.

The ground station trains with the device's own building blocks (``receiver.train.lr_at``,
``receiver.export.export_onnx``): one schedule and one ONNX export for teachers and students.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..codec.errors import DecodeError, StorageError
from ..codec.preprocess import PRESETS, Preprocess
from ..codec.storage import atomic_write
from ..receiver.serve import OnnxClassifier, shape_text
from ..results import Calibration, TrainResult

if TYPE_CHECKING:  # torch is imported where it trains: importing this module stays light
    import torch

__all__ = [
    "Preprocess",
    "PRESETS",
    "TeacherConfig",
    "train_teacher",
    "train_and_export",
    "train_confidence",
    "calibrate",
    "export_teacher",
    "Teacher",
    "preprocess_for_data",
]


@dataclass
class TeacherConfig:
    """How the built-in teacher is trained (``train_and_export``).

    Attributes:
        width: channels of the first conv block (doubled in the second)
        epochs: passes over the labelled data
        batch: images per step
        lr: peak AdamW learning rate
        weight_decay: AdamW weight decay
        warmup: fraction of steps with linear warm-up
        seed: seed of the weights, the batch order, the augmentation and the validation split
        augment_shift: max random translation in pixels
        flip: horizontal flips (off for digits)
        preprocess: None: derived from the training images (size, channels, /255)
        precision: auto: bf16 autocast on CPUs with native bf16 (AMX, AVX512-BF16), else fp32; fp32; bf16
        arch: "" (by the data: cnn for images, mlp for feature vectors), cnn, or mlp (vectors only;
              max(256, 16 × width) units in each of its two hidden layers)
        text_arch: text data: fasttext | fasttext-small | textcnn (receiver.text_models)
        tokenizer: text data: codec.text.Tokenizer; None: the default
    """

    width: int = 32
    epochs: int = 12
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup: float = 0.05
    seed: int = 0
    augment_shift: int = 2
    flip: bool = False
    preprocess: Preprocess | None = None
    precision: str = "auto"
    text_arch: str = "fasttext"
    tokenizer: object = None
    arch: str = ""


def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (then autocast trains ~1.5× faster, measured on AMX)."""
    import torch

    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    avx = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    return bool(amx() or avx())


def preprocess_for_data(x: np.ndarray, pp: Preprocess | None = None) -> Preprocess:
    """The preprocessing a teacher trained on ``x`` (N×H×W×C uint8) uses: derived from the data when
    ``pp`` is None; a given ``pp`` must agree with the images' channels (refused otherwise, so colour is
    never averaged away unasked). Its size may differ (the images are resized to it)."""
    c = 1 if x.ndim == 3 else int(x.shape[3])
    if pp is None:
        return Preprocess((int(x.shape[1]), int(x.shape[2])), c, 1 / 255, (0.0,), (1.0,))
    if pp.channels != c:
        raise ValueError(
            f"the preprocessing says {pp.channels} channel(s) but the images have {c}; "
            "pass preprocess=None to derive it from the data"
        )
    return pp


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


def _check_labels(y: np.ndarray, classes: int) -> None:
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=classes)
    if classes < 2:
        raise ValueError("a classifier needs at least two classes; the data has one")
    if counts.size > classes or (counts == 0).any():
        empty = np.flatnonzero(counts[:classes] == 0).tolist()
        raise ValueError(f"classes {empty} have no training images (or labels exceed the {classes} classes)")


def train_teacher(x: np.ndarray, y: np.ndarray, classes: int, cfg: TeacherConfig | None = None, progress=None):
    """Train the built-in teacher CNN on uint8 images; returns the torch model (eval mode)."""
    import torch

    from ..receiver.loop import Schedule, train_loop

    cfg = cfg or TeacherConfig()
    _check_labels(y, classes)
    torch.manual_seed(cfg.seed)
    pp = preprocess_for_data(x, cfg.preprocess)
    if pp.layout != "nchw":
        raise ValueError("the built-in teacher trains on nchw input; drop layout from the preprocessing")
    model = _build(classes, pp.channels, cfg.width).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = Schedule(len(x), cfg.batch, cfg.epochs, cfg.lr, cfg.warmup, cfg.seed)
    model.train()
    train_loop(opt, _teacher_step(model, opt, x, y, pp, cfg, sched), sched, progress=progress)
    model.eval()
    return model.to(memory_format=torch.contiguous_format)


def _teacher_step(model, opt, x: np.ndarray, y: np.ndarray, pp: Preprocess, cfg: TeacherConfig, sched):
    """One step: the batch (preprocessed up front, or read batch by batch from a memory-mapped cache of a
    large folder, never all in RAM), augmented, forward in bf16 where the CPU computes it natively."""
    import torch
    import torch.nn.functional as F

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cpu_bf16())
    streamed = isinstance(x, np.memmap)
    xs = x if streamed else torch.from_numpy(pp.apply(x))
    ys = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def step_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        if streamed:  # in file order: the memory map reads forward
            idx = torch.from_numpy(np.sort(idx.numpy()))
            xb = torch.from_numpy(pp.apply(xs[idx.numpy()]))
        else:
            xb = xs[idx]
        xb = _augment(xb, cfg.augment_shift, cfg.flip, sched.rng(step))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(xb.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(out.float(), ys[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step_fn


def _augment(xb, shift: int, flip: bool, rng: np.random.Generator):
    """Padded random crop (edge pixels repeated, nothing wraps around) and optional flips."""
    from ..receiver.train import random_crop

    if shift:
        xb = random_crop(xb, shift, rng)
    if flip and rng.random() < 0.5:
        import torch

        xb = torch.flip(xb, dims=(3,))
    return xb


def export_teacher(
    model, path: str | os.PathLike, preprocess: Preprocess, classes: list[str], meta: dict | None = None
):
    """Export a torch classifier to one self-contained ONNX file with labelcast metadata (class names)."""
    from ..receiver.export import export_onnx

    export_onnx(model, path, preprocess, len(classes), {"classes": list(classes), **(meta or {})})
    return Path(path)


def _meta_probability(meta: dict, key: str) -> float | None:
    try:
        v = float(json.loads(meta[key]))
    except (KeyError, ValueError, TypeError):
        return None
    return v if 0.0 < v <= 1.0 else None


class Teacher(OnnxClassifier):
    """Any ONNX image classifier as a teacher (see :class:`labelcast.receiver.serve.OnnxClassifier` for the
    preprocessing, input checks and static batches), with what the ground needs beside: its median
    confidence on its own data (``send --strategy auto``) and a description for ``teacher inspect``."""

    def __init__(
        self,
        path: str | os.PathLike,
        preprocess: Preprocess | str | dict | None = None,
        threads: int = 0,
        *,
        input_name: str | None = None,
        output_name: str | None = None,
        providers: str | list[str] | None = "cpu",
    ):
        super().__init__(path, preprocess, threads, input_name=input_name, output_name=output_name, providers=providers)
        #: median max-softmax on the teacher's training data (``teacher train``/``calibrate``); None if unknown
        self.confidence = _meta_probability(self.meta, "labelcast.train_confidence")

    def describe(self) -> dict:
        """What ``teacher inspect`` shows."""
        return {
            "model": str(self.path),
            "modality": self.modality,
            "input": {
                "name": self.input_name,
                "shape": shape_text(self.input_shape),
                "layout": getattr(self.preprocess, "layout", "token ids"),
            },
            "outputs": [
                {"name": o.name, "shape": shape_text(o.shape) if o.shape else o.type}
                for o in self.session.get_outputs()
            ],
            "output_used": self.output_name,
            "static_batch": self.static_batch,
            "classes": self.num_classes,
            "class_names": self.classes,
            "preprocess": json.loads(self.preprocess.to_json()),
            "preprocess_source": self.spec_source,
            "train_confidence": self.confidence,
            "provider": self.provider,
            "notes": self.notes,
        }


def is_text(x) -> bool:
    """Whether ``x`` holds text items (an object array or list of UTF-8 bytes/str) rather than images."""
    return isinstance(x, list) or np.dtype(getattr(x, "dtype", np.uint8)) == np.dtype(object)


def train_text_teacher(x, y, classes: list[str], out: str | os.PathLike, cfg: TeacherConfig, progress=None):
    """The text teacher (``cfg.text_arch``, a fastText-style bag by default) on labelled text, exported to
    ``out`` with its tokenizer (``labelcast.tokenizer``), class names and training-data confidence."""
    import torch

    from ..codec.text import DEFAULT_TOKENIZER, TextPreprocess
    from ..receiver.text_models import TextTrainConfig, build_text_model, train_text
    from .selection import median_confidence

    _check_labels(y, len(classes))
    tp = TextPreprocess(cfg.tokenizer or DEFAULT_TOKENIZER)
    tokens = tp.apply(list(x))
    torch.manual_seed(cfg.seed)
    model = build_text_model(cfg.text_arch, tp.tokenizer.vocab, len(classes))
    tcfg = TextTrainConfig(train_samples=cfg.epochs * len(tokens), min_epochs=1, seed=cfg.seed)
    t0 = time.time()
    train_text(model, tokens, np.asarray(y, dtype=np.int64), tcfg, progress=progress)
    with torch.no_grad():
        z = np.concatenate([model(torch.from_numpy(tokens[s : s + 4096])).numpy() for s in range(0, len(tokens), 4096)])
    meta = {
        "trained_seconds": round(time.time() - t0, 2),
        "train_confidence": round(median_confidence(z), 6),
        "arch": cfg.text_arch,
    }
    export_teacher(model, out, tp, classes, meta)
    return model


def holdout_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): ``fraction`` of every class held back (at least one item of a class with
    two or more), seeded; ``fraction`` 0 holds back nothing."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the validation fraction must be in [0, 1), not {fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng([seed, 7])
    val = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = int(round(fraction * len(idx)))
        val.append(idx[: max(n, 1 if fraction and len(idx) >= 2 else 0)])
    held = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(y)), held), held


@contextlib.contextmanager
def take_rows(x: np.ndarray, idx: np.ndarray):
    """``x[idx]`` — for data memory-mapped from disk, a temporary memory-mapped copy beside it (copied in
    chunks, removed afterwards), so a large folder never has to fit in RAM."""
    if len(idx) == len(x) and np.array_equal(idx, np.arange(len(x))):
        yield x
        return
    if not isinstance(x, np.memmap) or not getattr(x, "filename", None):
        yield x[idx]
        return
    fd, name = tempfile.mkstemp(suffix=".npy", dir=os.path.dirname(x.filename))
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(name, mode="w+", dtype=x.dtype, shape=(len(idx), *x.shape[1:]))
        for s in range(0, len(idx), 4096):
            out[s : s + 4096] = x[idx[s : s + 4096]]
        out.flush()
        yield np.load(name, mmap_mode="r")
    finally:
        os.unlink(name)


def train_and_export(
    x,
    y,
    classes: list[str],
    out: str | os.PathLike,
    cfg: TeacherConfig | None = None,
    progress=None,
    *,
    validation: float = 0.0,
) -> TrainResult:
    """Train the built-in teacher on uint8 images ``x`` with labels ``y``, export it to ``out`` (ONNX with
    its preprocessing, class names and training-data confidence). Text ``x`` (an object array of UTF-8
    items, from ``load_labelled`` on a text source) trains the text teacher; N × D float32/float16 feature
    vectors (a vector store's kind of item) train the MLP teacher (:func:`train_vector_teacher`).

    ``validation``: the share of every class held back (seeded by ``cfg.seed``) and scored on the exported
    model. Returns the torch model (``.model``), the epochs run, items trained on and that accuracy."""
    from ..codec.preprocess import check_images
    from ..codec.storage import check_space

    cfg = cfg or TeacherConfig()
    check_images(x, y, classes)  # uint8 NHWC, one label each, one name a class: before any work
    if Path(out).is_dir():
        raise ValueError(f"{out} is a folder; give the .onnx file to write")
    check_space(Path(out).absolute().parent, 1 << 20, what=f"the teacher {out}")  # writable, before training
    y = np.asarray(y)
    tr, va = holdout_split(y, validation, cfg.seed)
    t0 = time.time()
    with take_rows(x, tr) as xt:
        model = _train_export(xt, y[tr], classes, out, cfg, progress)
    res = TrainResult(
        model,
        path=str(out),
        classes=list(classes),
        items=int(len(tr)),
        epochs=cfg.epochs,
        seconds=round(time.time() - t0, 2),
    )
    if len(va):
        from ..receiver.evaluate import evaluate

        chunks = [va[s : s + 4096] for s in range(0, len(va), 4096)]  # a large folder stays on disk
        acc = sum(evaluate(out, x[c], y[c])["accuracy"] * len(c) for c in chunks) / len(va)
        res["validation"] = {"items": int(len(va)), "fraction": validation, "accuracy": round(acc, 4)}
    return res


def _train_export(x, y: np.ndarray, classes: list[str], out, cfg: TeacherConfig, progress):
    if is_text(x):
        return train_text_teacher(x, y, classes, out, cfg, progress)
    vectors = np.asarray(x).ndim == 2
    if cfg.arch not in ("", "cnn", "mlp") or (cfg.arch == "mlp") != vectors and cfg.arch:
        raise ValueError(
            f"--arch {cfg.arch}: the built-in teachers are cnn (images) and mlp (feature vectors); the data holds "
            f"{'vectors' if vectors else 'images'}"
        )
    if vectors:
        return train_vector_teacher(x, y, classes, out, cfg, progress)
    pp = preprocess_for_data(x, cfg.preprocess)
    cfg = replace(cfg, preprocess=pp)
    t0 = time.time()
    model = train_teacher(x, y, len(classes), cfg, progress)
    meta = {
        "trained_seconds": round(time.time() - t0, 2),
        "train_confidence": train_confidence(model, x, pp),
    }
    export_teacher(model, out, pp, classes, meta)
    return model


def train_vector_teacher(
    x: np.ndarray, y: np.ndarray, classes: list[str], out, cfg: TeacherConfig, progress=None
) -> torch.nn.Module:
    """The vector teacher: an MLP (two hidden layers of ``max(256, 16 × width)`` units, dropout 0.1) on
    N × D float features standardised per feature (the fitted mean/std travel in the ONNX metadata as a
    ``{"vector": …}`` spec), AdamW with warm-up and cosine decay, label smoothing 0.05."""
    import torch
    import torch.nn.functional as F

    from ..codec.preprocess import VectorPreprocess
    from ..receiver.loop import Schedule, train_loop
    from ..receiver.students import mlp

    _check_labels(y, len(classes))
    torch.manual_seed(cfg.seed)
    pp = cfg.preprocess if isinstance(cfg.preprocess, VectorPreprocess) else VectorPreprocess.fitted(x)
    model = mlp(1, len(classes), (1, pp.dim), width=max(256, 16 * cfg.width), hidden=2)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = Schedule(len(x), cfg.batch, cfg.epochs, cfg.lr, cfg.warmup, cfg.seed)
    xs = torch.from_numpy(pp.apply(np.asarray(x)))
    ys = torch.from_numpy(np.asarray(y, dtype=np.int64))

    def step_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(model(xs[idx]), ys[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    t0 = time.time()
    model.train()
    train_loop(opt, step_fn, sched, progress=progress)
    model.eval()
    meta = {"trained_seconds": round(time.time() - t0, 2), "train_confidence": train_confidence(model, x, pp)}
    export_teacher(model, out, pp, classes, meta)
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
    preprocess: Preprocess | str | dict | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    batch: int = 1024,
    classes: list[str] | None = None,
) -> Calibration:
    """Describe any ONNX teacher once: measure its median max-softmax on images of its own domain ``x``
    (uint8 N×H×W×C, e.g. its training or validation data) and store it as ``labelcast.train_confidence``,
    with its preprocessing (``labelcast.preprocess``, and the chosen input/output names), in ``out``
    (default: the model file itself, replaced atomically). Every later command then needs no flag.

    ``classes``: the names of its outputs, in output order, stored as ``labelcast.classes`` (JSON list):
    payloads then carry them to the devices, and ``evaluate`` matches data to the model by name."""
    import onnx

    from .selection import median_confidence

    src = Path(model)
    if len(x) == 0:
        raise ValueError("calibration needs at least one image")
    t = Teacher(src, preprocess, input_name=input_name, output_name=output_name)
    names = _check_names(classes, t)
    conf = round(median_confidence(np.concatenate([t.logits(x[s : s + batch]) for s in range(0, len(x), batch)])), 6)
    try:
        m = onnx.load(str(src))
    except Exception as e:  # onnx raises its own types
        raise DecodeError(f"cannot read {src} as ONNX: {e}") from e
    new = {
        "labelcast.train_confidence": json.dumps(conf),
        f"labelcast.{'tokenizer' if t.modality == 'text' else 'preprocess'}": t.preprocess.to_json(),
        "labelcast.input": json.dumps(t.input_name),
        "labelcast.output": json.dumps(t.output_name),
        **({"labelcast.classes": json.dumps(names)} if names else {}),
    }
    keep = [(p.key, p.value) for p in m.metadata_props if p.key not in new]
    del m.metadata_props[:]
    for k, v in [*keep, *new.items()]:
        e = m.metadata_props.add()
        e.key, e.value = k, v
    dst = Path(out) if out is not None else src
    try:
        atomic_write(dst, m.SerializeToString(), what=f"model {dst}")
    except StorageError as e:
        raise StorageError(f"{e}; {src} is unchanged") from e
    return Calibration(
        model=str(dst),
        images=int(len(x)),
        train_confidence=conf,
        preprocess=json.loads(t.preprocess.to_json()),
        classes=names or t.classes,
        notes=list(t.notes),
    )


def _check_names(classes: list[str] | None, t: Teacher) -> list[str] | None:
    """The class names to store: one line each, one per output the model scores."""
    if classes is None:
        return None
    names = [str(c) for c in classes]
    if t.num_classes and len(names) != t.num_classes:
        raise ValueError(f"{len(names)} class names for a model with {t.num_classes} outputs; give one per output")
    if any("\n" in n or not n for n in names) or len(set(names)) != len(names):
        raise ValueError("class names must be distinct, non-empty and one line each")
    return names
