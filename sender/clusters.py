"""Content clusters for a reference store: groups that make labels cheap.

The codec codes labels adaptively per *segment* (a run of one group in canonical
order) and, in its PREFIX mode, sends only how many items each segment gives.
When a store's groups are content clusters — items that look alike, stored
next to each other — a label costs about its conditional entropy given the
cluster (≈ 1.3 bits instead of log2 C on Fashion-MNIST with 32 clusters) and a
random selection costs no position bits at all. This module finds the clusters:
a fixed-size thumbnail of every item, PCA to ``dims`` components and k-means
(k-means++ seeding, Lloyd steps) fitted on a seeded sample, then every item
assigned in chunks — memory grows with the sample, not with N.

It runs once, on the ground, when the store is built (``labelcast reference
build --clusters K``); the device receives the store with its manifest and never
recomputes anything, so the floats here need not agree across machines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec.field import thumbnails  # the one thumbnail both ends compute
from ..codec.text import text_features  # the text features both ends compute

__all__ = [
    "ClusterConfig",
    "thumbnails",
    "fit_clusters",
    "assign_clusters",
    "cluster_items",
    "cluster_order",
    "cluster_texts",
    "cluster_vectors",
    "text_features",
]


@dataclass
class ClusterConfig:
    """k clusters from ``dims`` PCA components of a 14×14 grey thumbnail; fit on ≤ ``sample`` items."""

    k: int = 32
    dims: int = 32
    sample: int = 20000
    iters: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 1 << 20:
            raise ValueError("cluster count must be in 1..1,048,576")


class Clusters:
    """A fitted model: PCA mean/basis and centroids."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, centroids: np.ndarray):
        self.mean, self.basis, self.centroids = mean, basis, centroids

    def assign(self, thumbs: np.ndarray) -> np.ndarray:
        f = (thumbs - self.mean) @ self.basis
        d = (f**2).sum(1)[:, None] - 2 * f @ self.centroids.T + (self.centroids**2).sum(1)[None, :]
        return d.argmin(axis=1).astype(np.uint32)


def fit_clusters(thumbs: np.ndarray, cfg: ClusterConfig) -> Clusters:
    """PCA + k-means on a sample of thumbnails (float64 for the fit)."""
    rng = np.random.default_rng(cfg.seed)
    t = np.asarray(thumbs, dtype=np.float64)
    if t.shape[0] > cfg.sample:
        t = t[np.sort(rng.choice(t.shape[0], cfg.sample, replace=False))]
    mean = t.mean(axis=0)
    _, _, vt = np.linalg.svd(t - mean, full_matrices=False)
    basis = vt[: min(cfg.dims, vt.shape[0])].T
    f = (t - mean) @ basis
    k = min(cfg.k, f.shape[0])
    # k-means++ seeding
    cent = [f[rng.integers(f.shape[0])]]
    d2 = ((f - cent[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(f.shape[0], 1.0 / f.shape[0])
        cent.append(f[rng.choice(f.shape[0], p=p)])
        d2 = np.minimum(d2, ((f - cent[-1]) ** 2).sum(1))
    c = np.array(cent)
    for _ in range(cfg.iters):
        a = ((f**2).sum(1)[:, None] - 2 * f @ c.T + (c**2).sum(1)[None, :]).argmin(1)
        sums = np.zeros_like(c)
        np.add.at(sums, a, f)
        cnt = np.bincount(a, minlength=k)
        moved = np.where(cnt[:, None] > 0, sums / np.maximum(cnt, 1)[:, None], c)
        if np.allclose(moved, c):
            break
        c = moved
    return Clusters(mean.astype(np.float32), basis.astype(np.float32), c.astype(np.float32))


def assign_clusters(items: np.ndarray, model: Clusters, chunk: int = 8192) -> np.ndarray:
    """Cluster id per item (uint32), computed chunk by chunk."""
    out = np.empty(items.shape[0], dtype=np.uint32)
    for s in range(0, items.shape[0], chunk):
        out[s : s + chunk] = model.assign(thumbnails(items[s : s + chunk]))
    return out


def cluster_items(items: np.ndarray, cfg: ClusterConfig | None = None, chunk: int = 8192) -> np.ndarray:
    """Fit on a seeded sample and assign every item; returns cluster ids renumbered 0..K'−1 with empty
    clusters dropped (ascending order of the fitted ids kept)."""
    cfg = cfg or ClusterConfig()
    n = items.shape[0]
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.choice(n, min(n, cfg.sample), replace=False)) if n else np.zeros(0, dtype=np.int64)
    model = fit_clusters(thumbnails(items[pick]), cfg)
    cl = assign_clusters(items, model, chunk)
    return _renumber(cl)


def _renumber(cl: np.ndarray) -> np.ndarray:
    """Cluster ids 0..K'−1 with empty clusters dropped (ascending order of the fitted ids kept)."""
    used = np.unique(cl)
    remap = np.zeros(int(cl.max()) + 1 if cl.size else 1, dtype=np.uint32)
    remap[used] = np.arange(used.size, dtype=np.uint32)
    return remap[cl]


def cluster_order(groups: np.ndarray) -> np.ndarray:
    """The store order that makes every cluster one run: by cluster, then by source order."""
    g = np.asarray(groups)
    return np.lexsort((np.arange(g.size), g))


def cluster_texts(texts, cfg: ClusterConfig | None = None, chunk: int = 8192) -> np.ndarray:
    """Text items' clusters (k-means on :func:`text_features` with idf from a seeded sample), renumbered
    0..K'−1 as :func:`cluster_items` does."""
    cfg = cfg or ClusterConfig()
    n = len(texts)
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.choice(n, min(n, cfg.sample), replace=False)) if n else np.zeros(0, dtype=np.int64)
    sample = text_features([texts[i] for i in pick])
    df = (sample > 0).sum(0)
    idf = np.log((1 + pick.size) / (1 + df)).astype(np.float32) + 1
    model = fit_clusters(sample * idf / np.maximum(np.linalg.norm(sample * idf, axis=1, keepdims=True), 1e-6), cfg)
    cl = np.empty(n, dtype=np.uint32)
    for s in range(0, n, chunk):
        cl[s : s + chunk] = model.assign(text_features(texts[s : s + chunk], idf))
    return _renumber(cl)


def cluster_vectors(x: np.ndarray, cfg: ClusterConfig | None = None, chunk: int = 8192) -> np.ndarray:
    """Feature vectors' clusters (N × D floats, a vector store's items): each feature standardised with the
    mean/std of a seeded sample, then PCA + k-means as for images; renumbered 0..K'−1 as
    :func:`cluster_items` does."""
    cfg = cfg or ClusterConfig()
    n = x.shape[0]
    rng = np.random.default_rng(cfg.seed)
    pick = np.sort(rng.choice(n, min(n, cfg.sample), replace=False)) if n else np.zeros(0, dtype=np.int64)
    sample = np.asarray(x[pick], dtype=np.float32)
    mu, sd = sample.mean(0), sample.std(0)
    sd = np.maximum(sd, max(1e-6, 0.01 * float(sd.mean()) if sd.size else 1e-6))
    model = fit_clusters((sample - mu) / sd, cfg)
    cl = np.empty(n, dtype=np.uint32)
    for s in range(0, n, chunk):
        cl[s : s + chunk] = model.assign((np.asarray(x[s : s + chunk], dtype=np.float32) - mu) / sd)
    return _renumber(cl)
