"""Learn from the whole store: label propagation over the device's unlabelled reference items.

The payload labels a few hundred store items; the device holds them all. With ``--semi`` the device
trains as before (round 1), then:

1. draws an **unlabelled pool** of store items (:func:`unlabelled_pool`: seeded by the payload, never an
   item the payload labels — so never a held-back validation item), as many as fit half the profile's
   memory (:func:`fitting_pool`, :func:`semi_memory`);
2. links every labelled and pool item to its ``neighbours`` nearest by cosine (:func:`knn_graph`) in a
   view of the store **independent of the student**: for images, histograms of their oriented gradients,
   whitened PCA (:func:`gradient_features`); vectors: their own values, whitened PCA
   (:func:`input_features`); a text store uses the round-1 student's penultimate features (:func:`embed`);
3. **propagates** the labels over that graph (:func:`propagate`: Zhou et al. 2004,
   ``Z = (I - αS)⁻¹ Y`` by iteration, ``S`` the symmetrically normalised affinity; Iscen et al. 2019);
4. gives each pool item the class of the propagated scores weighed with the round-1 student's
   posteriors — two views whose errors differ — keeping the most certain ``keep`` share of each class;
5. trains **round 2** warm from round 1 on the labelled items (repeated to ``labelled_share`` of the
   set) and the pseudo-labelled pool items, for ``fraction`` of the images round 1 saw.

Round 2 checkpoints to its own file, so a power cut in either round resumes where it stopped and ends
with the weights of an uninterrupted run. The receive report's ``semi`` says what ran (``recipe``: the
graph's view and the fields :meth:`SemiConfig.resolved` filled), how many store items were used, the
pseudo-labels' class counts, the held-back slice's accuracy after each round and the seconds it took.

When it runs (:func:`semi_decision`): ``on`` / ``off`` force it; ``auto`` follows the payload's hint
``semi`` when the sender set one, else runs when the payload labels at most ``AUTO_MAX_PER_CLASS``
training items per class and the store holds at least ``AUTO_MIN_STORE`` items; then, after propagation,
round 2 trains only when propagation and the round-1 student agree on at least ``min_agreement`` of the
pool (both chosen on validation data: ``benchmarks/semi.py``, docs/results.md "Semi-supervised").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = [
    "SemiConfig",
    "SEMI_MODES",
    "AUTO_MAX_PER_CLASS",
    "AUTO_MIN_STORE",
    "semi_decision",
    "unlabelled_pool",
    "embed",
    "knn_graph",
    "propagate",
    "pseudo_labels",
    "semi_round",
    "semi_memory",
    "semi_feature_dim",
    "fitting_pool",
    "item_bytes_of",
    "gradient_histograms",
    "gradient_features",
    "GRADIENT_RECIPE",
    "GENERAL_RECIPE",
    "graph_view",
]

SEMI_MODES = ("auto", "on", "off")
# validation (benchmarks/semi.py, 3 seeds, 10,000 train-split items): gains at 11 (text, +3.54 points) and 30
# (fashion, +2.97) labels per class, losses at 42 (digits, −9.72), 329 (fashion, −0.16) and 1,108 (text, −0.58): on
# up to 35. At 7 (digits, −9.65) the pool is far, which SemiConfig.min_agreement catches (agreement 0.42)
AUTO_MAX_PER_CLASS = 35
# below this many store items there is little to propagate over (the round's pool is the store less the labels);
# not measured smaller than the built-in stores (66,797 and 133,230 items)
AUTO_MIN_STORE = 5_000

# the gradients view of an image store (gradient_histograms, gradient_features)
GRADIENT_GRIDS = (9, 7)  # cells per side of the two histogram grids (any image size gives the same 3,600 dims)
GRADIENT_BINS = 9  # unsigned orientations per cell
GRADIENT_FIT = 4096  # items the PCA is fitted on (evenly spaced)
GRADIENT_CHUNK = 1024  # items whose histograms are made at once when projecting
GRADIENT_DIMS = 4 * GRADIENT_BINS * sum((g - 1) ** 2 for g in GRADIENT_GRIDS)  # 3,600: 2×2 blocks, each grid
# the round's recipe over the gradients view of an image store, where SemiConfig leaves a field None (chosen on
# validation data, docs/results.md "Semi-supervised"); every other store: GENERAL_RECIPE
GRADIENT_RECIPE = {"propagation_weight": 0.8, "mass_keep": 0.7, "fraction": 0.75}
GENERAL_RECIPE = {"propagation_weight": 0.5, "mass_keep": 1.0, "fraction": 0.5}


@dataclass(frozen=True)
class SemiConfig:
    """The semi-supervised round's recipe.

    Attributes:
        pool: store items drawn for the unlabelled pool (fewer when the store is smaller)
        text_pool: the same for a text store (chosen on validation data, docs/results.md "Semi-supervised":
            on wordnet at 270 B 10,000 texts scored 0.51 points above 20,000 and cost 1.62× round 1's training
            time against 1.81×; on fashion 10,000 images scored 0.30 below 20,000)
        neighbours: nearest neighbours per item in the graph
        alpha: propagation's weight on the graph against the labels (0 < alpha < 1)
        iterations: propagation steps
        gamma: affinity = cosine ** gamma (sharper neighbourhoods)
        keep: share of each class's pseudo-labelled pool items kept, most certain first
        fraction: round 2's share of the images round 1 saw (its ``train_samples``, or fewer when its
            ``max_epochs`` capped a small set: a few hundred labels see at most 300 passes); passes over round 2's
            set are whole. None: 0.75 over the gradients view of an image store, else 0.5 (:meth:`resolved`)
        labelled_share: the labelled items' share of round 2's training set (they are repeated)
        targets: hard: a kept pool item's class; soft: its scores (propagation and student averaged, sharpened
            by squaring)
        features: the graph's space: gradients (an image store: histograms of oriented gradients of the items,
            whitened PCA, :func:`gradient_features`; vectors and texts: as input), input (the items' own values,
            whitened PCA: a view independent of the student, whose posteriors it is averaged with), student (the
            round-1 student's penultimate features) or both (input and student side by side; images and vectors).
            Chosen on validation data (docs/results.md "Semi-supervised"): on fashion at 270 B propagation over
            the gradients labelled the pool's Fashion-MNIST items 0.829 correctly against 0.783 over the pixels
        input_dims: PCA dimensions of ``features = "gradients"`` and ``"input"``
        rounds: pseudo-label-and-train rounds after round 1, each from the one before
        min_agreement: under ``auto``, round 2 runs only when propagation and the round-1 student agree on at
            least this share of the pool (below it the store's structure does not carry the task: a far pool);
            ``--semi on`` skips the check. Chosen on validation data (``benchmarks/semi.py``)
        field_pool: with the device's field captures (``receive --field``): the store part of the pool is drawn
            by the device's own sketch (a group's odds: its share of the captures, tempered as the sender's quota
            is), so round 2 learns most from what the device meets; chosen on validation data
            (``benchmarks/field.py --choose-semi``, docs/field.md)
        mass_keep: share of the pool kept by propagated mass (the unnormalised scores' sum: how strongly an item
            is linked to the labelled ones through the graph), most first, before ``keep``; 1: every item.
            None: 0.7 over the gradients view of an image store, else 1 (:meth:`resolved`)
        erase: round 2's random-erasing probability per image (``StudentConfig.erase``: a noised student, as in
            Xie et al. 2020's noisy student); images only
        shift: round 2's crop padding in pixels (``StudentConfig.shift``); None: round 1's
        agree_only: keep only the pool items on which propagation and the round-1 student give the same class
        flip_views: where the task allows flips (the student's ``flip``), the student's posteriors are those of
            each image and its mirror, averaged
        propagation_weight: the pseudo-label score is this share of propagation's and the rest the student's;
            None: 0.8 over the gradients view of an image store, else 0.5 (:meth:`resolved`).
            The gradients view's three (``GRADIENT_RECIPE``) were chosen together on validation data at 270 B
            (docs/results.md "Semi-supervised": the recipe table); the general ones are the earlier defaults
        (erase, agree_only, flip_views: measured on validation, none beats the defaults: docs/results.md
        "Semi-supervised")
        text_input: with ``features = "input"`` on a text store, the graph's space is the texts' own hashed words
            (log-count × idf, whitened PCA: :func:`input_features`) instead of the round-1 student's features
    """

    pool: int = 20_000
    text_pool: int = 10_000
    neighbours: int = 10
    alpha: float = 0.99
    iterations: int = 20
    gamma: float = 3.0
    keep: float = 1.0
    fraction: float | None = None
    labelled_share: float = 0.1
    targets: str = "hard"
    features: str = "gradients"
    input_dims: int = 128
    rounds: int = 1
    field_pool: bool = True
    min_agreement: float = 0.6
    text_input: bool = False
    mass_keep: float | None = None
    erase: float = 0.0
    shift: int | None = None
    agree_only: bool = False
    flip_views: bool = False
    propagation_weight: float | None = None

    def __post_init__(self) -> None:
        if self.pool < 1 or self.text_pool < 1 or self.neighbours < 1 or self.iterations < 1 or self.rounds < 1:
            raise ValueError("semi: pool, text_pool, neighbours and iterations must be at least 1")
        if not 0 <= self.erase <= 1 or (self.shift is not None and self.shift < 0):
            raise ValueError("semi: need 0 <= erase <= 1 and shift >= 0")
        if self.mass_keep is not None and not 0 < self.mass_keep <= 1:
            raise ValueError("semi: need 0 < mass_keep <= 1")
        if self.fraction is not None and not 0 < self.fraction:
            raise ValueError("semi: need fraction > 0")
        if not (0 < self.alpha < 1 and 0 < self.keep <= 1 and 0 < self.labelled_share < 1):
            raise ValueError("semi: need 0 < alpha < 1, 0 < keep <= 1, 0 < labelled_share < 1")
        if self.targets not in ("hard", "soft") or self.features not in ("gradients", "input", "student", "both"):
            raise ValueError("semi: targets is hard or soft; features is gradients, input, student or both")
        if self.propagation_weight is not None and not 0 <= self.propagation_weight <= 1:
            raise ValueError("semi: need 0 <= propagation_weight <= 1")

    def resolved(self, x: np.ndarray) -> SemiConfig:
        """The recipe for items like ``x`` with every None field filled: from ``GRADIENT_RECIPE`` when the graph is
        built in the gradients view (:func:`graph_view`: an image store's default), else from ``GENERAL_RECIPE``."""
        recipe = GRADIENT_RECIPE if graph_view(self, x) == "gradients" else GENERAL_RECIPE
        return replace(self, **{k: v for k, v in recipe.items() if getattr(self, k) is None})

    def pool_size(self, x: np.ndarray) -> int:
        """The pool this recipe draws for items like ``x``: ``text_pool`` for texts, else ``pool``."""
        return self.text_pool if x.dtype == object else self.pool


def semi_decision(
    mode: str, hints: dict, train_items: int, classes: int, kind: str, store_items: int | None = None
) -> tuple[bool, str]:
    """Whether the semi-supervised round runs, and why (the receive report records both). ``kind`` is the
    store's (every kind is supported; it is recorded for the report's reader); ``store_items``: under
    ``auto`` a store with fewer than ``AUTO_MIN_STORE`` items is not propagated over."""
    if mode not in SEMI_MODES:
        raise ValueError(f"semi must be one of {', '.join(SEMI_MODES)}, not {mode!r}")
    if mode != "auto":
        return mode == "on", f"--semi {mode}"
    hint = hints.get("semi")
    if isinstance(hint, bool):
        return hint, f"payload hint semi={str(hint).lower()}"
    if store_items is not None and store_items < AUTO_MIN_STORE:
        return False, f"auto: the {kind} store holds {store_items:,} items < {AUTO_MIN_STORE:,}"
    per = train_items / max(classes, 1)
    if per <= AUTO_MAX_PER_CLASS:
        return True, f"auto: {per:.0f} labelled items per class <= {AUTO_MAX_PER_CLASS}"
    return False, f"auto: {per:.0f} labelled items per class > {AUTO_MAX_PER_CLASS}"


def unlabelled_pool(
    n: int, exclude: np.ndarray, size: int, seed: bytes | int, weights: np.ndarray | None = None
) -> np.ndarray:
    """``size`` store indices (sorted), drawn without the ``exclude``d ones (every item the payload labels,
    held-back validation items included) from a stream seeded by ``seed`` (the payload's hash); ``weights``:
    one per store item, the draw's odds (None: even)."""
    s = int.from_bytes(seed[:8], "little") if isinstance(seed, bytes) else int(seed)
    free = np.setdiff1d(np.arange(n, dtype=np.int64), np.asarray(exclude, dtype=np.int64))
    if free.size <= size:
        return free
    p = None
    if weights is not None:
        p = np.asarray(weights, dtype=np.float64)[free]
        p = p / p.sum() if p.sum() > 0 else None
    return np.sort(np.random.default_rng(s).choice(free, size, replace=False, p=p))


def semi_memory(
    pool: int,
    labelled: int,
    item_bytes: int,
    feature_dim: int,
    classes: int,
    cfg: SemiConfig,
    view: str | None = None,
) -> int:
    """Bytes the round adds before round 2's own training: the pool's items and the round-2 set (uint8),
    features, posteriors, the graph, propagation's arrays and one similarity block; in the gradients view, its fit
    sample's and one chunk's histograms. ``view``: the graph's (:func:`graph_view`; None: ``cfg.features``)."""
    n = pool + labelled
    items = 2 * pool * item_bytes + labelled * item_bytes
    graph = n * cfg.neighbours * (8 + 4 + 8)
    lp = 4 * n * classes * 8 + 2 * n * cfg.neighbours * (classes * 8 + 16)
    hist = (min(n, GRADIENT_FIT) + GRADIENT_CHUNK) * GRADIENT_DIMS * 4 if (view or cfg.features) == "gradients" else 0
    return int(items + n * feature_dim * 4 + n * classes * 4 + graph + lp + _block(n) * n * 4 + hist)


def fitting_pool(want: int, free: int, budget: int, **kw) -> int:
    """The largest pool up to ``want`` (and the ``free`` store items) whose :func:`semi_memory` is within
    half the profile's ``budget`` (round 2's training has the rest)."""
    pool = min(want, free)
    while pool > 100 and semi_memory(pool, **kw) > budget // 2:
        pool = pool * 3 // 4
    return pool


def _block(n: int) -> int:
    return max(64, min(1024, (16 << 20) // max(4 * n, 1)))


def semi_feature_dim(model: torch.nn.Module) -> int:
    """The width of the features the round embeds with: the input of the student's last Linear layer."""
    return _last_linear(model).in_features


def _last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    if last is None:
        raise ValueError("semi: the student has no final Linear layer to take features before")
    return last


def embed(model: torch.nn.Module, x: np.ndarray, preprocess, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised inputs of the student's last Linear layer, softmax posteriors) for uint8 items ``x``."""
    feats: list[np.ndarray] = []
    hook = _last_linear(model).register_forward_pre_hook(lambda _m, a: feats.append(a[0].flatten(1).numpy()))
    model.eval()
    probs = []
    try:
        with torch.no_grad():
            for s in range(0, len(x), batch):
                probs.append(torch.softmax(model(torch.from_numpy(preprocess.apply(x[s : s + batch]))), 1).numpy())
    finally:
        hook.remove()
    f = np.concatenate(feats).astype(np.float32)
    f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-8)
    return f, np.concatenate(probs)


def knn_graph(f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine (``f`` normalised): (indices, similarities), n × k, nearest
    first; similarities a block of rows at a time (≤ 16 MiB), the top k by ``torch.topk`` (multi-threaded: on 2
    cores it takes about 0.4× the CPU time of ``np.argpartition`` over the same blocks)."""
    n = len(f)
    block = _block(n)
    k = min(k, n - 1)
    idx = np.empty((n, k), np.int64)
    sim = np.empty((n, k), np.float32)
    ft = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
    with torch.no_grad():
        for s in range(0, n, block):
            S = ft[s : s + block] @ ft.T
            r = torch.arange(S.shape[0])
            S[r, r + s] = -float("inf")
            v, j = torch.topk(S, k, dim=1)
            idx[s : s + block] = j.numpy()
            sim[s : s + block] = v.numpy()
    return idx, sim


def propagate(idx: np.ndarray, sim: np.ndarray, seeds: np.ndarray, alpha: float, iterations: int, gamma: float):
    """Label propagation on the symmetrised k-NN graph: ``Z ← α D^-½ W D^-½ Z + Y`` from ``Z = Y``, with
    ``W`` the graph plus its transpose held once as rows of (column, weight) pairs sorted by row (every row has
    its own k neighbours, so none is empty)."""
    n, k = idx.shape
    w = (np.maximum(sim, 0).astype(np.float64) ** gamma).ravel()
    rows, cols = np.repeat(np.arange(n), k), idx.ravel()
    r2 = np.concatenate([rows, cols])
    order = np.argsort(r2, kind="stable")
    c2, w2 = np.concatenate([cols, rows])[order], np.concatenate([w, w])[order][:, None]
    starts = np.concatenate([[0], np.cumsum(np.bincount(r2, minlength=n))[:-1]])
    dinv = 1 / np.sqrt(np.maximum(np.add.reduceat(w2[:, 0], starts), 1e-12))[:, None]
    y = seeds.astype(np.float64)
    z = y
    for _ in range(iterations):
        z = alpha * dinv * np.add.reduceat(w2 * (z * dinv)[c2], starts) + y
    return z


def input_features(x: np.ndarray, preprocess, dims: int, fit: int = 8192) -> np.ndarray:
    """The items' own values, whitened PCA to ``dims`` fitted on an evenly spaced ``fit`` of them, L2-normalised:
    a view of the store independent of the student's. Images and vectors: the student's input, flattened;
    texts: their words hashed into 1,024 dims, log(1 + count) × idf over these items
    (:func:`labelcast.codec.text.text_features`, what a text store's clusters are built on)."""
    if x.dtype == object:
        from ..codec.text import text_features

        plain = text_features(x)
        idf = (np.log((1 + len(plain)) / (1 + (plain > 0).sum(0))) + 1).astype(np.float32)
        flat = plain * idf
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)
    else:
        flat = np.concatenate(
            [preprocess.apply(x[s : s + 2048]).reshape(min(2048, len(x) - s), -1) for s in range(0, len(x), 2048)]
        )
    flat = flat.astype(np.float32)
    mu = flat.mean(0)
    sample = flat[np.unique(np.linspace(0, len(flat) - 1, min(fit, len(flat))).astype(np.int64))] - mu
    _, sv, vt = np.linalg.svd(sample, full_matrices=False)
    d = min(dims, len(sv))
    f = (flat - mu) @ vt[:d].T / np.maximum(sv[:d] / max(sv[0], 1e-12), 1e-6)
    return (f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-8)).astype(np.float32)


def gradient_histograms(x: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Histograms of oriented gradients (Dalal & Triggs 2005) of uint8 images N×H×W[×C] (colour averaged to
    grey): per pixel the gradient's magnitude spread over ``GRADIENT_BINS`` unsigned orientations (linear
    between the two nearest), pooled into each grid of ``GRADIENT_GRIDS`` cells per side, L2-normalised over
    every 2×2 block of cells, square-rooted (the Hellinger form); float32 N × 3,600 for the default grids."""
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        centre = torch.arange(GRADIENT_BINS, dtype=torch.float32).view(1, GRADIENT_BINS, 1, 1)
        for s in range(0, len(x), chunk):
            a = torch.from_numpy(np.asarray(x[s : s + chunk], dtype=np.float32))
            a = (a.mean(3) if a.ndim == 4 else a)[:, None] / 255.0
            gx = F.pad(a[..., 2:] - a[..., :-2], (1, 1))
            gy = F.pad(a[..., 2:, :] - a[..., :-2, :], (0, 0, 1, 1))
            mag = torch.sqrt(gx * gx + gy * gy)
            ang = torch.remainder(torch.atan2(gy, gx), np.pi) * (GRADIENT_BINS / np.pi)
            d = torch.remainder(ang - centre + GRADIENT_BINS / 2, GRADIENT_BINS) - GRADIENT_BINS / 2
            maps = mag * torch.clamp(1 - d.abs(), min=0)
            parts = []
            for g in GRADIENT_GRIDS:
                blocks = F.unfold(F.adaptive_avg_pool2d(maps, g), 2).transpose(1, 2)
                blocks = blocks / torch.sqrt((blocks * blocks).sum(2, keepdim=True) + 1e-6)
                parts.append(blocks.reshape(len(a), -1))
            out.append(torch.sqrt(torch.cat(parts, 1)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def gradient_features(x: np.ndarray, dims: int, whiten: float = 0.5, fit: int = GRADIENT_FIT) -> np.ndarray:
    """A view of an image store independent of the student and of the task: :func:`gradient_histograms`,
    PCA to ``dims`` fitted on an evenly spaced ``fit`` of the items (a seeded randomised SVD, Halko et al.
    2011: the same features on every run), each dimension scaled by (its singular value / the first) **
    -``whiten``, L2-normalised. Memory holds the fit sample's histograms, one chunk's and the N × ``dims``
    result, never N × 3,600 (:func:`semi_memory` counts them)."""
    n = len(x)
    if n == 0:
        return np.zeros((0, dims), np.float32)
    pick = np.unique(np.linspace(0, n - 1, min(fit, n)).astype(np.int64))
    a = torch.from_numpy(gradient_histograms(x[pick]))
    mu = a.mean(0)
    a -= mu  # in place: memory holds one fit sample
    d = min(dims, *a.shape)
    q = min(d + 32, *a.shape)
    g = torch.from_numpy(np.random.default_rng(0).standard_normal((a.shape[1], q)).astype(np.float32))
    with torch.no_grad():
        y = a @ g
        for _ in range(2):  # power iterations: the spectrum of image features decays slowly
            y = a @ (a.T @ torch.linalg.qr(y)[0])
        qm = torch.linalg.qr(y)[0]
        _u, sv, vt = torch.linalg.svd(qm.T @ a, full_matrices=False)
        proj = vt[:d].T / torch.clamp(sv[:d] / torch.clamp(sv[0], min=1e-12), min=1e-6) ** whiten
        out = np.empty((n, d), np.float32)
        out[pick] = _unit(a @ proj)  # the fit sample's histograms, already centred: not made twice
        rest = np.setdiff1d(np.arange(n), pick)
        for s in range(0, rest.size, GRADIENT_CHUNK):
            part = rest[s : s + GRADIENT_CHUNK]
            out[part] = _unit((torch.from_numpy(gradient_histograms(x[part])) - mu) @ proj)
    return out


def _unit(f: torch.Tensor) -> np.ndarray:
    return (f / torch.clamp(f.norm(dim=1, keepdim=True), min=1e-8)).numpy()


def pseudo_labels(
    model,
    x_lab,
    y_lab,
    x_pool,
    preprocess,
    classes: int,
    cfg: SemiConfig,
    cache: dict | None = None,
    flip: bool = False,
):
    """(pool positions kept, their targets: classes (m,) or scores (m, classes)), and what it found.
    ``cache``: a dict kept across rounds — propagation over the input view does not depend on the model, so
    a later round reuses it; ``flip``: the task allows horizontal flips (``cfg.flip_views`` then averages the
    student's posteriors of each image and its mirror)."""
    cache = {} if cache is None else cache
    x_all = np.concatenate([x_lab, x_pool])
    f, probs = embed(model, x_all, preprocess)
    if cfg.flip_views and flip and x_all.dtype != object and x_all.ndim >= 3:
        probs = (probs + embed(model, np.ascontiguousarray(x_all[:, :, ::-1]), preprocess)[1]) / 2
    nl = len(x_lab)
    view = graph_view(cfg, x_all)
    own_view = view in ("gradients", "input")
    z = cache.get("z") if own_view else None
    if z is None:
        if view == "gradients":
            f = gradient_features(x_all, cfg.input_dims)
        elif view == "input":
            f = input_features(x_all, preprocess, cfg.input_dims)
        elif view == "both":
            f = np.concatenate([input_features(x_all, preprocess, cfg.input_dims), f], 1) / np.sqrt(2)
        hard = y_lab.argmax(1) if y_lab.ndim == 2 else y_lab
        seeds = np.zeros((len(f), classes))
        seeds[np.arange(nl), hard] = 1.0
        idx, sim = knn_graph(f, cfg.neighbours)
        z = propagate(idx, sim, seeds, cfg.alpha, cfg.iterations, cfg.gamma)[nl:]
        cache["mass"] = z.sum(1)
        z /= np.maximum(cache["mass"][:, None], 1e-12)
        cache["z"] = z
    cfg = cfg.resolved(x_all)
    score = cfg.propagation_weight * z + (1 - cfg.propagation_weight) * probs[nl:]
    lab, conf = score.argmax(1), score.max(1)
    near = np.ones(len(z), dtype=bool)
    mass = cache.get("mass")
    if cfg.mass_keep < 1 and mass is not None and len(mass):
        near = mass >= np.quantile(mass, 1 - cfg.mass_keep)
    if cfg.agree_only:
        near &= z.argmax(1) == probs[nl:].argmax(1)
    kept = []
    for c in range(classes):
        mine = np.flatnonzero((lab == c) & near)
        take = int(np.ceil(cfg.keep * mine.size))
        kept.append(mine[np.argsort(-conf[mine], kind="stable")[:take]])
    pos = np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
    agree = float((z.argmax(1) == probs[nl:].argmax(1)).mean()) if len(z) else 1.0
    info = {
        "pool_items": int(len(x_pool)),
        "kept": int(pos.size),
        "kept_per_class": np.bincount(lab[pos], minlength=classes).tolist(),
        "propagation_agrees_with_student": round(agree, 4),
        "mean_confidence_kept": round(float(conf[pos].mean()), 4) if pos.size else 0.0,
    }
    if cfg.targets == "soft":
        sharp = score[pos] ** 2
        return pos, (sharp / sharp.sum(1, keepdims=True)).astype(np.float32), info
    return pos, lab[pos], info


RESOLVED = ("propagation_weight", "mass_keep", "fraction")  # the fields SemiConfig.resolved fills


def graph_view(cfg: SemiConfig, x: np.ndarray) -> str:
    """The space the round's graph is built in for items like ``x``: gradients, input, both or student."""
    if x.dtype == object:  # texts: their hashed words with text_input, else the student's features
        return "input" if cfg.features in ("gradients", "input") and cfg.text_input else "student"
    if cfg.features == "gradients":
        return "gradients" if x.ndim >= 3 else "input"
    return cfg.features


def _round2_set(x_lab, y_lab, x_kept, t_kept, classes: int, share: float):
    """The labelled items repeated to ``share`` of the set, beside the pseudo-labelled ones; soft targets
    for both when either is soft."""
    r = max(1, int(round(share * len(x_kept) / ((1 - share) * max(len(x_lab), 1)))))
    yl = np.repeat(y_lab, r, axis=0)
    if y_lab.ndim == 2 or t_kept.ndim == 2:
        yl, t_kept = _rows(yl, classes), _rows(t_kept, classes)
    ys = np.concatenate([yl.astype(np.float32) if yl.ndim == 2 else yl, t_kept.astype(yl.dtype)])
    return np.concatenate([np.repeat(x_lab, r, axis=0), x_kept]), ys, r


def _rows(t: np.ndarray, classes: int) -> np.ndarray:
    if t.ndim == 2:
        return t.astype(np.float32)
    out = np.zeros((len(t), classes), np.float32)
    out[np.arange(len(t)), t] = 1.0
    return out


def item_bytes_of(x: np.ndarray) -> int:
    """Memory one item takes on the device (a text: its UTF-8 bytes and a string's overhead)."""
    if x.dtype == object:  # texts: their UTF-8 bytes and a Python string's overhead
        return int(np.mean([len(str(t).encode()) for t in x[:1000]])) + 64 if len(x) else 64
    return x.nbytes // max(len(x), 1)


def semi_round(
    model,
    x_lab,
    y_lab,
    store,
    exclude,
    classes,
    preprocess,
    profile,
    sc,
    cfg: SemiConfig,
    seed,
    field=None,
    seen: int | None = None,
    **train,
):
    """Round 2 from the round-1 ``model``: returns (model, info). ``seed``: the pool's (the payload's hash);
    ``field``: the device's own captures, in the store's item form (``receive --field``): they join the pool
    first (evenly spaced, up to its size), store items fill the rest; ``seen``: the images round 1 actually
    saw (its passes × its items: fewer than ``sc.train_samples`` when ``max_epochs`` capped a small set),
    which round 2's ``fraction`` is of (None: ``sc.train_samples``);
    ``train``: the trainer's keyword arguments (checkpoint, resume, tag, progress, and ``root`` for images),
    its checkpoint under its own name; ``trainer``: ``fn(x, targets, sc, warm=…, **train)``, default the
    image/vector student's ``train_student``."""
    from .train import train_student

    t = time.time()
    trainer = train.pop("trainer", None) or (
        lambda x, y, c, **kw: train_student(x, y, classes, preprocess, profile, c, **kw)
    )
    ran = cfg.resolved(x_lab)
    view = graph_view(cfg, x_lab)
    shape = dict(
        labelled=len(x_lab),
        item_bytes=item_bytes_of(x_lab),
        feature_dim=semi_feature_dim(model),
        classes=classes,
        view=view,
    )
    extra = 0 if field is None else len(field)
    size = fitting_pool(cfg.pool_size(x_lab), store.n - len(exclude) + extra, profile.budget_bytes, cfg=cfg, **shape)
    x_pool, n_field = _draw_pool(store, exclude, field, size, seed, train.pop("pool_weights", None))
    ck, tag, cache = train.pop("checkpoint", None), train.pop("tag", None), {}
    guard = train.pop("guard", False)
    sc2 = _round2_config(sc, ran, seen)
    info: dict = {"estimated_bytes": semi_memory(len(x_pool), cfg=cfg, **shape), "rounds": []}
    info["field_items"] = n_field
    info["recipe"] = {"view": view, **{k: getattr(ran, k) for k in RESOLVED}}
    flip = bool(getattr(sc, "flip", False))
    for r in range(cfg.rounds):
        t1 = time.time()
        pos, t_kept, found = pseudo_labels(model, x_lab, y_lab, x_pool, preprocess, classes, cfg, cache, flip)
        found["label_seconds"] = round(time.time() - t1, 3)
        if not len(pos):
            return model, {**info, **found, "ran": r > 0, "why": "no pool item was kept"}
        agree = found["propagation_agrees_with_student"]
        if guard and r == 0 and agree < cfg.min_agreement:
            why = (
                f"auto: propagation agrees with the student on {agree:.0%} of the pool < {cfg.min_agreement:.0%} "
                "(the store's structure does not carry the task): round 2 skipped"
            )
            return model, {**info, **found, "ran": False, "why": why, "seconds": round(time.time() - t, 3)}
        xs, ys, reps = _round2_set(x_lab, y_lab, x_pool[pos], t_kept, classes, cfg.labelled_share)
        name = "-semi" if r == 0 else f"-semi{r + 1}"
        if ck is not None:
            train["checkpoint"] = ck.with_name(ck.stem + name + ck.suffix)
        if tag is not None:
            train["tag"] = tag + ":" + name[1:]
        model, tinfo = trainer(xs, ys, sc2, warm=model.state_dict(), **train)
        info["rounds"].append({**found, "labelled_repeats": reps, "training": tinfo})
    info.update(info["rounds"][-1], seconds=round(time.time() - t, 3), ran=True)
    info["round2"] = info.pop("training")
    return model, info


def _draw_pool(store, exclude, field, size: int, seed, weights) -> tuple[np.ndarray, int]:
    """The round's ``size`` unlabelled items and how many of them are field captures: the captures first (evenly
    spaced, up to ``size``), then store items drawn by :func:`unlabelled_pool` (by ``weights`` when given)."""
    extra = 0 if field is None else len(field)
    x_field = field[np.unique(np.linspace(0, extra - 1, min(extra, size)).astype(np.int64))] if extra else None
    pool = unlabelled_pool(store.n, exclude, size - (0 if x_field is None else len(x_field)), seed, weights)
    x_pool = store.read(pool) if pool.size or x_field is None else None  # a store with no free item: empty
    if x_field is None:
        return x_pool, 0
    return (x_field if x_pool is None else np.concatenate([x_field.astype(x_pool.dtype), x_pool])), len(x_field)


def _round2_config(sc, cfg: SemiConfig, seen: int | None):
    """Round 2's student config: ``cfg.fraction`` (resolved) of the images round 1 saw (``seen``, at most its
    ``train_samples``), warm (no backbone init), and the round's own augmentation for image/vector students."""
    base = sc.train_samples if seen is None else min(sc.train_samples, max(1, int(seen)))
    sc2 = replace(sc, train_samples=max(1, int(base * cfg.fraction)), min_epochs=1, init="")
    if hasattr(sc2, "erase"):  # image and vector students (a text student has no image augmentation)
        sc2 = replace(sc2, erase=cfg.erase, shift=sc2.shift if cfg.shift is None else cfg.shift)
    return sc2
