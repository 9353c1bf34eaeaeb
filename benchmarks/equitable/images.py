"""Sending target images instead of labels: every codec, quality and resolution within a budget.

A fast proxy (1-nearest-neighbour accuracy on a validation slice) shortlists the best candidate of
each codec × resolution; the runner's short student picks among them. The mosaic itself is the
payload's exemplar coding (``labelcast.sender.exemplars``, decoded by ``labelcast.receiver.exemplars``).
"""

from __future__ import annotations

import numpy as np

from labelcast.receiver.exemplars import decode_mosaic
from labelcast.sender.exemplars import encode_mosaic, half, round_robin

__all__ = ["IMAGE_CODECS", "image_candidates", "shortlist", "fit_images", "encode_mosaic", "decode_mosaic"]

_half = half
_round_robin = round_robin

IMAGE_CODECS: tuple[tuple[str, int, int], ...] = tuple(
    (codec, q, scale)
    for scale in (1, 2)
    for codec, q in (
        ("png", 0),
        ("webp", 0),
        ("webp", 5),
        ("webp", 25),
        ("webp", 50),
        ("webp", 80),
        ("jpeg", 5),
        ("jpeg", 10),
        ("jpeg", 30),
        ("jpeg", 60),
        ("jpeg", 90),
    )
)


def _nn_proxy(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray) -> float:
    """1-nearest-neighbour accuracy on 14×14 pixels: a fast stand-in for the student's accuracy."""

    def small(a):
        a = a.astype(np.float32)[..., 0] if a.shape[-1] == 1 else a.astype(np.float32).mean(-1)
        n, h, w = a.shape
        return a[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4)).reshape(n, -1)

    f, fv = small(x), small(xv)
    d = (fv**2).sum(1)[:, None] - 2 * fv @ f.T + (f**2).sum(1)[None, :]
    return float((y[d.argmin(1)] == yv).mean())


def _upscale(images: np.ndarray, h: int) -> np.ndarray:
    from labelcast.codec.preprocess import resize_bilinear

    up = np.stack([resize_bilinear(images[..., c].astype(np.float64), h) for c in range(images.shape[3])], axis=3)
    return np.clip(np.rint(up), 0, 255).astype(np.uint8)


def image_candidates(
    images: np.ndarray,
    labels: np.ndarray,
    budget: int,
    xv: np.ndarray,
    yv: np.ndarray,
    codecs: tuple[tuple[str, int, int], ...] = IMAGE_CODECS,
    header: int = 4,
) -> list[dict]:
    """For each (codec, quality, resolution): the most images (in the given order) within ``budget``
    bytes, decoded as the receiver would see them, with the 1-NN proxy accuracy on (xv, yv).

    Half-resolution candidates travel at H/2 × W/2 and are upscaled (bilinear) by the receiver.
    """
    from labelcast.sender.budget import largest_fitting

    shape = images.shape[1:]
    half = _half(images) if any(c[2] == 2 for c in codecs) else images
    out = []
    for codec, q, scale in codecs:
        src = images if scale == 1 else half
        sizes: dict[int, int] = {}

        def fits(n: int, codec=codec, q=q, src=src, sizes=sizes) -> bool:
            if n not in sizes:
                sizes[n] = len(encode_mosaic(src[:n], codec, q)) + header
            return sizes[n] <= budget

        # exponential probe from small sets (cheap encodes), then bisection inside the bracket
        hi = 1
        while hi < len(src) and fits(hi):
            hi = min(2 * hi, len(src))
        n = largest_fitting(fits, hi)
        if n == 0:
            continue
        data = encode_mosaic(src[:n], codec, q)
        dec = decode_mosaic(data, n, src.shape[1:])
        if scale != 1:
            dec = _upscale(dec, shape[0])
        out.append(
            {
                "codec": codec,
                "quality": q,
                "scale": scale,
                "n": n,
                "bytes": len(data) + header,
                "proxy": _nn_proxy(dec, labels[:n], xv, yv),
                "images": dec,
            }
        )
    return out


def shortlist(cands: list[dict]) -> list[dict]:
    """The best candidate by proxy for each (codec, resolution): at most six go to the student."""
    best: dict[tuple[str, int], dict] = {}
    for c in cands:
        k = (c["codec"], c["scale"])
        if k not in best or (c["proxy"], c["n"]) > (best[k]["proxy"], best[k]["n"]):
            best[k] = c
    return list(best.values())


def fit_images(
    images: np.ndarray, labels: np.ndarray, budget: int, xv: np.ndarray, yv: np.ndarray, header: int = 4
) -> dict | None:
    """The best candidate by the 1-NN proxy alone (no student training), or None if nothing fits."""
    cands = image_candidates(images, labels, budget, xv, yv, header=header)
    return max(cands, key=lambda c: (c["proxy"], c["n"])) if cands else None
