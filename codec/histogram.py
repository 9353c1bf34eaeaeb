"""Class histograms and histogram-coded columns, shared by the label and soft-label coders.

A histogram of k symbols over c classes is sent as a chain of binomials: the
count of class j is Binomial(remaining, 1/(c − j)) — the exact law of a uniform
random multinomial — and the last count is implied. A *column* is a histogram
followed by the symbols under the categorical model it defines.
"""

from __future__ import annotations

import numpy as np

from ._ans import BINOMIAL_FAMILY, Decoder, Op, categorical
from .errors import DecodeError

__all__ = ["hist_ops", "hist_decode", "column_ops", "column_decode"]


def hist_ops(hist: np.ndarray) -> list[Op]:
    """Coder operations for a histogram (counts per class)."""
    k = int(hist.sum())
    c = hist.size
    rem = k - np.concatenate([[0], np.cumsum(hist)[:-1]])
    live = np.flatnonzero(rem[:-1] > 0)  # the last class is implied; none left ⇒ implied zeros
    n = rem[live].astype(np.int32)
    p = 1.0 / (c - live).astype(np.float64)
    return [Op(hist[live], BINOMIAL_FAMILY, (n, p))]


def hist_decode(dec: Decoder, k: int, c: int) -> np.ndarray:
    """Inverse of :func:`hist_ops` for ``k`` symbols over ``c`` classes."""
    hist = np.zeros(c, dtype=np.int64)
    rem = k
    # sequential by nature (each count bounds the next)
    for cls in range(c - 1):
        if rem == 0:
            break
        v = int(dec.decode(BINOMIAL_FAMILY, 1, np.array([rem], dtype=np.int32), np.array([1.0 / (c - cls)]))[0])
        if v > rem:
            raise DecodeError(f"{dec.what}: class histogram exceeds the item count; the payload was altered")
        hist[cls] = v
        rem -= v
    hist[c - 1] = rem
    return hist


def column_ops(values: np.ndarray, size: int) -> list[Op]:
    """A column of symbols in ``[0, size)``: its histogram, then the symbols under it."""
    hist = np.bincount(values, minlength=size).astype(np.int64)
    return [*hist_ops(hist), Op(values, categorical(hist.astype(np.float64)))]


def column_decode(dec: Decoder, n: int, size: int) -> np.ndarray:
    """Inverse of :func:`column_ops`; checks the symbols against their histogram."""
    hist = hist_decode(dec, n, size)
    vals = dec.decode(categorical(hist.astype(np.float64)), n) if n else np.zeros(0, dtype=np.int64)
    if not np.array_equal(np.bincount(vals, minlength=size), hist):
        raise DecodeError(f"{dec.what}: values disagree with their histogram")
    return vals
