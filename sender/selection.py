"""Selection strategies: which reference items carry the task.

Every strategy turns teacher logits into a *rank* (lower = keep first); a
selection of size k takes the best-ranked items, optionally under a per-class
quota K_c ∝ N_c^α over the teacher's pseudo-label counts N_c (α = 0: equal per
class, α = 1: proportional), with at least one item for every class the teacher
ever predicts. Selections are deterministic for a given seed.

``random-keyed`` draws at random too, but in the codec's *keyed order* within each
segment of the manifest (``codec.indexset.prefix_select``): every selection is,
per segment, a prefix of that order, so the payload sends only per-segment counts
and no positions (the PREFIX index mode). With content-clustered stores
(``reference build --clusters K``) that also makes labels cheap: the item budget of
a link grows several-fold. The quota is honoured greedily: at each step the class
furthest below its share takes the head of the segment it heads that is least
filled.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from ..codec.indexset import MAX_KEY, keyed_order, prefix_select

__all__ = [
    "STRATEGIES",
    "SelectConfig",
    "rank_items",
    "select",
    "quota_counts",
    "pseudo_labels",
    "keyed_sequence",
    "prefix_key",
    "keyed_like",
    "softmax",
    "AUTO",
    "median_confidence",
    "choose_auto",
]

STRATEGIES = ("random", "random-keyed", "energy", "energy-high", "msp", "entropy", "margin", "el2n-easy")


@dataclass
class SelectConfig:
    """How the reference items are chosen and ordered (``sender/selection.py``).

    Attributes:
        strategy: one of STRATEGIES (random-keyed: the measured in-domain winner)
        quota: apply the per-class quota
        alpha: quota exponent: 0 equal per class, 1 proportional to pseudo-label counts
        temperature: T of the free energy −T·logsumexp(logits/T)
        seed: seed of the random and keyed orders (both ends derive the keyed order from it)
        keyed: keep the strategy's count per segment, but take random items in the keyed order
        class_weights: the quota's share per class instead of N_c^α (``send --field``: the device's field
            class mix, floored: ``codec.field.prior_weights``); None: N_c^α
    """

    strategy: str = "random-keyed"
    quota: bool = True
    alpha: float = 0.0
    temperature: float = 1.0
    seed: int = 0
    keyed: bool = False
    class_weights: tuple[float, ...] | None = None


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax(logits / T) in float64 (the teacher's probabilities, soft labels)."""
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ``--strategy auto``: the selection benchmark's winners on each side of the domain line
# (docs/results.md, chosen on its validation slice). A pool is "far" when the teacher's median
# max-softmax on it has lost more than ``shift`` of the teacher's own margin over chance, (t − p) /
# (t − 1/C), with t its median on its training data (built-in scenarios: fashion 0.01, digits 0.31).
# Far pools get energy-high with soft labels unless the budget leaves fewer than
# ``soft_min_per_class`` soft-labelled items per class; then easy items with hard labels (digits at
# 1 KiB: 9 soft items per class, 0.33; EL2N-easy 0.57; at 2 KiB: 31 per class, soft wins).
AUTO: dict = {
    "shift": 0.15,
    "near": {"strategy": "random-keyed"},
    "far": {"strategy": "energy-high", "soft": True, "soft_extra": 4, "soft_temperature": 2.0},
    "far_small": {"strategy": "el2n-easy"},
    # text stores: the margin strategy's count per cluster, random items in the keyed order (docs/text.md);
    # below ``soft_min_per_class`` items per class plain random-keyed (wordnet, 3 seeds: 270 B 0.369 vs 0.328
    # for margin-keyed at ~15 items per class; 1 KiB ~265 per class, margin-keyed wins)
    "text": {"strategy": "margin", "keyed": True},
    "text_small": {"strategy": "random-keyed"},
    "soft_min_per_class": 20,
}


def median_confidence(logits: np.ndarray, chunk: int = 1 << 18) -> float:
    """Median over rows of the max-softmax probability (chunked; float32 per row)."""
    n = logits.shape[0]
    if n == 0:
        raise ValueError("no logits")
    msp = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):
        msp[s : s + chunk] = softmax(np.asarray(logits[s : s + chunk])).max(axis=1)
    return float(np.median(msp))


