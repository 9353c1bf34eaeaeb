"""What the device trains on, rebuilt from a verified payload: the one rule both the device and the
ground's planner (``sender/plan.py``) apply, so the ground simulates exactly what the device will do.

* labelled reference items (the payload's selection, read and hash-checked from the device's own
  store), with soft targets when the payload carries them, minus the items held back for the A/B
  check (hint ``val_every``);
* exemplars (payload v2): target images decoded from the payload, brought to the store's item
  size — never written into the store — and **repeated** ``max(1, ⌈s / (1 − s) · k / n⌉)`` times, where
  k is the number of reference items trained on, n the number of exemplars and s ``EXEMPLAR_SHARE``
  (½: ``⌈k / n⌉``): a few exemplars beside many labels make up about half of the images seen (they are
  the target's own domain; the rule's evidence, on validation data, is docs/results.md "How choices are
  made"), and exemplars alone are used as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..codec.delta import LabelledSet
from ..codec.payload import Payload

__all__ = [
    "TrainingSet",
    "training_set",
    "exemplar_repeats",
    "validation_mask",
    "rebuild_bytes",
    "check_rebuild",
    "EXEMPLAR_SHARE",
]

# The exemplars' share of a hybrid's training images (set on validation data: benchmarks/choices.py, "repeat")
EXEMPLAR_SHARE = 0.5


def validation_mask(k: int, hints: dict) -> np.ndarray:
    """Items the sender held back for validation (hint ``val_every`` = n: every n-th item by index)."""
    n = hints.get("val_every")
    mask = np.zeros(k, dtype=bool)
    if isinstance(n, int) and 2 <= n <= k:
        mask[n - 1 :: n] = True
    return mask


def exemplar_repeats(k_ref: int, n_ex: int) -> int:
    """How many times each exemplar is repeated beside ``k_ref`` labelled reference items, so that the
    exemplars make up about ``EXEMPLAR_SHARE`` of the images trained on."""
    ratio = EXEMPLAR_SHARE / (1.0 - EXEMPLAR_SHARE)
    return max(1, math.ceil(round(ratio * k_ref, 9) / max(n_ex, 1)))


def rebuild_bytes(p: Payload, item_bytes: int, use_soft: bool = True, k_total: int | None = None) -> int:
    """Memory the device allocates to rebuild this payload's training set, from its header and section
    sizes alone (nothing decoded into memory yet): the items read from the store, their labels, dense soft
    targets (built in float64, kept in float32), and the exemplar mosaic, its tiles and their repeats.
    ``k_total``: the labelled set's size after the payload (a delta's chain), default the payload's own."""
    from ..codec.exemplars import mosaic_shape

    h = p.header
    k = h.k if k_total is None else k_total
    soft = p.soft is not None and use_soft
    total = k * (item_bytes + 16) + (k * h.classes * 24 if soft else 0)
    if p.exemplars is not None:
        ex = p.exemplars
        _, _, ph, pw = mosaic_shape(ex.n, ex.height, ex.width)
        tile = ex.height * ex.width * ex.channels
        per = item_bytes + (h.classes * 4 if soft else 8)
        total += ph * pw * ex.channels + ex.n * (tile + item_bytes) + ex.n * exemplar_repeats(k, ex.n) * per
    return int(total)


def check_rebuild(p: Payload, item_bytes: int, budget_bytes: int, use_soft: bool = True, k_total=None) -> int:
    """:class:`BudgetError` before any of it is allocated when the rebuild would not fit the device's budget."""
    need = rebuild_bytes(p, item_bytes, use_soft, k_total)
    if need > budget_bytes:
        from ..codec.errors import BudgetError

        h = p.header
        what = f"{k_total or h.k:,} items, {h.classes:,} classes" + (", soft labels" if p.soft is not None else "")
        raise BudgetError(
            f"rebuilding this payload's training set ({what}) needs ~{need >> 20} MiB; the device profile allows "
            f"{budget_bytes >> 20} MiB. Nothing was allocated; send fewer items or hard labels (--hard on the device)"
        )
    return need


@dataclass
class TrainingSet:
    x: np.ndarray  # uint8 N×H×W×C
    targets: np.ndarray  # (N,) hard labels or (N, C) soft targets
    val_x: np.ndarray  # held-back reference items
    val_y: np.ndarray
    counts: dict = field(default_factory=dict)


def training_set(
    p: Payload,
    x_ref: np.ndarray,
    item_shape: tuple[int, int, int],
    use_soft: bool = True,
    labelled: LabelledSet | None = None,
) -> TrainingSet:
    """The device's training set for payload ``p``: the labelled set it makes (``labelled``, the chain's
    cumulative set for a delta; by default the payload's own selection) whose items are ``x_ref``
    (already verified), plus the payload's exemplars."""
    h = p.header
    if labelled is None:
        from .chain import labelled_set_of

        labelled = labelled_set_of(p, use_soft)
    targets = labelled.soft if (labelled.soft is not None and use_soft) else labelled.labels
    soft = targets.ndim == 2
    val = validation_mask(labelled.k, p.hints)
    xs, ts = x_ref[~val], targets[~val]
    counts = {"reference_items": int(xs.shape[0]), "held_back": int(val.sum()), "exemplars": 0, "exemplar_repeats": 0}
    if p.exemplars is not None:
        from .exemplars import exemplar_items

        xe = exemplar_items(p.exemplars, item_shape)
        ye = np.asarray(p.exemplars.labels, dtype=np.int64)
        r = exemplar_repeats(xs.shape[0], xe.shape[0])
        te = _one_hot(ye, h.classes) if soft else ye
        xs = np.concatenate([xs, np.repeat(xe, r, axis=0)]) if xs.size else np.repeat(xe, r, axis=0)
        ts = np.concatenate([ts, np.repeat(te, r, axis=0)]) if ts.size else np.repeat(te, r, axis=0)
        counts.update(exemplars=int(xe.shape[0]), exemplar_repeats=r)
    return TrainingSet(xs, ts, x_ref[val], labelled.labels[val], counts)


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """len(y) × classes rows (never a classes × classes identity: 16 GiB at the format's 65,536 classes)."""
    out = np.zeros((len(y), classes), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out
