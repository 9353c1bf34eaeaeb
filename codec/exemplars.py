"""Exemplars section (payload v2): a few target images with their labels, beside the reference labels.

The images travel as one mosaic (``n`` tiles of ``height × width × channels`` in a grid of
``cols = ⌈√n⌉`` columns, row-major, unused tiles black) coded by a standard image codec. The
codec only frames and checks the section; pixels are encoded on the ground and decoded on
the device with Pillow (``sender/exemplars.py``, ``receiver/exemplars.py``), which is why the
image bytes are opaque here. The labels are either implicit (``ROUND_ROBIN``: image i has
class ``order[i mod len(order)]`` where ``order`` lists the classes present, ascending —
what a class-balanced set sent in round-robin order needs) or coded with the label coder.

Section layout::

    u8      image codec     1 = PNG, 2 = WebP, 3 = JPEG
    u8      quality         0…100 (as chosen by the sender; informational)
    uvarint n               exemplars (1 … 65,536)
    uvarint height          tile height as coded (1 … 1,024)
    uvarint width           tile width as coded (1 … 1,024)
    u8      channels        1 or 3
    u8      label mode      0 = ROUND_ROBIN, 1 = CODED
    [mode 0] uvarint m, then m × uvarint class (ascending, distinct: the round-robin order)
    [mode 1] blob  labels   (the hard-label section format, STATIC/UNIFORM, n items)
    blob    image           the mosaic in the named codec
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import labels as label_coder
from ._wire import Reader, Writer
from .errors import DecodeError, LimitError

__all__ = ["Exemplars", "CODECS", "encode_exemplars", "decode_exemplars", "mosaic_shape"]

CODECS = {1: "png", 2: "webp", 3: "jpeg"}
ROUND_ROBIN, CODED = 0, 1
MAX_EXEMPLARS = 1 << 16
MAX_SIDE = 1024


@dataclass
class Exemplars:
    """What the section carries: the coded mosaic and the labels of its tiles."""

    codec: str  # png | webp | jpeg
    quality: int
    n: int
    height: int
    width: int
    channels: int
    labels: np.ndarray  # (n,) class per exemplar
    image: bytes  # the mosaic, coded

    def __post_init__(self) -> None:
        if self.codec not in CODECS.values():
            raise ValueError(f"image codec must be one of {', '.join(CODECS.values())}")
        if not 1 <= self.n <= MAX_EXEMPLARS or not (1 <= self.height <= MAX_SIDE and 1 <= self.width <= MAX_SIDE):
            raise ValueError("exemplar count or tile size out of range")
        if self.channels not in (1, 3) or not 0 <= self.quality <= 100:
            raise ValueError("channels must be 1 or 3 and quality 0..100")


def mosaic_shape(n: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(rows, cols, pixel height, pixel width) of the mosaic that holds ``n`` tiles: cols = ⌈√n⌉."""
    cols = max(1, math.isqrt(n - 1) + 1) if n > 1 else 1
    rows = -(-n // cols)
    return rows, cols, rows * height, cols * width


def _round_robin_order(lab: np.ndarray) -> list[int] | None:
    """The class order if ``lab`` is a round-robin over its distinct classes, else None."""
    order = sorted(set(lab.tolist()))
    expect = np.array(order)[np.arange(lab.size) % len(order)] if order else lab
    return order if np.array_equal(expect, lab) else None


def encode_exemplars(ex: Exemplars, classes: int) -> bytes:
    lab = np.asarray(ex.labels, dtype=np.int64)
    if lab.shape != (ex.n,) or (lab.size and (lab.min() < 0 or lab.max() >= classes)):
        raise ValueError("exemplar labels must be n classes in [0, classes)")
    w = Writer()
    w.u8({v: k for k, v in CODECS.items()}[ex.codec])
    w.u8(ex.quality)
    for v in (ex.n, ex.height, ex.width):
        w.uvarint(v)
    w.u8(ex.channels)
    order = _round_robin_order(lab)
    if order is not None:
        w.u8(ROUND_ROBIN)
        w.uvarint(len(order))
        for c in order:
            w.uvarint(c)
    else:
        w.u8(CODED)
        w.blob(label_coder.encode_labels(lab, classes))
    w.blob(ex.image)
    return w.getvalue()


def decode_exemplars(data: bytes, classes: int) -> Exemplars:
    """Parse the section; raises only DecodeError. The image bytes are checked by the decoder that reads them."""
    r = Reader(data, "exemplars section")
    codec = r.u8()
    if codec not in CODECS:
        raise DecodeError(f"exemplars section: unknown image codec {codec}; upgrade the receiver")
    quality = r.u8()
    n = r.uvarint(limit=MAX_EXEMPLARS, name="exemplar count")
    h = r.uvarint(limit=MAX_SIDE, name="tile height")
    wd = r.uvarint(limit=MAX_SIDE, name="tile width")
    ch = r.u8()
    if n == 0 or h == 0 or wd == 0 or ch not in (1, 3) or quality > 100:
        raise DecodeError("exemplars section: sizes out of range")
    mode = r.u8()
    if mode == ROUND_ROBIN:
        m = r.uvarint(limit=classes, name="round-robin classes")
        order = [r.uvarint(limit=classes - 1, name="class") for _ in range(m)]
        if m == 0 or order != sorted(set(order)):
            raise DecodeError("exemplars section: the round-robin class order must be ascending and distinct")
        lab = np.array(order, dtype=np.int64)[np.arange(n) % m]
    elif mode == CODED:
        lab = label_coder.decode_labels(r.blob(len(data), "exemplar labels"), classes, np.arange(n))
    else:
        raise DecodeError(f"exemplars section: unknown label mode {mode}")
    image = r.blob(len(data), "exemplar image")
    r.end()
    _, _, ph, pw = mosaic_shape(n, h, wd)
    if ph > 1 << 15 or pw > 1 << 15:
        raise LimitError("exemplars section: the mosaic would exceed 32,768 pixels per side")
    return Exemplars(CODECS[codec], quality, n, h, wd, ch, lab, image)
