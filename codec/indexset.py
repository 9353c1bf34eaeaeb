"""Index-set coder: the sorted set of selected reference items.

Three models; the encoder codes those that apply and keeps the smallest (the mode
byte says which):

* ``FLAT`` (0): the whole reference set is one segment.
* ``GROUPED`` (1): the reference set is cut into *segments* (maximal runs of items
  of one group in canonical order, known to both ends from the manifest); the
  number selected in each segment is coded first (bit-length buckets conditioned
  on the segment's size bucket, histogram in the header), then the positions.
* ``PREFIX`` (2): only the per-segment counts (as in GROUPED) and a 32-bit key are
  sent; the selected items of a segment are the first ``count`` items of the
  segment in the *keyed order* — ascending ``splitmix64(key·2³² + index)``, ties by
  index — a pseudo-random order both ends compute with integer arithmetic. A sender
  that picks "random items per segment" this way pays no bits for positions.
* ``PREFIX_EXTEND`` (3, delta payloads only): as PREFIX, but the items of a segment
  are the first ``count`` items of its keyed order *that the device's labelled set
  does not hold yet* (the ``base`` both ends know): growing a random-keyed
  selection costs its counts alone.

Within a segment of ``n`` items with ``k`` selected, the smaller of the selected
set and its complement (``k' = min(k, n-k)``) is coded as gaps with a geometric
model of parameter ``p ≈ k'/n`` — the Bernoulli source whose entropy ``n·H(k'/n)``
is within ``½·log2(2πnp(1−p))`` bits of ``log2 C(n, k)``. ``p`` is quantised to a
level ``L = ⌊16·log2(n/k')⌋`` computed with integers only, and each gap is split
Golomb-style into a quotient (geometric over ``[0, Qn)`` plus an escape) and a
remainder (truncated geometric over ``[0, M)``). Segments of one level share one
model and are coded in one call, so cost is O(k) with a few dozen coder calls.

Section layout (little-endian)::

    u8      mode            0 = FLAT, 1 = GROUPED, 2 = PREFIX
    [PREFIX, PREFIX_EXTEND]
    uvarint key             ≤ 2³² − 1
    [GROUPED, PREFIX, PREFIX_EXTEND]
    uvarint n_buckets       count of distinct size buckets present (checked)
    per size bucket nb (ascending, as derived from the manifest):
        uvarint × (nb+1)    histogram of count bit-lengths 0..nb
    bytes   ANS stream      (rest of the section; PREFIX: the counts only)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ._ans import (
    UNIFORM_FAMILY,
    Decoder,
    Op,
    bit_length,
    categorical,
    elias_gamma_decode,
    elias_gamma_ops,
    encode_ops,
    guarded,
    lowbit_decode,
    lowbit_ops,
)
from ._wire import Reader, Writer
from .errors import DecodeError

__all__ = [
    "FLAT",
    "GROUPED",
    "PREFIX",
    "PREFIX_EXTEND",
    "keyed_order",
    "prefix_select",
    "encode_indices",
    "decode_indices",
    "segments_from_groups",
    "log2_binomial",
]

FLAT = 0
GROUPED = 1
PREFIX = 2
PREFIX_EXTEND = 3
MAX_KEY = (1 << 32) - 1
MAX_ITEMS = (1 << 32) - 1
MAX_SIZE_BUCKETS = 64  # bit lengths of segment sizes
_LEVELS_PER_OCTAVE = 16
_M_CAP = 1 << 16
_Q_CAP = 4096
_LN2 = 0.6931471805599453
# 2**(-j/32), j = 0..31, as exact literals so no platform pow() is involved.
_POW2_32 = [
    float.fromhex(h)
    for h in (
        "0x1.0000000000000p+0 0x1.f50765b6e4540p-1 0x1.ea4afa2a490dap-1 0x1.dfc97337b9b5fp-1 "
        "0x1.d5818dcfba487p-1 0x1.cb720dcef9069p-1 0x1.c199bdd85529cp-1 0x1.b7f76f2fb5e47p-1 "
        "0x1.ae89f995ad3adp-1 0x1.a5503b23e255dp-1 0x1.9c49182a3f090p-1 0x1.93737b0cdc5e5p-1 "
        "0x1.8ace5422aa0dbp-1 0x1.82589994cce13p-1 0x1.7a11473eb0187p-1 0x1.71f75e8ec5f74p-1 "
        "0x1.6a09e667f3bcdp-1 0x1.6247eb03a5585p-1 0x1.5ab07dd485429p-1 0x1.5342b569d4f82p-1 "
        "0x1.4bfdad5362a27p-1 0x1.44e086061892dp-1 0x1.3dea64c123422p-1 0x1.371a7373aa9cbp-1 "
        "0x1.306fe0a31b715p-1 0x1.29e9df51fdee1p-1 0x1.2387a6e756238p-1 0x1.1d4873168b9aap-1 "
        "0x1.172b83c7d517bp-1 0x1.11301d0125b51p-1 0x1.0b5586cf9890fp-1 0x1.059b0d3158574p-1"
    ).split()
]


def log2_binomial(n: int, k: int) -> float:
    """log2 C(n, k): the information bound of a k-subset of n items."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def segments_from_groups(groups: np.ndarray) -> np.ndarray:
    """Sizes of the maximal runs of equal group id, in canonical order."""
    g = np.asarray(groups)
    if g.size == 0:
        return np.zeros(0, dtype=np.int64)
    cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
    edges = np.concatenate([[0], cuts, [g.size]])
    return np.diff(edges).astype(np.int64)


