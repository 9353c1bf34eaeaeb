"""Exemplars on the ground: a few target images coded into one mosaic for the payload (v2).

The mosaic layout is the codec's (:func:`labelcast.codec.exemplars.mosaic_shape`); the device
decodes it with :func:`labelcast.receiver.exemplars.decode_mosaic`. :func:`fit_exemplars` finds,
for a codec/quality/resolution, the most images of a class-balanced order that fit a byte budget.
"""

from __future__ import annotations

import io

import numpy as np

from ..codec.exemplars import Exemplars, mosaic_shape

__all__ = ["encode_mosaic", "half", "round_robin", "fit_exemplars", "make_exemplars"]


def encode_mosaic(images: np.ndarray, codec: str, quality: int) -> bytes:
    """Tile N×H×W×C uint8 images into one near-square mosaic and compress it (PNG, WebP or JPEG)."""
    from PIL import Image

    n, h, w, c = images.shape
    rows, cols, ph, pw = mosaic_shape(n, h, w)
    canvas = np.zeros((ph, pw, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[r * h : (r + 1) * h, q * w : (q + 1) * w] = images[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    buf = io.BytesIO()
    if codec == "png":
        img.save(buf, format="PNG", optimize=True, compress_level=9)
    elif codec == "webp":
        img.save(buf, format="WEBP", quality=quality, method=6)
    elif codec == "jpeg":
        img.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        raise ValueError(f"unknown image codec {codec!r}")
    return buf.getvalue()


def half(images: np.ndarray) -> np.ndarray:
    """2×2 mean pooling of N×H×W×C uint8 images (half resolution)."""
    n, h, w, c = images.shape
    a = images[:, : h // 2 * 2, : w // 2 * 2].astype(np.float32)
    return np.rint(a.reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))).astype(np.uint8)


def round_robin(y: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Indices in class round-robin order (each class shuffled): any prefix is class-balanced."""
    rng = np.random.default_rng([seed, 7])
    per = [rng.permutation(np.flatnonzero(y == c)) for c in range(classes)]
    out = []
    for j in range(max((len(p) for p in per), default=0)):
        out.extend(int(p[j]) for p in per if j < len(p))
    return np.asarray(out, dtype=np.int64)


def fit_exemplars(images: np.ndarray, budget: int, codec: str, quality: int, header: int = 0) -> int:
    """The most images (a prefix of ``images``) whose mosaic plus ``header`` bytes fit ``budget`` (0: none)."""
    from .budget import largest_fitting

    sizes: dict[int, int] = {}

    def fits(n: int) -> bool:
        if n not in sizes:
            sizes[n] = len(encode_mosaic(images[:n], codec, quality)) + header
        return sizes[n] <= budget

    if len(images) == 0:
        return 0
    hi = 1
    while hi < len(images) and fits(hi):  # exponential probe from small sets (cheap encodes), then bisection
        hi = min(2 * hi, len(images))
    return largest_fitting(fits, hi)


def make_exemplars(images: np.ndarray, labels: np.ndarray, codec: str, quality: int, scale: int = 1) -> Exemplars:
    """The payload section's content for these images (``scale`` 2: sent at half resolution)."""
    src = half(images) if scale == 2 else images
    n, h, w, c = src.shape
    return Exemplars(codec, quality, n, h, w, c, np.asarray(labels, dtype=np.int64), encode_mosaic(src, codec, quality))