def choose_auto(logits: np.ndarray, teacher_confidence: float | None, shift: float = AUTO["shift"]) -> dict:
    """Decide ``auto``: ``far`` when the pool's median confidence p has lost more than ``shift`` of
    the teacher's margin over chance, (t − p) / (t − 1/C), where t is the teacher's median on its
    training data (``teacher_confidence``, ONNX metadata written by ``teacher train``). Without t (a
    foreign teacher), or with a teacher no better than chance, the pool counts as near."""
    pool = median_confidence(logits)
    chance = 1.0 / logits.shape[1]
    if teacher_confidence is None or teacher_confidence <= chance:
        return {
            "far": False,
            "pool_confidence": round(pool, 4),
            "teacher_confidence": teacher_confidence,
            "shift": None,
        }
    gap = (float(teacher_confidence) - pool) / (float(teacher_confidence) - chance)
    return {
        "far": gap > shift,
        "pool_confidence": round(pool, 4),
        "teacher_confidence": round(float(teacher_confidence), 4),
        "shift": round(gap, 4),
        "threshold": shift,
    }


def pseudo_labels(logits: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Argmax per item, in chunks (a memory-mapped N × C score file never sits in RAM at once)."""
    out = np.empty(logits.shape[0], dtype=np.int64)
    for s in range(0, logits.shape[0], chunk):
        out[s : s + chunk] = np.asarray(logits[s : s + chunk]).argmax(axis=1)
    return out


def item_scores(logits: np.ndarray, cfg: SelectConfig, chunk: int = 1 << 18) -> np.ndarray:
    """Per-item score, lower = better, for a logits matrix (processed in chunks)."""
    n = logits.shape[0]
    out = np.empty(n, dtype=np.float64)
    if cfg.strategy in ("random", "random-keyed"):
        return np.random.default_rng(cfg.seed).random(n)
    if cfg.strategy == "auto":
        raise ValueError("strategy 'auto' is resolved by send() (choose_auto); select with a concrete strategy")
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}; choose from {', '.join(STRATEGIES)}")
    t = cfg.temperature
    for s in range(0, n, chunk):
        z = np.asarray(logits[s : s + chunk], dtype=np.float64)
        if cfg.strategy in ("energy", "energy-high"):
            m = z.max(axis=1, keepdims=True)
            energy = -t * (np.log(np.exp((z - m) / t).sum(axis=1)) + m[:, 0] / t)
            out[s : s + chunk] = energy if cfg.strategy == "energy" else -energy
            continue
        p = softmax(z)
        if cfg.strategy == "msp":
            out[s : s + chunk] = -p.max(axis=1)
        elif cfg.strategy == "entropy":
            out[s : s + chunk] = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
        elif cfg.strategy == "margin":
            top2 = np.sort(p, axis=1)[:, -2:]
            out[s : s + chunk] = -(top2[:, 1] - top2[:, 0])
        elif cfg.strategy == "el2n-easy":
            onehot = np.zeros_like(p)
            onehot[np.arange(p.shape[0]), p.argmax(axis=1)] = 1
            out[s : s + chunk] = np.sqrt(((p - onehot) ** 2).sum(axis=1))
    return out


def quota_counts(counts: np.ndarray, k: int, alpha: float, weights=None) -> np.ndarray:
    """Per-class quota summing to min(k, available): K_c ∝ N_c^α (or ∝ ``weights``), ≥ 1 per predicted class."""
    counts = np.asarray(counts, dtype=np.int64)
    present = counts > 0
    k = int(min(k, counts.sum()))
    q = np.zeros_like(counts)
    if k == 0:
        return q
    if present.sum() > k:  # fewer slots than classes: the largest classes get one each
        order = np.argsort(-counts, kind="stable")[:k]
        q[order] = 1
        return q
    q[present] = 1
    w = np.where(present, _class_weights(counts, alpha, weights), 0.0)
    remaining = k - int(q.sum())
    # water-filling: share the rest by weight, capped by availability
    while remaining > 0:
        room = counts - q
        active = room > 0
        if not active.any():
            break
        share = w * active
        share = share / share.sum() * remaining
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:
            frac = share - np.floor(share)
            order = np.argsort(-(frac + 1e-9 * w), kind="stable")
            for c in order:
                if remaining == 0:
                    break
                if room[c] > 0:
                    q[c] += 1
                    remaining -= 1
            break
        q += add
        remaining -= int(add.sum())
    return q


def _class_weights(counts: np.ndarray, alpha: float, weights) -> np.ndarray:
    """The quota's weight per class: the given ``weights`` (a field's class mix), else N_c^α."""
    if weights is None:
        return np.maximum(counts, 1).astype(np.float64) ** alpha
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != counts.shape or not (w > 0).all():
        raise ValueError(f"class_weights needs {counts.size} positive weights, one per class")
    return w


def prefix_key(cfg: SelectConfig) -> int | None:
    """The codec's PREFIX key for this selection (``random-keyed``), else None."""
    return cfg.seed & MAX_KEY if (cfg.strategy == "random-keyed" or cfg.keyed) else None


