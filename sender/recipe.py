"""What ``send`` and the planner both build payloads from: a recipe (a selection and how its labels are
sent), a scored pool, the spec of what is signed beside the items, and the encoder that turns the best k
items of a recipe into a signed payload. Below both ``send`` and ``plan``, so neither imports the other
to reach them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..codec.exemplars import Exemplars
from ..codec.manifest import ReferenceStore
from ..codec.payload import build_payload
from ..codec.softlabels import soft_from_probs
from .budget import Encoded
from .refine import refine
from .selection import SelectConfig, prefix_key, pseudo_labels, rank_items, select, softmax
from .teacher import Teacher

__all__ = ["Recipe", "Scored", "PayloadSpec", "encoder"]


@dataclass(frozen=True)
class Recipe:
    """One way to turn scores into a payload: a selection and how its labels are sent.

    Attributes:
        select: which reference items, in which order (:class:`SelectConfig`)
        soft: send soft labels: each item's label and its runner-up classes' quantised probabilities
        soft_extra: runner-up classes per soft label
        soft_levels: quantisation levels of a soft probability
        soft_temperature: T of the teacher's softmax the soft labels are taken from
    """

    select: SelectConfig
    soft: bool = False
    soft_extra: int = 2
    soft_levels: int = 16
    soft_temperature: float = 1.0

    def describe(self) -> dict:
        return {
            "strategy": self.select.strategy,
            "quota": self.select.quota,
            "keyed": prefix_key(self.select) is not None,
            "soft": self.soft,
            **({"soft_extra": self.soft_extra, "soft_temperature": self.soft_temperature} if self.soft else {}),
        }


@dataclass
class Scored:
    """A reference store scored by a teacher: logits, pseudo-labels, probabilities on demand.

    ``store`` and ``teacher`` may be None where only the logits matter (benchmarks over in-memory pools)."""

    store: ReferenceStore | None
    teacher: Teacher | None
    logits: np.ndarray
    engine: dict = field(default_factory=dict)  # how the scores were made (Ray: workers, shards per node)

    @cached_property
    def labels(self) -> np.ndarray:
        return pseudo_labels(self.logits)

    @property
    def classes(self) -> int:
        return int(self.logits.shape[1])

    @property
    def normalized(self) -> bool:
        """The teacher ends in a softmax: its scores are log-probabilities (logsumexp = 0 for every item)."""
        return self.teacher is not None and self.teacher.preprocess.output != "logits"

    def probs(self, temperature: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_probs", {})
        if temperature not in cache:
            cache[temperature] = softmax(self.logits, temperature)
        return cache[temperature]


@dataclass
class PayloadSpec:
    """Everything signed into a payload beside the selection and its labels."""

    key: Ed25519PrivateKey
    root: bytes
    n_items: int
    segments: np.ndarray
    sequence: int
    expires_at: int
    class_names: list[str] | None = None
    hints: dict | None = None
    exemplars: Exemplars | None = None  # target images sent beside the labels (payload v2)
    delta: dict | None = None  # {"parent": digest, "changes": …, "base": parent indices}: a delta payload
    seal_to: Ed25519PublicKey | None = None  # a device's key: the payload is sealed to it (codec/sealed.py)

    def with_(self, **changes) -> PayloadSpec:
        return replace(self, **changes)

    def build(self, indices, labels, classes: int, **kw) -> tuple[bytes, dict]:
        """The signed payload of these items and labels under this spec: (payload, section sizes).
        ``kw``: ``soft``, ``prefix_key``, or overrides of the spec's names, hints, exemplars, delta."""
        args = {
            "n_items": self.n_items,
            "root": self.root,
            "key": self.key,
            "sequence": self.sequence,
            "expires_at": self.expires_at,
            "segments": self.segments,
            "class_names": self.class_names,
            "hints": self.hints,
            "exemplars": self.exemplars,
            "delta": self.delta,
            "seal_to": self.seal_to,
        }
        return build_payload(indices, labels, classes=classes, **{**args, **kw})


def encoder(
    scored: Scored, recipe: Recipe, spec: PayloadSpec, detector_logits: np.ndarray | None = None
) -> Callable[[int], Encoded]:
    """Step 3a: ``build(k)`` → the signed payload of the recipe's best k items (what the device decodes)."""
    sel = recipe.select
    if scored.normalized and sel.strategy in ("energy", "energy-high") and sel.temperature == 1.0:
        # the free energy at T = 1 of log-probabilities is 0 for every item; at T = 2 it is the Rényi
        # entropy of order ½ (up to sign and scale), which still ranks by confidence
        sel = replace(sel, temperature=2.0)
    order = rank_items(scored.logits, sel, spec.segments)
    probs = scored.probs(recipe.soft_temperature) if recipe.soft else None
    pl = scored.labels
    key = prefix_key(recipe.select)

    def build(k: int) -> Encoded:
        idx = select(scored.logits, k, sel, order, spec.segments)
        extra = {}
        if detector_logits is not None:
            idx, extra["refinement"] = refine(idx, pl, order, scored.logits, detector_logits)
        lab = pl[idx]
        soft = soft_from_probs(probs[idx], lab, recipe.soft_extra, recipe.soft_levels) if probs is not None else None
        payload, sections = spec.build(idx, lab, scored.classes, soft=soft, prefix_key=key)
        return Encoded(payload, sections, np.asarray(idx), lab, extra)

    return build
