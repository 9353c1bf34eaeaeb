"""What the device trains on, rebuilt from a verified payload: the one rule both the device and the
ground's planner (``sender/plan.py``) apply, so the ground simulates exactly what the device will do.

* labelled reference items (the payload's selection, read and hash-checked from the device's own
  store), with soft targets when the payload carries them, minus the items held back for the A/B
  check (hint ``val_every``);
* exemplars (payload v2): target images decoded from the payload, brought to the store's item
  size — never written into the store — and **repeated** ``max(1, ⌈k / n⌉)`` times, where k is the
  number of reference items trained on and n the number of exemplars: a few exemplars beside many
  labels make up about half of the images seen (they are the target's own domain; a third was
  measured worse on digits), and exemplars alone are used as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..codec.delta import LabelledSet
from ..codec.payload import Payload

__all__ = ["TrainingSet", "training_set", "exemplar_repeats", "validation_mask"]


def validation_mask(k: int, hints: dict) -> np.ndarray:
    """Items the sender held back for validation (hint ``val_every`` = n: every n-th item by index)."""
    n = hints.get("val_every")
    mask = np.zeros(k, dtype=bool)
    if isinstance(n, int) and 2 <= n <= k:
        mask[n - 1 :: n] = True
    return mask


def exemplar_repeats(k_ref: int, n_ex: int) -> int:
    """How many times each exemplar is repeated beside ``k_ref`` labelled reference items."""
    return max(1, math.ceil(k_ref / max(n_ex, 1)))


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
        te = np.eye(h.classes, dtype=np.float32)[ye] if soft else ye
        xs = np.concatenate([xs, np.repeat(xe, r, axis=0)]) if xs.size else np.repeat(xe, r, axis=0)
        ts = np.concatenate([ts, np.repeat(te, r, axis=0)]) if ts.size else np.repeat(te, r, axis=0)
        counts.update(exemplars=int(xe.shape[0]), exemplar_repeats=r)
    return TrainingSet(xs, ts, x_ref[val], labelled.labels[val], counts)
