"""Exemplars on the device: decode the payload's mosaic of target images into training items.

Exemplars never touch the reference store: they are decoded from the verified payload,
brought to the store's item size (bilinear upscaling of half-resolution tiles, the codec's
``resize``), and trained on beside the labelled reference items.
"""

from __future__ import annotations

import io

import numpy as np

from ..codec.errors import DecodeError
from ..codec.exemplars import Exemplars, mosaic_shape
from ..codec.preprocess import resize

__all__ = ["decode_mosaic", "exemplar_items"]


def decode_mosaic(data: bytes, n: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The first ``n`` tiles of a coded mosaic as N×H×W×C uint8; DecodeError if the image is not one."""
    from PIL import Image, UnidentifiedImageError

    h, w, c = shape
    _, cols, ph, pw = mosaic_shape(n, h, w)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (pw, ph):
                raise DecodeError(f"exemplar mosaic is {im.size[0]}×{im.size[1]}, expected {pw}×{ph}")
            canvas = np.asarray(im.convert("L" if c == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DecodeError(f"exemplar image does not decode: {e}") from e
    canvas = canvas[..., None] if c == 1 else canvas
    out = np.empty((n, h, w, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        out[i] = canvas[r * h : (r + 1) * h, q * w : (q + 1) * w]
    return out


def exemplar_items(ex: Exemplars, item_shape: tuple[int, int, int]) -> np.ndarray:
    """The exemplars at the store's item shape (H×W×C), ready to train beside the reference items."""
    tiles = decode_mosaic(ex.image, ex.n, (ex.height, ex.width, ex.channels))
    h, w, c = item_shape
    if tiles.shape[3] != c:
        tiles = (
            np.repeat(tiles, 3, axis=3)
            if tiles.shape[3] == 1
            else np.rint(tiles.mean(3, keepdims=True)).astype(np.uint8)
        )
    if tiles.shape[1:3] != (h, w):
        tiles = np.clip(np.rint(resize(tiles.astype(np.float32), h, w)), 0, 255).astype(np.uint8)
    return tiles
