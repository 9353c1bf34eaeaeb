"""Hard-label coder: one class per selected item, in the order of the sorted indices.

The class histogram is coded first as a chain of binomials (count of class c among
the items not yet assigned, with p = 1/(classes left)), then the labels with one
of two models; the encoder estimates both and keeps the cheaper:

* ``STATIC`` (0): i.i.d. with the empirical histogram — near ``k·H(labels)``.
* ``GROUP_ADAPTIVE`` (1): each segment (run of one group, as in the index coder)
  learns its own distribution: the t-th label of a segment is coded with weights
  ``n_s(c) + β_b·[(1−λ_b)·H_c/k + λ_b·Σ_δ K(δ)·n_s(c−δ mod C)/t]``, where ``n_s`` counts
  the labels seen so far in the segment (t of them) and K is a small, normalised
  *class-offset kernel* learned by the encoder and sent: label spaces often put
  look-alike classes next to each other (ImageNet's WordNet order puts sibling
  synsets side by side), so a segment that holds class c makes a *new* label
  c+δ likelier. The escape mass β is shared between the global histogram and the
  kernel (λ = 0 turns the kernel off; at t = 0 it is all prior). β and λ are
  chosen per *bucket* b = bit length of the segment's item count (known to the
  decoder from the index set): a segment holding one stray item wants a large
  escape mass, one holding a thousand items of two classes a tiny one. Labels are
  coded round-robin over segments (step t codes the t-th label of every segment
  that has one), so each step is one vectorised coder call. The kernel is kept
  in integers so both ends compute bit-identical weights.

* ``UNIFORM`` (2): every label uniform over the C classes, no histogram — exactly
  k·log2 C bits, the cheapest when labels are balanced and there are few items
  per class (the encoder keeps whichever of STATIC and UNIFORM codes smaller).

Section layout::

    u8      mode        0 = STATIC, 1 = GROUP_ADAPTIVE, 2 = UNIFORM
    [mode 1] u8 D (kernel size ≤ 16), D × (uvarint offset δ in 1…C−1, u8 weight 1…255),
             per count bucket present (ascending): uvarint β×4 (≥ 1), u8 λ×16 (≤ 16)
    bytes   ANS stream  (histogram chain, then labels)
"""

from __future__ import annotations

import numpy as np

from ._ans import CATEGORICAL_FAMILY, UNIFORM_FAMILY, Decoder, Op, categorical, encode_ops, guarded
from ._wire import Reader, Writer
from .errors import DecodeError, LimitError
from .histogram import hist_decode, hist_ops

__all__ = ["STATIC", "GROUP_ADAPTIVE", "encode_labels", "decode_labels", "MAX_CLASSES"]

STATIC = 0
GROUP_ADAPTIVE = 1
UNIFORM = 2
MAX_CLASSES = 1 << 16
ADAPTIVE_CELL_LIMIT = 32_000_000  # segments-with-items × classes held in memory by mode 1
_BETAS4 = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 256)
_LAMBDAS16 = (0, 4, 8, 12, 15)
MAX_KERNEL = 16
_KERNEL_HEADER_BITS = 8.0  # estimated header cost per kernel entry (offset + weight)
_BUCKET_HEADER_BITS = 16  # estimated header cost per count bucket (β, λ)
_MODE_SWITCH_BITS = 16  # the adaptive model must beat the static one by this much
_UNIFORM_MAX_CLASSES = 1 << 24  # constriction's Uniform model takes sizes below this


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


