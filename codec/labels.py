"""Hard-label coder: one class per selected item, in the order of the sorted indices.

The class histogram is coded first as a chain of binomials (count of class c among
the items not yet assigned, with p = 1/(classes left)), then the labels with one
of two models; the encoder estimates both and keeps the cheaper:

* ``STATIC`` (0): i.i.d. with the empirical histogram — near ``k·H(labels)``.
* ``GROUP_ADAPTIVE`` (1): each segment (run of one group, as in the index coder)
  learns its own distribution: the t-th label of a segment is coded with weights
  ``β·H_c/k + count of c so far in that segment``. Labels are coded round-robin
  over segments (step t codes the t-th label of every segment that has one), so
  a step is one vectorised coder call. β is chosen by the encoder and sent.

Section layout::

    u8      mode        0 = STATIC, 1 = GROUP_ADAPTIVE
    [mode 1] uvarint β×4
    bytes   ANS stream  (histogram chain, then labels)
"""

from __future__ import annotations

import numpy as np

from ._ans import BINOMIAL_FAMILY, CATEGORICAL_FAMILY, Decoder, Op, categorical, encode_ops, guarded
from ._wire import Reader, Writer
from .errors import DecodeError, LimitError

__all__ = ["STATIC", "GROUP_ADAPTIVE", "encode_labels", "decode_labels", "MAX_CLASSES"]

STATIC = 0
GROUP_ADAPTIVE = 1
MAX_CLASSES = 1 << 16
ADAPTIVE_CELL_LIMIT = 32_000_000  # segments-with-items × classes held in memory by mode 1
_BETAS4 = (1, 2, 4, 8, 16, 32, 64)


def _hist_ops(hist: np.ndarray) -> list[Op]:
    k = int(hist.sum())
    c = hist.size
    rem = k - np.concatenate([[0], np.cumsum(hist)[:-1]])
    live = np.flatnonzero(rem[:-1] > 0)  # the last class is implied; none left ⇒ implied zeros
    n = rem[live].astype(np.int32)
    p = 1.0 / (c - live).astype(np.float64)
    return [Op(hist[live], BINOMIAL_FAMILY, (n, p))]


def _hist_decode(dec: Decoder, k: int, c: int) -> np.ndarray:
    hist = np.zeros(c, dtype=np.int64)
    rem = k
    # sequential by nature (each count bounds the next); c ≤ MAX_CLASSES
    for cls in range(c - 1):
        if rem == 0:
            break
        v = int(dec.decode(BINOMIAL_FAMILY, 1, np.array([rem], dtype=np.int32), np.array([1.0 / (c - cls)]))[0])
        if v > rem:
            raise DecodeError("label section: class histogram exceeds the item count; the payload was altered")
        hist[cls] = v
        rem -= v
    hist[c - 1] = rem
    return hist


def _segment_of(indices: np.ndarray, segments: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(segments)])
    return np.searchsorted(starts, indices, side="right") - 1


def _round_robin(seg: np.ndarray):
    """Item order for round-robin coding, and the active-prefix sizes per step."""
    uniq, first, counts = np.unique(seg, return_index=True, return_counts=True)
    rank = np.lexsort((uniq, -counts))  # count desc, then segment id
    counts_o = counts[rank]
    first_o = first[rank]
    steps = int(counts_o[0]) if counts_o.size else 0
    active = np.array([int(np.count_nonzero(counts_o > t)) for t in range(steps)], dtype=np.int64) if steps else []
    return first_o, counts_o, active


def _adaptive_cost(labels: np.ndarray, seg: np.ndarray, hist: np.ndarray, beta: float) -> float:
    k = labels.size
    # t = position within segment; cnt = prior occurrences of the same label within the segment
    order = np.lexsort((np.arange(k), labels, seg))
    key_s = seg[order]
    key_l = labels[order]
    newgrp = np.ones(k, dtype=bool)
    newgrp[1:] = (key_s[1:] != key_s[:-1]) | (key_l[1:] != key_l[:-1])
    idx = np.arange(k)
    cnt = np.empty(k, dtype=np.int64)
    cnt[order] = idx - np.maximum.accumulate(np.where(newgrp, idx, 0))
    segstart = np.ones(k, dtype=bool)
    segstart[1:] = seg[1:] != seg[:-1]
    t = idx - np.maximum.accumulate(np.where(segstart, idx, 0))
    prior = hist[labels] / k
    return float(np.sum(np.log2(beta + t) - np.log2(beta * prior + cnt)))


def _static_cost(hist: np.ndarray) -> float:
    h = hist[hist > 0].astype(np.float64)
    return float(-np.sum(h * np.log2(h / h.sum())))