def _check_key(key: int) -> None:
    if not 0 <= key <= MAX_KEY:
        raise ValueError(f"prefix key must be in 0..{MAX_KEY}")


def _keys(key: int, start: int, size: int) -> np.ndarray:
    """splitmix64(key·2³² + i) for i in [start, start + size): the PREFIX order's sort keys."""
    x = np.arange(start, start + size, dtype=np.uint64) + np.uint64(key << 32)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keyed_order(key: int, start: int, size: int) -> np.ndarray:
    """Global indices of the segment ``[start, start + size)`` in the PREFIX mode's keyed order."""
    _check_key(key)
    return start + np.argsort(_keys(key, start, size), kind="stable")


def _first(key: int, start: int, size: int, count: int, held: np.ndarray | None = None) -> np.ndarray:
    """The sorted global indices of the first ``count`` items of a segment's keyed order (O(size)),
    skipping the local positions ``held`` (PREFIX_EXTEND)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    free = None
    if held is not None and held.size:
        mask = np.ones(size, dtype=bool)
        mask[held] = False
        free = np.flatnonzero(mask)
        if count > free.size:
            raise ValueError("count exceeds the items not held")
    if free is None and count >= size:
        return np.arange(start, start + size, dtype=np.int64)
    h = _keys(key, start, size)
    if free is not None:
        h = h[free]
        if count == free.size:
            return start + free.astype(np.int64)
    t = np.partition(h, count - 1)[count - 1]
    lo = np.flatnonzero(h < t)
    eq = np.flatnonzero(h == t)
    pick = np.sort(np.concatenate([lo, eq[: count - lo.size]]))
    return start + (free[pick] if free is not None else pick).astype(np.int64)


def prefix_select(
    n: int, counts: np.ndarray, key: int, segments: np.ndarray | None = None, base: np.ndarray | None = None
) -> np.ndarray:
    """The selection PREFIX codes: per segment, the first ``counts[s]`` items of its keyed order
    (skipping the sorted indices ``base``: what PREFIX_EXTEND codes)."""
    sizes = _validate_sizes(n, segments)
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != sizes.shape or (c < 0).any() or (c > sizes).any():
        raise ValueError("counts must give 0..size items for every segment")
    _check_key(key)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    held = _held_by_segment(base, starts, sizes) if base is not None else None
    parts = [
        _first(key, int(st), int(sz), int(ct), held[s] if held is not None else None)
        for s, (st, sz, ct) in enumerate(zip(starts, sizes, c, strict=True))
        if ct
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _held_by_segment(base: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Local positions of the sorted global indices ``base`` in each segment."""
    b = np.asarray(base, dtype=np.int64)
    cuts = np.searchsorted(b, np.concatenate([starts, [starts[-1] + sizes[-1]]]))
    return [b[cuts[s] : cuts[s + 1]] - starts[s] for s in range(sizes.size)]


