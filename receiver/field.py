"""The device's view of its own field: a sketch of its unlabelled captures, and its class mix adapted to them.

:func:`field_sketch` reads any source form (a folder of captures is the usual one) at the store's item size
and writes the sketch ``send --field`` reads (``codec.field``: ≤ 64 bytes for 32 groups). :func:`adapt_prior`
re-estimates the class prior of the field data from the student's own outputs (EM, Saerens, Latinne and
Decaestecker 2002) and gives the bias ``log(π_field / π_train)`` the exported student adds to its logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.field import Sketch, encode_sketch, make_sketch
from ..codec.manifest import ReferenceStore
from ..codec.storage import atomic_write

__all__ = [
    "field_images",
    "field_sketch",
    "adapt_prior",
    "with_logit_bias",
    "PRIOR_ITERS",
    "PRIOR_TOL",
    "PRIOR_MIN_CONFIDENCE",
]

PRIOR_ITERS = 100  # EM steps at most
PRIOR_TOL = 1e-6  # stop when no class prior moves more than this
# EM re-estimates the prior from the student's own posteriors, which must be near calibrated for it to work: when
# the student's median top probability over the field is below this, the device keeps its outputs. Chosen where
# EM's estimate misses the field's known class mix (train-split field folders): fashion's students (0.90–0.97
# at 270 B–1 KiB) find it; on the far digits pool the students (0.46–0.60 at 270 B–1 KiB) put 0.35–1.0 of the
# prior on one or two classes of a uniform or four-class field
PRIOR_MIN_CONFIDENCE = 0.75


def field_images(source, store: ReferenceStore, limit: int = 20_000):
    """The field data as the store holds items, at most ``limit`` items spread evenly over the source: uint8
    N×H×W×C images at the store's size and channels; a text store's normalised UTF-8 items; a vector store's
    N×D floats (the same D)."""
    if isinstance(source, np.ndarray | list):
        return source
    from ..datasets.sources import open_source

    if store.kind == "image":
        h, w, c = store.manifest.item_shape
        src = open_source(str(source), (h, w), c)
    else:
        src = open_source(str(source))
    if src.kind != store.kind:
        raise SourceError(f"{source} holds {src.kind} items; the store's field sketches are made from {store.kind}")
    if store.kind == "vector" and src.item_shape != store.item_shape:
        raise SourceError(f"{source} holds vectors of {src.item_shape[0]}; the store's have {store.item_shape[0]}")
    if src.n == 0:
        raise SourceError(f"{source} holds no items")
    pick = np.unique(np.linspace(0, src.n - 1, min(src.n, limit)).astype(np.int64))
    return np.concatenate([src.read(int(i), int(i) + 1)[0] for i in pick])


def field_sketch(
    source: str | np.ndarray, reference: str | os.PathLike | ReferenceStore, out: str | os.PathLike | None = None
) -> Sketch:
    """The sketch of ``source`` over the store ``reference``; written to ``out`` when given."""
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    s = make_sketch(field_images(source, store), store)
    if out is not None:
        atomic_write(Path(out), encode_sketch(s), what=f"field sketch {out}")
    return s


def adapt_prior(probs: np.ndarray, train_prior: np.ndarray) -> tuple[np.ndarray, int]:
    """EM re-estimation of the class prior of unlabelled data from a classifier's posteriors ``probs``
    (N × C, trained under ``train_prior``): returns (the field prior, EM steps). A field whose posteriors
    average to the training prior leaves it unchanged."""
    p = np.asarray(probs, dtype=np.float64)
    pt = np.asarray(train_prior, dtype=np.float64)
    pt = pt / pt.sum()
    prior = pt.copy()
    for step in range(1, PRIOR_ITERS + 1):
        w = p * (prior / np.maximum(pt, 1e-12))[None, :]
        w /= np.maximum(w.sum(1, keepdims=True), 1e-300)
        new = w.mean(0)
        if np.abs(new - prior).max() < PRIOR_TOL:
            return new, step
        prior = new
    return prior, PRIOR_ITERS


def with_logit_bias(model, bias: np.ndarray):
    """``model`` followed by a fixed per-class bias on its logits (exported with it; eval mode)."""
    import torch

    class LogitBias(torch.nn.Module):
        def __init__(self, b: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("bias", b)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z + self.bias

    return torch.nn.Sequential(model, LogitBias(torch.from_numpy(np.asarray(bias, dtype=np.float32)))).eval()
