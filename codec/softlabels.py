"""Soft-label section: each item's top classes with quantised probabilities.

For every selected item the section carries the probability of its hard label
and of ``extra`` runner-up classes, each quantised to ``levels`` uniform steps of
``1/levels`` (the step is the explicit parameter ``levels``). The mass left over
is spread evenly over the remaining classes by :meth:`SoftLabels.dense`.

Section layout::

    u8      extra       runner-up classes per item (0 … 8)
    u16     levels      quantisation steps of [0, 1]   (2 … 4096)
    ANS stream          per column: class histogram chain + classes (runner-ups),
                        value histogram chain + quantised values
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._ans import Decoder, Op, encode_ops, guarded
from ._wire import Reader, Writer
from .errors import DecodeError
from .histogram import column_decode, column_ops

__all__ = ["SoftLabels", "soft_from_probs", "encode_soft", "decode_soft"]

MAX_EXTRA = 8
MAX_LEVELS = 4096


@dataclass
class SoftLabels:
    """``others``: k × extra runner-up class ids; ``q``: k × (1 + extra) quantised levels."""

    others: np.ndarray
    q: np.ndarray
    levels: int

    def reordered(self, order: np.ndarray) -> SoftLabels:
        return SoftLabels(self.others[order], self.q[order], self.levels)

    def dense(self, hard: np.ndarray, classes: int) -> np.ndarray:
        """k × C float32 target distributions."""
        k = hard.size
        p = self.q.astype(np.float64) / self.levels
        out = np.zeros((k, classes), dtype=np.float64)
        rows = np.arange(k)
        out[rows, hard] = p[:, 0]
        for j in range(self.others.shape[1]):
            out[rows, self.others[:, j]] += p[:, j + 1]
        used = out.sum(1)
        rest = np.clip(1.0 - used, 0.0, None)
        free = (out == 0).sum(1)
        fill = np.where(free > 0, rest / np.maximum(free, 1), 0.0)
        out = np.where(out == 0, fill[:, None], out)
        out /= out.sum(1, keepdims=True)
        return out.astype(np.float32)


def soft_from_probs(probs: np.ndarray, hard: np.ndarray, extra: int = 2, levels: int = 32) -> SoftLabels:
    """Build the section's content from a k × C probability matrix and the hard labels."""
    if not 0 <= extra <= MAX_EXTRA or not 2 <= levels <= MAX_LEVELS:
        raise ValueError(f"extra must be 0..{MAX_EXTRA} and levels 2..{MAX_LEVELS}")
    p = np.asarray(probs, dtype=np.float64).copy()
    k = p.shape[0]
    rows = np.arange(k)
    q0 = p[rows, hard]
    p[rows, hard] = -1
    extra = min(extra, p.shape[1] - 1)
    others = np.argsort(-p, axis=1, kind="stable")[:, :extra]
    vals = np.concatenate([q0[:, None], np.take_along_axis(p, others, 1)], axis=1)
    q = np.clip(np.rint(vals * levels), 0, levels).astype(np.int64)
    return SoftLabels(others.astype(np.int64), q, levels)


def encode_soft(soft: SoftLabels, hard: np.ndarray, classes: int) -> bytes:
    extra = soft.others.shape[1]
    w = Writer()
    w.u8(extra)
    w.u16(soft.levels)
    ops: list[Op] = []
    if hard.size:
        for j in range(extra):
            ops += column_ops(soft.others[:, j], classes)
        for j in range(extra + 1):
            ops += column_ops(soft.q[:, j], soft.levels + 1)
    w.raw(encode_ops(ops))
    return w.getvalue()


def _decode(data: bytes, hard: np.ndarray, classes: int) -> SoftLabels:
    r = Reader(data, "soft-label section")
    extra = r.u8()
    levels = r.u16()
    if extra > MAX_EXTRA or not 2 <= levels <= MAX_LEVELS or extra >= max(classes, 1):
        raise DecodeError("soft-label section: parameters out of range")
    dec = Decoder(r.raw(r.remaining()), "soft-label section")
    k = hard.size
    others = np.zeros((k, extra), dtype=np.int64)
    q = np.zeros((k, extra + 1), dtype=np.int64)
    if k:
        for j in range(extra):
            others[:, j] = column_decode(dec, k, classes)
        for j in range(extra + 1):
            q[:, j] = column_decode(dec, k, levels + 1)
    dec.finish()
    return SoftLabels(others, q, levels)


def decode_soft(data: bytes, hard: np.ndarray, classes: int) -> SoftLabels:
    return guarded(_decode, "soft-label section")(data, np.asarray(hard), classes)