def _level(n: int, k: int) -> int:
    # floor(16·log2(n/k)) exactly: floor(log2(floor(x))) == floor(log2(x)) for x >= 1
    return (n**_LEVELS_PER_OCTAVE // k**_LEVELS_PER_OCTAVE).bit_length() - 1


@lru_cache(maxsize=512)
def _gap_model(level: int) -> tuple[int, int, object, object | None]:
    """(M, Qn, quotient model, remainder model or None) for a level; deterministic."""
    j = 2 * level + 1  # midpoint of the level's interval, in 1/32 octaves
    p = math.ldexp(_POW2_32[j % 32], -(j // 32))
    one_minus = 1.0 - p
    m = int(math.floor(_LN2 / p + 0.5))
    m = max(1, min(m, _M_CAP))
    steps = np.full(max(m, _Q_CAP) + 1, one_minus)
    steps[0] = 1.0
    rw = np.cumprod(steps[:m])
    theta = float(rw[-1]) * one_minus
    qsteps = np.full(_Q_CAP, theta)
    qsteps[0] = 1.0
    qw = np.cumprod(qsteps)
    qn = max(1, int(np.count_nonzero(qw >= 2.0**-30)))
    tail = float(qw[qn - 1]) * theta / (1.0 - theta) if theta < 1.0 else 1.0
    qmodel = categorical(np.concatenate([qw[:qn], [max(tail, 2.0**-40)]]))
    rmodel = categorical(rw) if m > 1 else None
    return m, qn, qmodel, rmodel


def _coded_sets(idx: np.ndarray, sizes: np.ndarray):
    """Per segment: k, k' and the sorted local positions of the coded set (selected or complement)."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    seg = np.searchsorted(starts, idx, side="right") - 1
    counts = np.bincount(seg, minlength=sizes.size).astype(np.int64)
    local = idx - starts[seg]
    comp = 2 * counts > sizes
    kprime = np.where(comp, sizes - counts, counts)
    keep = ~comp[seg]
    pos_seg = [seg[keep]]
    pos_loc = [local[keep]]
    if comp.any():
        cs = np.flatnonzero(comp)
        csz = sizes[cs]
        cstart = np.concatenate([[0], np.cumsum(csz)])
        mask = np.zeros(int(cstart[-1]), dtype=bool)
        which = np.searchsorted(cs, seg[~keep])
        mask[cstart[which] + local[~keep]] = True
        free = np.flatnonzero(~mask)
        owner = np.searchsorted(cstart, free, side="right") - 1
        pos_seg.append(cs[owner])
        pos_loc.append(free - cstart[owner])
    ps = np.concatenate(pos_seg)
    pl = np.concatenate(pos_loc)
    order = np.lexsort((pl, ps))
    return counts, kprime, comp, ps[order], pl[order]


_UNIFORM_MAX = 1 << 24


def _level_ops(g: np.ndarray, lv: int) -> list[Op]:
    m, qn, qmodel, rmodel = _gap_model(lv)
    q = g // m
    esc = q >= qn
    ops = [Op(np.minimum(q, qn), qmodel)]
    if esc.any():
        ops.extend(elias_gamma_ops(q[esc] - qn))
    if rmodel is not None:
        ops.append(Op(g % m, rmodel))
    return ops


def _level_decode(dec: Decoder, cnt: int, lv: int) -> np.ndarray:
    m, qn, qmodel, rmodel = _gap_model(lv)
    q = dec.decode(qmodel, cnt)
    esc = q == qn
    if esc.any():
        q[esc] = qn + elias_gamma_decode(dec, int(esc.sum()))
    if (q > (1 << 40)).any():
        raise DecodeError(f"{dec.what}: gap out of range")
    r = dec.decode(rmodel, cnt) if rmodel is not None else np.zeros(cnt, dtype=np.int64)
    return q * m + r


def _levels(sizes: np.ndarray, kprime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coded = np.flatnonzero(kprime > 0)
    levels = np.array([_level(int(sizes[s]), int(kprime[s])) for s in coded], dtype=np.int64)
    out = np.zeros(sizes.size, dtype=np.int64)
    out[coded] = levels
    return coded, out


def _gap_ops(sizes: np.ndarray, kprime: np.ndarray, pseg: np.ndarray, ploc: np.ndarray) -> list[Op]:
    """Geometric gaps for all but each segment's last coded item; the last is uniform over what remains."""
    first = np.ones(pseg.size, dtype=bool)
    first[1:] = pseg[1:] != pseg[:-1]
    last = np.ones(pseg.size, dtype=bool)
    last[:-1] = pseg[1:] != pseg[:-1]
    prev = np.empty_like(ploc)
    prev[0:1] = -1
    prev[1:] = ploc[:-1]
    prev[first] = -1
    gaps = ploc - prev - 1
    coded, level_of_seg = _levels(sizes, kprime)
    item_level = level_of_seg[pseg]
    ops: list[Op] = []
    body = ~last
    for lv in np.unique(level_of_seg[coded]):
        ops.extend(_level_ops(gaps[body & (item_level == lv)], int(lv)))
    # the last item of a segment lies anywhere in [prev+1, n): exactly log2(n-prev-1) bits
    room = sizes[pseg[last]] - prev[last] - 1
    g_last = gaps[last]
    uni = (room >= 2) & (room < _UNIFORM_MAX)
    if uni.any():
        ops.append(Op(g_last[uni], UNIFORM_FAMILY, (room[uni].astype(np.int32),)))
    big = room >= _UNIFORM_MAX
    for lv in np.unique(item_level[last][big]):
        ops.extend(_level_ops(g_last[big & (item_level[last] == lv)], int(lv)))
    return ops


def _gap_decode(dec: Decoder, sizes: np.ndarray, kprime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coded, level_of_seg = _levels(sizes, kprime)
    seg_items = np.repeat(coded, kprime[coded])
    item_level = level_of_seg[seg_items]
    last = np.ones(seg_items.size, dtype=bool)
    last[:-1] = seg_items[1:] != seg_items[:-1]
    gaps = np.zeros(seg_items.size, dtype=np.int64)
    body = ~last
    for lv in np.unique(level_of_seg[coded]):
        sel = body & (item_level == lv)
        gaps[sel] = _level_decode(dec, int(sel.sum()), int(lv))
    # position before each segment's last item: the sum of (gap + 1) over its body items, minus 1
    seg_ord = np.repeat(np.arange(coded.size), kprime[coded])
    body_sum = np.bincount(seg_ord, weights=((gaps + 1) * body).astype(np.float64), minlength=coded.size)
    prev_last = body_sum.astype(np.int64) - 1
    room = sizes[seg_items[last]] - prev_last - 1
    if (room < 1).any():
        raise DecodeError(f"{dec.what}: a decoded position lies outside its segment; the payload was altered")
    g_last = np.zeros(room.size, dtype=np.int64)
    uni = (room >= 2) & (room < _UNIFORM_MAX)
    if uni.any():
        g_last[uni] = dec.decode(UNIFORM_FAMILY, int(uni.sum()), room[uni].astype(np.int32))
    big = room >= _UNIFORM_MAX
    lvl_last = item_level[last]
    for lv in np.unique(lvl_last[big]):
        sel = big & (lvl_last == lv)
        g_last[sel] = _level_decode(dec, int(sel.sum()), int(lv))
    gaps[last] = g_last
    # local position = cumulative sum of (gap + 1) within each segment, minus 1
    step = gaps + 1
    csum = np.cumsum(step)
    head = np.concatenate([[0], np.cumsum(kprime[coded])[:-1]]).astype(np.int64)
    base = (csum[head] - step[head])[seg_ord] if seg_items.size else csum
    local = csum - base - 1
    if local.size and (local >= sizes[seg_items]).any():
        raise DecodeError(f"{dec.what}: a decoded position lies outside its segment; the payload was altered")
    return seg_items, local


def _count_ops(sizes: np.ndarray, counts: np.ndarray) -> tuple[list[int], list[list[int]], list[Op]]:
    """Per-segment counts: bit length conditioned on the segment's size bucket, then the low bits."""
    nb, kb = bit_length(sizes), bit_length(counts)
    present = sorted(set(nb.tolist()))
    hists: list[list[int]] = []
    ops: list[Op] = []
    for b in present:
        sel = nb == b
        h = np.bincount(kb[sel], minlength=b + 1)
        hists.append(h.tolist())
        ops.append(Op(kb[sel], categorical(h.astype(np.float64))))
    # low bits in the same bucket order as the buckets themselves
    order = np.concatenate([np.flatnonzero(nb == b) for b in present])
    w = np.maximum(kb[order] - 1, 0)
    ops.extend(lowbit_ops(counts[order] - (np.int64(1) << w), w))
    return present, hists, ops


def _count_decode(dec: Decoder, sizes: np.ndarray, hists: list[np.ndarray], present: list[int]) -> np.ndarray:
    nb = bit_length(sizes)
    kb = np.zeros(sizes.size, dtype=np.int64)
    for b, h in zip(present, hists, strict=False):
        sel = nb == b
        kb[sel] = dec.decode(categorical(h.astype(np.float64)), int(sel.sum()))
    order = np.concatenate([np.flatnonzero(nb == b) for b in present])
    kbo = kb[order]
    low = lowbit_decode(dec, np.maximum(kbo - 1, 0))
    counts = np.zeros(sizes.size, dtype=np.int64)
    counts[order] = np.where(kbo > 0, (np.int64(1) << np.maximum(kbo - 1, 0)) + low, 0)
    return counts


def _validate_sizes(n: int, sizes: np.ndarray | None) -> np.ndarray:
    if sizes is None:
        return np.array([n], dtype=np.int64)
    s = np.asarray(sizes, dtype=np.int64)
    if s.ndim != 1 or (s <= 0).any() or int(s.sum()) != n:
        raise ValueError("segment sizes must be positive and sum to the reference size")
    return s


def _encode_mode(idx: np.ndarray, sizes: np.ndarray, mode: int, key: int = 0) -> bytes:
    counts, kprime, _, pseg, ploc = _coded_sets(idx, sizes)
    w = Writer()
    w.u8(mode)
    ops: list[Op] = []
    if mode in (PREFIX, PREFIX_EXTEND):
        w.uvarint(key)
    if mode in (GROUPED, PREFIX, PREFIX_EXTEND):
        present, hists, cops = _count_ops(sizes, counts)
        w.uvarint(len(present))
        for h in hists:
            for c in h:
                w.uvarint(c)
        ops.extend(cops)
    if mode in (FLAT, GROUPED):
        ops.extend(_gap_ops(sizes, kprime, pseg, ploc))
    w.raw(encode_ops(ops))
    return w.getvalue()


def _is_prefix(idx: np.ndarray, sizes: np.ndarray, key: int, base: np.ndarray | None = None) -> bool:
    starts = np.concatenate([[0], np.cumsum(sizes)])
    counts = np.bincount(np.searchsorted(starts, idx, side="right") - 1, minlength=sizes.size)
    try:
        return bool(np.array_equal(prefix_select(int(starts[-1]), counts, key, sizes, base), idx))
    except ValueError:
        return False


def encode_indices(
    indices: np.ndarray,
    n: int,
    segments: np.ndarray | None = None,
    prefix_key: int | None = None,
    base: np.ndarray | None = None,
) -> bytes:
    """Code a set of distinct item indices in ``[0, n)``; returns the section bytes.

    ``segments`` are the segment sizes (see :func:`segments_from_groups`); with
    them the encoder also tries the GROUPED model and keeps the smaller result.
    With ``prefix_key`` it also tries PREFIX, which applies when the selection is,
    per segment, a prefix of the keyed order (see :func:`prefix_select`), and, given
    ``base`` (the sorted indices a device already holds), PREFIX_EXTEND.
    """
    if not 0 < n <= MAX_ITEMS:
        raise ValueError(f"reference size must be in 1..{MAX_ITEMS}")
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    if idx.size != np.asarray(indices).size:
        raise ValueError("indices must be distinct")
    if idx.size and (idx[0] < 0 or idx[-1] >= n):
        raise ValueError("indices must lie in [0, n)")
    best = _encode_mode(idx, np.array([n], dtype=np.int64), FLAT)
    seg = _validate_sizes(n, segments)
    if seg.size > 1:
        grouped = _encode_mode(idx, seg, GROUPED)
        if len(grouped) < len(best):
            best = grouped
    if prefix_key is not None:
        _check_key(prefix_key)
        if _is_prefix(idx, seg, prefix_key):
            pre = _encode_mode(idx, seg, PREFIX, prefix_key)
            if len(pre) < len(best):
                best = pre
        if base is not None and _is_prefix(idx, seg, prefix_key, np.asarray(base, dtype=np.int64)):
            ext = _encode_mode(idx, seg, PREFIX_EXTEND, prefix_key)
            if len(ext) < len(best):
                best = ext
    return best


def _decode(data: bytes, n: int, k: int, segments: np.ndarray | None, base: np.ndarray | None) -> np.ndarray:
    r = Reader(data, "index-set section")
    mode = r.u8()
    if mode == FLAT:
        sizes = np.array([n], dtype=np.int64)
        counts = np.array([k], dtype=np.int64)
        dec_hdr = None
    elif mode in (GROUPED, PREFIX, PREFIX_EXTEND):
        if mode == PREFIX_EXTEND and base is None:
            raise DecodeError(
                "index-set section: extends a labelled set, but none was given (a delta without its parent)"
            )
        key = r.uvarint(limit=MAX_KEY, name="prefix key") if mode != GROUPED else 0
        sizes = _validate_sizes(n, segments)
        nb = bit_length(sizes)
        present = sorted(set(nb.tolist()))
        nbk = r.uvarint(limit=MAX_SIZE_BUCKETS, name="size bucket count")
        if nbk != len(present):
            raise DecodeError("index-set section: its segment buckets do not match the local manifest")
        hists = []
        for b in present:
            h = np.array([r.uvarint(limit=sizes.size, name="bucket count") for _ in range(b + 1)], dtype=np.int64)
            if int(h.sum()) != int((nb == b).sum()):
                raise DecodeError("index-set section: bucket histogram does not match the local manifest")
            hists.append(h)
        dec_hdr = (hists, present)
        counts = None
    else:
        raise DecodeError(f"index-set section: unknown coder mode {mode}")
    dec = Decoder(r.raw(r.remaining()), "index-set section")
    if dec_hdr is not None:
        counts = _count_decode(dec, sizes, *dec_hdr)
        if (counts > sizes).any() or int(counts.sum()) != k:
            raise DecodeError("index-set section: per-segment counts are inconsistent; the payload was altered")
    if mode == PREFIX:
        dec.finish()
        return prefix_select(n, counts, key, sizes)
    if mode == PREFIX_EXTEND:
        dec.finish()
        try:
            return prefix_select(n, counts, key, sizes, np.unique(np.asarray(base, dtype=np.int64)))
        except ValueError as e:
            raise DecodeError(f"index-set section: counts exceed the items not yet held ({e})") from e
    comp = 2 * counts > sizes
    kprime = np.where(comp, sizes - counts, counts)
    pseg, ploc = _gap_decode(dec, sizes, kprime)
    dec.finish()
    starts = np.concatenate([[0], np.cumsum(sizes)])
    # rebuild selected sets from coded sets (complemented segments invert)
    out = [starts[pseg[~comp[pseg]]] + ploc[~comp[pseg]]]
    for s in np.flatnonzero(comp):
        m = np.ones(int(sizes[s]), dtype=bool)
        m[ploc[pseg == s]] = False
        out.append(starts[s] + np.flatnonzero(m))
    idx = np.sort(np.concatenate(out))
    if idx.size != k:
        raise DecodeError("index-set section: decoded count differs from the header; the payload was altered")
    return idx


def decode_indices(
    data: bytes, n: int, k: int, segments: np.ndarray | None = None, base: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_indices` (``base``: the indices already held, for PREFIX_EXTEND);
    raises only DecodeError on malformed input."""
    if not 0 < n <= MAX_ITEMS or not 0 <= k <= n:
        raise DecodeError(f"index-set section: impossible sizes N={n}, k={k}")
    return guarded(_decode, "index-set section")(data, n, k, segments, base)