def encode_labels(
    labels: np.ndarray, classes: int, indices: np.ndarray | None = None, segments: np.ndarray | None = None
) -> bytes:
    """Code ``labels`` (aligned with the sorted ``indices``); returns the section bytes."""
    lab = np.asarray(labels, dtype=np.int64)
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"class count must be in 1..{MAX_CLASSES}")
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise ValueError("labels must lie in [0, classes)")
    hist = np.bincount(lab, minlength=classes).astype(np.int64)
    k = lab.size
    mode, beta4 = STATIC, 0
    seg = None
    if k and segments is not None and indices is not None and len(segments) > 1 and classes > 1:
        seg = _segment_of(np.asarray(indices, dtype=np.int64), np.asarray(segments, dtype=np.int64))
        if np.unique(seg).size * classes <= ADAPTIVE_CELL_LIMIT:
            base = _static_cost(hist)
            costs = {b: _adaptive_cost(lab, seg, hist, b / 4) for b in _BETAS4}
            b_best = min(costs, key=costs.get)
            if costs[b_best] < base - 16:
                mode, beta4 = GROUP_ADAPTIVE, b_best
    w = Writer()
    w.u8(mode)
    ops = _hist_ops(hist) if k and classes > 1 else []
    if mode == STATIC:
        if k and classes > 1:
            ops.append(Op(lab, categorical(hist.astype(np.float64))))
        w.raw(encode_ops(ops))
    else:
        w.uvarint(beta4)
        w.raw(_encode_adaptive(ops, lab, seg, hist, beta4 / 4))
    return w.getvalue()


def _encode_adaptive(ops: list[Op], lab: np.ndarray, seg: np.ndarray, hist: np.ndarray, beta: float) -> bytes:
    import constriction

    from ._wire import words_to_bytes

    k, c = lab.size, hist.size
    prior = beta * (hist / k)
    first_o, counts_o, active = _round_robin(seg)
    cnt = np.zeros((counts_o.size, c), dtype=np.float64)
    rows = np.repeat(np.arange(counts_o.size), counts_o)
    np.add.at(cnt, (rows, lab[np.repeat(first_o, counts_o) + _ranks(counts_o)]), 1)
    coder = constriction.stream.stack.AnsCoder()
    for t in range(len(active) - 1, -1, -1):
        a = int(active[t])
        sym = lab[first_o[:a] + t]
        cnt[np.arange(a), sym] -= 1
        coder.encode_reverse(sym.astype(np.int32), CATEGORICAL_FAMILY, prior[None, :] + cnt[:a])
    for op in reversed(ops):
        coder.encode_reverse(np.ascontiguousarray(op.symbols, dtype=np.int32), op.model, *op.params)
    return words_to_bytes(coder.get_compressed())


def _ranks(counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


def _decode(data, classes, indices, segments) -> np.ndarray:
    k = int(np.asarray(indices).size)
    r = Reader(data, "label section")
    mode = r.u8()
    beta4 = r.uvarint(limit=1 << 16, name="beta") if mode == GROUP_ADAPTIVE else 0
    if mode not in (STATIC, GROUP_ADAPTIVE):
        raise DecodeError(f"label section: unknown coder mode {mode}")
    dec = Decoder(r.raw(r.remaining()), "label section")
    if k == 0 or classes == 1:
        dec.finish()
        return np.zeros(k, dtype=np.int64)
    hist = _hist_decode(dec, k, classes)
    if mode == STATIC:
        lab = dec.decode(categorical(hist.astype(np.float64)), k)
    else:
        if segments is None or beta4 == 0:
            raise DecodeError("label section: group-adaptive labels need the manifest's groups")
        seg = _segment_of(np.asarray(indices, dtype=np.int64), np.asarray(segments, dtype=np.int64))
        first_o, counts_o, active = _round_robin(seg)
        if counts_o.size * classes > ADAPTIVE_CELL_LIMIT:
            raise LimitError("label section: group-adaptive model exceeds the decoder's memory limit")
        prior = (beta4 / 4) * (hist / k)
        cnt = np.zeros((counts_o.size, classes), dtype=np.float64)
        lab = np.zeros(k, dtype=np.int64)
        for t, a in enumerate(active):
            a = int(a)
            sym = dec.decode(CATEGORICAL_FAMILY, a, prior[None, :] + cnt[:a])
            lab[first_o[:a] + t] = sym
            cnt[np.arange(a), sym] += 1
    dec.finish()
    if lab.size and lab.max() >= classes:
        raise DecodeError("label section: label out of range")
    if not np.array_equal(np.bincount(lab, minlength=classes), hist):
        raise DecodeError("label section: labels disagree with the coded histogram; the payload was altered")
    return lab


def decode_labels(data: bytes, classes: int, indices: np.ndarray, segments: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`encode_labels`; raises only DecodeError on malformed input."""
    if not 1 <= classes <= MAX_CLASSES:
        raise LimitError(f"label section: class count {classes} outside 1..{MAX_CLASSES}")
    return guarded(_decode, "label section")(data, classes, indices, segments)
