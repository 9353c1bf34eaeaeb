"""Field sketches: how a device's own unlabelled captures spread over its reference store, in a few bytes.

The **partition** both ends can compute is the store's groups (the content clusters ``reference build
--clusters`` makes; with the default grouping the source's folders): each group is represented by the
mean features of its items (:func:`item_features`: an image's 14×14 grey thumbnail, the clusters' own
features; a text's hashed word features; a vector as it is), and a field item belongs to the group whose
mean is nearest (squared Euclidean distance — for vectors with each feature divided by the spread of the
group means on it; ties to the lower group id). Both ends read the same store bytes, so both compute the
same centroids and the same assignment.

A **sketch** is the share of the field images per group, quantised to 4 bits a group relative to the
largest share (level ``round(15 · p_g / max p)``, so a group holding under 1/30 of the largest group's share
reads 0), bound to the store by its root. Encoded (little-endian)::

    2  magic b"FS"     1  version (1)     8  the store root's first 8 bytes
    uvarint  field images counted          uvarint  G groups
    ceil(G / 2) bytes  the levels, two per byte (low nibble first)

32 groups take 30 bytes with 2,000 field images; a Fashion-MNIST store's 32 clusters fit one return-link
message with room to spare. :func:`class_mix` turns a sketch and the teacher's pseudo-labels of the store
into the field's estimated class mix; :func:`prior_weights` is the tempered rule ``send --field`` selects by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._wire import Reader, Writer
from .errors import DecodeError, FieldError

__all__ = [
    "Sketch",
    "thumbnails",
    "item_features",
    "group_centroids",
    "assign_groups",
    "make_sketch",
    "encode_sketch",
    "decode_sketch",
    "class_mix",
    "prior_weights",
    "divergence",
    "FIELD_FLOOR",
    "DRIFT_THRESHOLD",
    "FIELD_MIN_SHIFT",
    "mix_shift",
]

MAGIC = b"FS"
VERSION = 1
LEVELS = 15  # 4 bits a group
THUMB = 14
MAX_GROUPS = 1 << 16
# the share of the uniform class mix every class the teacher knows keeps, whatever the field says: a device's
# sketch can shift the labels toward what it sees, never starve a class (0.25: a quarter of an even share)
FIELD_FLOOR = 0.25
# Jensen–Shannon divergence (bits) between the last reported and the current sketch above which the device
# reports drift (a class mix that moved by a third or more; measured on fashion: 0.02 between two halves of
# one field folder, 0.31 between a 4-class field and the whole target)
DRIFT_THRESHOLD = 0.1
# total variation between the field's estimated class mix and the even mix below which the sender leaves the quota
# even: such a field is what the labels already cover, and steering only trades one item for another. Measured on
# fashion: a field of 2,000 images of the whole target reads 0.043 (its sample and the teacher's view), the
# 4-class field 0.568; steering the even field lost 0.12-0.23 points on validation at 270 B-4 KiB
# (benchmarks/field.py, docs/field.md)
FIELD_MIN_SHIFT = 0.1


def thumbnails(x: np.ndarray) -> np.ndarray:
    """N×H×W[×C] uint8 → N×(14·14) float32 in [0, 1]: grey, box-averaged to 14×14."""
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[..., None]
    g = a.astype(np.float32).mean(axis=3) / 255.0
    n, h, w = g.shape
    rows = np.minimum((np.arange(THUMB + 1) * h) // THUMB, h)
    cols = np.minimum((np.arange(THUMB + 1) * w) // THUMB, w)
    out = np.empty((n, THUMB, THUMB), dtype=np.float32)
    for i in range(THUMB):
        band = g[:, rows[i] : max(rows[i + 1], rows[i] + 1), :]
        for j in range(THUMB):
            out[:, i, j] = band[:, :, cols[j] : max(cols[j + 1], cols[j] + 1)].mean(axis=(1, 2))
    return out.reshape(n, -1)


@dataclass
class Sketch:
    """A field sketch: 4-bit levels per store group, the field images counted, the store it is for."""

    root_prefix: bytes
    levels: np.ndarray  # uint8, one per group, 0..15
    images: int

    @property
    def shares(self) -> np.ndarray:
        """The levels as a distribution over the groups (uniform when every level is 0)."""
        lv = self.levels.astype(np.float64)
        return lv / lv.sum() if lv.sum() else np.full(lv.size, 1.0 / max(lv.size, 1))

    def check(self, root: bytes, groups: int) -> None:
        """Refuse a sketch made for another store (a typed error naming both)."""
        if self.root_prefix != root[:8]:
            raise FieldError(
                f"the field sketch is for the reference store {self.root_prefix.hex()}…, this one is "
                f"{root[:8].hex()}…: make the sketch against the store the payload is for"
            )
        if self.levels.size != groups:
            raise FieldError(f"the field sketch has {self.levels.size} groups, the store {groups}")


def item_features(x, kind: str = "image") -> np.ndarray:
    """The features a store's partition is computed in, float64: an image's 14×14 grey thumbnail, a text's
    hashed word features (``codec.text.text_features``), a vector as it is."""
    if kind == "text":
        from .text import text_features

        return text_features(list(x)).astype(np.float64)
    if kind == "vector":
        return np.asarray(x, dtype=np.float64)
    return thumbnails(x).astype(np.float64)


def group_centroids(store, chunk: int = 8192) -> np.ndarray:
    """G × F float64: the mean features (:func:`item_features`) of each group's items, read in canonical order
    in chunks."""
    kind = getattr(store, "kind", "image")
    groups = np.asarray(store.manifest.groups)
    g = max(len(store.manifest.group_names), int(groups.max()) + 1 if groups.size else 1)
    sums = None
    for s in range(0, store.n, chunk):
        e = min(store.n, s + chunk)
        f = item_features(store.read_range(s, e), kind)
        sums = np.zeros((g, f.shape[1]), dtype=np.float64) if sums is None else sums
        np.add.at(sums, groups[s:e], f)
    if sums is None:
        raise FieldError(f"the store {store.path} holds no items to sketch against")
    counts = np.bincount(groups, minlength=g).astype(np.float64)
    return sums / np.maximum(counts, 1.0)[:, None]


def _scale(centroids: np.ndarray, kind: str) -> np.ndarray:
    """Per-feature divisors of the distance: for vectors, the spread of the group means on each feature (so
    that a feature's units do not decide the nearest group); 1 for thumbnails and text features."""
    if kind != "vector":
        return np.ones(centroids.shape[1])
    s = centroids.std(0)
    return np.maximum(s, max(float(s.max(initial=0.0)) * 1e-6, 1e-12))


def assign_groups(x, centroids: np.ndarray, chunk: int = 4096, kind: str = "image") -> np.ndarray:
    """The nearest group (by mean features) of each item; ties to the lower group id."""
    out = np.empty(len(x), dtype=np.int64)
    sc = _scale(centroids, kind)
    c = centroids / sc
    c2 = (c**2).sum(1)
    for s in range(0, len(x), chunk):
        t = item_features(x[s : s + chunk], kind) / sc
        if t.shape[1] != c.shape[1]:
            raise FieldError(f"the field items have {t.shape[1]} features; the store's groups have {c.shape[1]}")
        d = (t**2).sum(1)[:, None] - 2 * t @ c.T + c2[None, :]
        out[s : s + chunk] = d.argmin(axis=1)
    return out


def make_sketch(x, store, centroids: np.ndarray | None = None) -> Sketch:
    """The sketch of field items ``x`` (images uint8 N×H×W[×C], texts, or N×D vectors, as ``store`` holds them)
    over ``store``'s groups."""
    kind = getattr(store, "kind", "image")
    cent = group_centroids(store) if centroids is None else centroids
    counts = np.bincount(assign_groups(x, cent, kind=kind), minlength=cent.shape[0]).astype(np.float64)
    top = counts.max() if counts.size else 0.0
    levels = np.rint(LEVELS * counts / top).astype(np.uint8) if top else np.zeros(cent.shape[0], np.uint8)
    return Sketch(store.root[:8], levels, int(len(x)))


def encode_sketch(s: Sketch) -> bytes:
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    w.raw(s.root_prefix)
    w.uvarint(s.images)
    w.uvarint(s.levels.size)
    lv = np.concatenate([s.levels, np.zeros(s.levels.size % 2, np.uint8)]).astype(np.uint8)
    w.raw((lv[0::2] | (lv[1::2] << 4)).astype(np.uint8).tobytes())
    return w.getvalue()


def decode_sketch(data: bytes) -> Sketch:
    """A sketch from its bytes; anything malformed is a FieldError."""
    try:
        r = Reader(bytes(data), "field sketch")
        if r.raw(2) != MAGIC:
            raise DecodeError("not a field sketch")
        if r.u8() != VERSION:
            raise DecodeError("unsupported field sketch version")
        prefix = r.raw(8)
        images = r.uvarint(limit=1 << 40, name="image count")
        g = r.uvarint(limit=MAX_GROUPS, name="group count")
        packed = np.frombuffer(r.raw((g + 1) // 2), dtype=np.uint8)
        r.end()
    except DecodeError as e:
        raise FieldError(f"malformed field sketch: {e}") from e
    levels = np.empty(packed.size * 2, np.uint8)
    levels[0::2], levels[1::2] = packed & 0x0F, packed >> 4
    return Sketch(prefix, levels[:g].copy(), int(images))


def class_mix(sketch: Sketch, pseudo: np.ndarray, groups: np.ndarray, classes: int) -> np.ndarray:
    """The field's estimated class mix: Σ_g share_g · P(class | group g), P from the teacher's pseudo-labels
    of the store's items in each group."""
    g = sketch.levels.size
    joint = np.zeros((g, classes), dtype=np.float64)
    np.add.at(joint, (np.asarray(groups, dtype=np.int64), np.asarray(pseudo, dtype=np.int64)), 1.0)
    cond = joint / np.maximum(joint.sum(1, keepdims=True), 1.0)
    mix = sketch.shares @ cond
    return mix / mix.sum() if mix.sum() else np.full(classes, 1.0 / classes)


def mix_shift(mix: np.ndarray) -> float:
    """Total variation (0 … 1 − 1/C) between a class mix and the even mix: how far a field is from what an even
    quota already covers."""
    m = np.asarray(mix, dtype=np.float64)
    m = m / m.sum() if m.sum() else np.full(m.size, 1.0 / max(m.size, 1))
    return float(0.5 * np.abs(m - 1.0 / m.size).sum())


def prior_weights(mix: np.ndarray, floor: float = FIELD_FLOOR) -> np.ndarray:
    """Per-class selection weights from a field class mix, tempered toward the even mix:
    ``(1 − floor) · mix_c + floor / C`` — every class keeps at least ``floor`` of an even share of the quota."""
    if not 0 < floor <= 1:
        raise ValueError(f"the field floor is a share in (0, 1], not {floor}: 0 starves the classes the field lacks")
    m = np.asarray(mix, dtype=np.float64)
    m = m / m.sum() if m.sum() else np.full(m.size, 1.0 / m.size)
    return (1 - floor) * m + floor / m.size


def divergence(a: Sketch, b: Sketch) -> float:
    """Jensen–Shannon divergence in bits between two sketches' shares (0: same, 1: disjoint)."""
    p, q = a.shares, b.shares
    m = (p + q) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / y[nz])).sum())

    return (kl(p, m) + kl(q, m)) / 2
