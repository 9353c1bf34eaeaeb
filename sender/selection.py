"""Selection strategies: which reference items carry the task.

Every strategy turns teacher logits into a *rank* (lower = keep first); a
selection of size k takes the best-ranked items, optionally under a per-class
quota K_c ∝ N_c^α over the teacher's pseudo-label counts N_c (α = 0: equal per
class, α = 1: proportional), with at least one item for every class the teacher
ever predicts. Selections are deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["STRATEGIES", "SelectConfig", "rank_items", "select", "quota_counts", "pseudo_labels"]

STRATEGIES = ("random", "energy", "energy-high", "msp", "entropy", "margin", "el2n-easy")


@dataclass
class SelectConfig:
    strategy: str = "random"  # one of STRATEGIES
    quota: bool = True  # apply the per-class quota
    alpha: float = 0.0  # quota exponent: 0 equal per class, 1 proportional to pseudo-label counts
    temperature: float = 1.0  # T of the free energy −T·logsumexp(logits/T)
    seed: int = 0


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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
    if cfg.strategy == "random":
        return np.random.default_rng(cfg.seed).random(n)
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
        p = _softmax(z)
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


def quota_counts(counts: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """Per-class quota summing to min(k, available): K_c ∝ N_c^α, ≥ 1 per predicted class."""
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
    w = np.where(present, counts.astype(np.float64) ** alpha, 0.0)
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


def rank_items(logits: np.ndarray, cfg: SelectConfig) -> np.ndarray:
    """Item indices, best first (ties broken by index)."""
    s = item_scores(logits, cfg)
    return np.lexsort((np.arange(s.size), s))


def select(logits: np.ndarray, k: int, cfg: SelectConfig, order: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k selected items (sorted)."""
    order = rank_items(logits, cfg) if order is None else order
    if not cfg.quota:
        return np.sort(order[:k])
    pl = pseudo_labels(logits)
    counts = np.bincount(pl, minlength=logits.shape[1])
    q = quota_counts(counts, k, cfg.alpha)
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