def _within(seg: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item: its position t in its segment and the count of earlier equal labels there."""
    k = labels.size
    idx = np.arange(k)
    segstart = np.ones(k, dtype=bool)
    segstart[1:] = seg[1:] != seg[:-1]
    t = idx - np.maximum.accumulate(np.where(segstart, idx, 0))
    return t, _earlier_count(seg, labels, labels)


def _earlier_count(seg: np.ndarray, labels: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each item i: how many earlier items of its segment have label ``query[i]``."""
    k = labels.size
    c = int(max(labels.max(initial=0), query.max(initial=0))) + 1
    comp = np.sort((seg * c + labels) * k + np.arange(k))
    base = (seg * c + query) * k
    return np.searchsorted(comp, base + np.arange(k)) - np.searchsorted(comp, base)


def _estimate_kernel(seg: np.ndarray, labels: np.ndarray, classes: int) -> list[tuple[int, int]]:
    """Offsets δ from each segment's most common label that occur far above chance."""
    uniq, inv, counts = np.unique(seg, return_inverse=True, return_counts=True)
    multi = counts[inv] >= 2
    if multi.sum() < 32 or classes < 3:
        return []
    pair = inv * classes + labels
    pc = np.bincount(pair, minlength=uniq.size * classes).reshape(uniq.size, classes)
    mode = pc.argmax(1)
    off = (labels - mode[inv]) % classes
    off = off[multi & (off != 0)]
    if off.size == 0:
        return []
    h = np.bincount(off, minlength=classes)
    expect = off.size / (classes - 1)
    cand = [int(d) for d in np.argsort(-h, kind="stable")[:MAX_KERNEL] if h[d] >= 8 and h[d] > 3 * expect]
    if not cand:
        return []
    top = max(h[d] for d in cand)
    return [(d, max(1, int(round(255 * h[d] / top)))) for d in sorted(cand)]


def _neighbours(seg: np.ndarray, labels: np.ndarray, classes: int, kernel) -> np.ndarray:
    nb = np.zeros(labels.size)
    for d, wt in kernel:
        nb += wt * _earlier_count(seg, labels, (labels - d) % classes)
    return nb


def _item_costs(prior: np.ndarray, t: np.ndarray, cnt: np.ndarray, nbn: np.ndarray, beta: float, lam: float):
    """Bits per item under (β, λ); ``nbn`` = neighbour weight / Σw (zeros when no kernel)."""
    lam_t = np.where(t > 0, lam, 0.0)
    w = cnt + beta * ((1 - lam_t) * prior + lam_t * nbn / np.maximum(t, 1))
    return np.log2(t + beta) - np.log2(w)


def _count_bucket(seg: np.ndarray) -> np.ndarray:
    """Per item: the bit length of its segment's item count."""
    _, inv, counts = np.unique(seg, return_inverse=True, return_counts=True)
    return np.frexp(counts.astype(np.float64))[1].astype(np.int64)[inv]


def _static_cost(hist: np.ndarray) -> float:
    h = hist[hist > 0].astype(np.float64)
    return float(-np.sum(h * np.log2(h / h.sum())))


def _fit_adaptive(seg: np.ndarray, lab: np.ndarray, hist: np.ndarray, classes: int):
    """Search the group-adaptive model's kernel and per-bucket (β, λ) by estimated bits.

    Returns (estimated bits, params, kernel); params maps a count bucket to (β×4, λ×16).
    """
    k = lab.size
    t, cnt = _within(seg, lab)
    prior = hist[lab] / k
    bucket = _count_bucket(seg)
    best: tuple[float, dict, list] | None = None
    for kern in [[], _estimate_kernel(seg, lab, classes)]:
        if best is not None and not kern:
            continue
        nbn = _neighbours(seg, lab, classes, kern) / max(1, sum(wt for _, wt in kern))
        lams = _LAMBDAS16 if kern else (0,)
        choice, total = {}, _KERNEL_HEADER_BITS * (1 + 3 * len(kern))
        for bk in np.unique(bucket):
            m = bucket == bk
            cands = {
                (b4, l16): float(_item_costs(prior[m], t[m], cnt[m], nbn[m], b4 / 4, l16 / 16).sum())
                for b4 in _BETAS4
                for l16 in lams
            }
            choice[int(bk)] = min(cands, key=cands.get)
            total += cands[choice[int(bk)]] + _BUCKET_HEADER_BITS
        if best is None or total < best[0]:
            best = (total, choice, kern)
    return best


def _encode_uniform(lab: np.ndarray, classes: int) -> bytes:
    u = Writer()
    u.u8(UNIFORM)
    u.raw(encode_ops([Op(lab, UNIFORM_FAMILY, (np.full(lab.size, classes, dtype=np.int32),))]))
    return u.getvalue()


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
    mode, kernel, params, seg = STATIC, [], {}, None
    if k and segments is not None and indices is not None and len(segments) > 1 and classes > 1:
        seg = _segment_of(np.asarray(indices, dtype=np.int64), np.asarray(segments, dtype=np.int64))
        if np.unique(seg).size * classes <= ADAPTIVE_CELL_LIMIT:
            bits, params, kernel = _fit_adaptive(seg, lab, hist, classes)
            if bits < _static_cost(hist) - _MODE_SWITCH_BITS:
                mode = GROUP_ADAPTIVE
    w = Writer()
    w.u8(mode)
    ops = hist_ops(hist) if k and classes > 1 else []
    if mode == STATIC:
        if k and classes > 1:
            ops.append(Op(lab, categorical(hist.astype(np.float64))))
        w.raw(encode_ops(ops))
    else:
        w.u8(len(kernel))
        for d, wt in kernel:
            w.uvarint(d)
            w.u8(wt)
        for bk in sorted(params):
            w.uvarint(params[bk][0])
            w.u8(params[bk][1])
        w.raw(_encode_adaptive(ops, lab, seg, hist, params, kernel))
    best = w.getvalue()
    if mode == STATIC and k and 2 <= classes < _UNIFORM_MAX_CLASSES:
        # near-uniform labels with few items per class: no histogram beats one (k·log2 C exactly)
        u = _encode_uniform(lab, classes)
        if len(u) < len(best):
            best = u
    return best


class _Model:
    """Round-robin label model state: per-segment counts and integer neighbour counts.

    Rows are segments in round-robin order (count desc, then id); each row has its
    bucket's β and λ. ``weights`` is one fixed sequence of float operations on exact
    integers, run identically by encoder and decoder.
    """

    def __init__(self, counts_o: np.ndarray, classes: int, kernel, params: dict, prior: np.ndarray) -> None:
        rows = counts_o.size
        self.cnt = np.zeros((rows, classes), dtype=np.float64)
        self.off = np.array([d for d, _ in kernel], dtype=np.int64)
        self.wt = np.array([w for _, w in kernel], dtype=np.float64)
        self.wsum = float(self.wt.sum()) if kernel else 1.0
        self.nb = np.zeros((rows, classes), dtype=np.float64) if kernel else None
        self.classes = classes
        self.distinct = np.unique(self.off % max(classes, 1)).size == self.off.size
        bk = np.frexp(counts_o.astype(np.float64))[1].astype(np.int64)
        self.beta = np.array([params[int(b)][0] / 4 for b in bk])
        self.lam = np.array([params[int(b)][1] / 16 for b in bk])
        self.prior = prior

    def add(self, a: int, sym: np.ndarray, sign: float) -> None:
        r = np.arange(a)
        self.cnt[r, sym] += sign
        if self.nb is not None:
            cols = (sym[:, None] + self.off[None, :]) % self.classes
            if self.distinct:  # one update per cell: plain indexing adds the same exact integers as np.add.at
                self.nb[r[:, None], cols] += sign * self.wt[None, :]
            else:
                np.add.at(self.nb, (np.repeat(r, self.off.size), cols.ravel()), sign * np.tile(self.wt, a))

    def fill(self, lab: np.ndarray, first_o: np.ndarray, counts_o: np.ndarray) -> None:
        """Every label added at once (what ``add`` for every step gives: the counts are exact integers in
        float64, so the order of the sums does not change a bit)."""
        rows = np.repeat(np.arange(counts_o.size), counts_o)
        starts = np.cumsum(counts_o) - counts_o
        sym = lab[first_o[rows] + (np.arange(rows.size) - starts[rows])]
        np.add.at(self.cnt, (rows, sym), 1.0)
        if self.nb is not None:
            cols = (sym[:, None] + self.off[None, :]) % self.classes
            np.add.at(self.nb, (np.repeat(rows, self.off.size), cols.ravel()), np.tile(self.wt, rows.size))

    def weights(self, a: int, t: int) -> np.ndarray:
        beta = self.beta[:a, None]
        if self.nb is None or t == 0:
            return beta * self.prior[None, :] + self.cnt[:a]
        lam = self.lam[:a, None]
        return (beta * (1.0 - lam)) * self.prior[None, :] + self.cnt[:a] + (beta * lam / (t * self.wsum)) * self.nb[:a]


def _encode_adaptive(ops, lab, seg, hist, params, kernel) -> bytes:
    import constriction

    from ._wire import words_to_bytes

    k, c = lab.size, hist.size
    first_o, counts_o, active = _round_robin(seg)
    model = _Model(counts_o, c, kernel, params, hist / k)
    model.fill(lab, first_o, counts_o)  # every label in, then peeled back step by step
    coder = constriction.stream.stack.AnsCoder()
    for t in range(len(active) - 1, -1, -1):
        a = int(active[t])
        sym = lab[first_o[:a] + t]
        model.add(a, sym, -1.0)
        coder.encode_reverse(sym.astype(np.int32), CATEGORICAL_FAMILY, model.weights(a, t))
    for op in reversed(ops):
        coder.encode_reverse(np.ascontiguousarray(op.symbols, dtype=np.int32), op.model, *op.params)
    return words_to_bytes(coder.get_compressed())


def _decode(data, classes, indices, segments) -> np.ndarray:
    k = int(np.asarray(indices).size)
    r = Reader(data, "label section")
    mode = r.u8()
    kernel: list[tuple[int, int]] = []
    params: dict[int, tuple[int, int]] = {}
    seg = None
    if mode == GROUP_ADAPTIVE:
        if segments is None or k == 0:
            raise DecodeError("label section: group-adaptive labels need the manifest's groups")
        seg = _segment_of(np.asarray(indices, dtype=np.int64), np.asarray(segments, dtype=np.int64))
        nk = r.u8()
        if nk > MAX_KERNEL:
            raise LimitError(f"label section: kernel of {nk} offsets exceeds {MAX_KERNEL}")
        for _ in range(nk):
            d = r.uvarint(limit=max(classes - 1, 1), name="kernel offset")
            wt = r.u8()
            if d == 0 or wt == 0:
                raise DecodeError("label section: malformed kernel")
            kernel.append((d, wt))
        for bk in np.unique(_count_bucket(seg)).tolist():
            b4 = r.uvarint(limit=1 << 16, name="beta")
            l16 = r.u8()
            if b4 == 0 or l16 > 16:
                raise DecodeError("label section: model parameters out of range")
            params[int(bk)] = (b4, l16)
    elif mode not in (STATIC, UNIFORM):
        raise DecodeError(f"label section: unknown coder mode {mode}")
    dec = Decoder(r.raw(r.remaining()), "label section")
    if k == 0 or classes == 1:
        dec.finish()
        return np.zeros(k, dtype=np.int64)
    if mode == UNIFORM:
        if classes >= _UNIFORM_MAX_CLASSES:
            raise LimitError("label section: uniform labels need fewer than 2**24 classes")
        lab = dec.decode(UNIFORM_FAMILY, k, np.full(k, classes, dtype=np.int32))
        dec.finish()
        return lab
    hist = hist_decode(dec, k, classes)
    if mode == STATIC:
        lab = dec.decode(categorical(hist.astype(np.float64)), k)
    else:
        first_o, counts_o, active = _round_robin(seg)
        if counts_o.size * classes > ADAPTIVE_CELL_LIMIT:
            raise LimitError("label section: group-adaptive model exceeds the decoder's memory limit")
        model = _Model(counts_o, classes, kernel, params, hist / k)
        lab = np.zeros(k, dtype=np.int64)
        for t, a in enumerate(active):
            a = int(a)
            sym = dec.decode(CATEGORICAL_FAMILY, a, model.weights(a, t))
            if sym.size and sym.max() >= classes:
                raise DecodeError("label section: label out of range")
            lab[first_o[:a] + t] = sym
            model.add(a, sym, 1.0)
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