def keyed_like(indices: np.ndarray, segments: np.ndarray | None, n: int, key: int) -> np.ndarray:
    """The PREFIX-codable selection with the same number of items per segment as ``indices``."""
    sizes = np.array([n], dtype=np.int64) if segments is None else np.asarray(segments, dtype=np.int64)
    ends = np.cumsum(sizes)
    counts = np.bincount(np.searchsorted(ends, np.asarray(indices), side="right"), minlength=sizes.size)
    return prefix_select(n, counts[: sizes.size], key, sizes)


def keyed_sequence(
    labels: np.ndarray,
    segments: np.ndarray | None,
    key: int,
    quota: bool = True,
    alpha: float = 0.0,
    classes: int | None = None,
    weights=None,
) -> np.ndarray:
    """All items in the order ``random-keyed`` takes them; any prefix of it is a per-segment prefix
    of the codec's keyed order. ``labels``: the teacher's pseudo-label per item."""
    lab = np.asarray(labels, dtype=np.int64)
    n = lab.size
    sizes = np.array([n], dtype=np.int64) if segments is None else np.asarray(segments, dtype=np.int64)
    if int(sizes.sum()) != n:
        raise ValueError("segment sizes must sum to the number of items")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    orders = [keyed_order(key, int(st), int(sz)) for st, sz in zip(starts, sizes, strict=True)]
    c = int(classes or (lab.max() + 1 if n else 1))
    counts = np.bincount(lab, minlength=c)
    weight = np.where(counts > 0, _class_weights(counts, alpha, weights), np.inf)
    filled = np.zeros(c, dtype=np.float64)
    taken = np.zeros(sizes.size, dtype=np.int64)
    heaps: dict[int, list] = {}
    # per class (or one pool without quota): segments whose next item has that class, least filled first
    for s, o in enumerate(orders):
        if o.size:
            heapq.heappush(heaps.setdefault(int(lab[o[0]]) if quota else 0, []), (0.0, s))
    need = np.full(c if quota else 1, np.inf)
    for cls in heaps:
        need[cls] = filled[cls] / weight[cls] if quota else 0.0
    out = np.empty(n, dtype=np.int64)
    for step in range(n):
        cls = int(need.argmin())
        _, s = heapq.heappop(heaps[cls])
        item = orders[s][taken[s]]
        out[step] = item
        taken[s] += 1
        if quota:
            filled[cls] += 1
        if not heaps[cls]:
            need[cls] = np.inf
        elif quota:
            need[cls] = filled[cls] / weight[cls]
        if taken[s] < sizes[s]:
            nxt = int(lab[orders[s][taken[s]]]) if quota else 0
            heapq.heappush(heaps.setdefault(nxt, []), (taken[s] / sizes[s], s))
            need[nxt] = filled[nxt] / weight[nxt] if quota else 0.0
    return out


def rank_items(logits: np.ndarray, cfg: SelectConfig, segments: np.ndarray | None = None) -> np.ndarray:
    """Item indices, best first (ties broken by index). ``segments``: the manifest's group runs
    (used by ``random-keyed``)."""
    if cfg.strategy == "random-keyed":
        lab = pseudo_labels(logits)
        return keyed_sequence(lab, segments, prefix_key(cfg), cfg.quota, cfg.alpha, logits.shape[1], cfg.class_weights)
    s = item_scores(logits, cfg)
    return np.lexsort((np.arange(s.size), s))


def select(
    logits: np.ndarray,
    k: int,
    cfg: SelectConfig,
    order: np.ndarray | None = None,
    segments: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the k selected items (sorted). For ``random-keyed`` pass the ``order`` that
    :func:`rank_items` gave with the manifest's segments (without it: one segment); with
    ``cfg.keyed`` pass the ``segments``."""
    order = rank_items(logits, cfg, segments) if order is None else order
    if cfg.strategy == "random-keyed":  # the quota is already in the sequence
        return np.sort(order[:k])
    idx = _select_ranked(logits, k, cfg, order)
    return keyed_like(idx, segments, logits.shape[0], prefix_key(cfg)) if cfg.keyed else idx


def _select_ranked(logits: np.ndarray, k: int, cfg: SelectConfig, order: np.ndarray) -> np.ndarray:
    if not cfg.quota:
        return np.sort(order[:k])
    pl = pseudo_labels(logits)
    counts = np.bincount(pl, minlength=logits.shape[1])
    q = quota_counts(counts, k, cfg.alpha, cfg.class_weights)
    # walk the ranking once; each class takes its best-ranked items up to its quota
    lab = pl[order]
    rank_in_class = _rank_within(lab, logits.shape[1])
    keep = rank_in_class < q[lab]
    return np.sort(order[keep])


def _rank_within(lab: np.ndarray, classes: int) -> np.ndarray:
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    starts = np.searchsorted(sorted_lab, np.arange(classes))
    r = np.empty(lab.size, dtype=np.int64)
    r[order] = np.arange(lab.size) - starts[sorted_lab]
    return r
