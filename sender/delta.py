"""Incremental payloads on the ground: teach the device more by sending only the difference.

``send --parent PREVIOUS`` (a previous outbox, its ``send-report.json``, or its ``labelled-set.npz``)
starts from the labelled set the device holds after that payload — every outbox keeps it as
``labelled-set.npz`` — and builds a **delta** (``codec.delta``): the parent's items whose label the
(possibly better) teacher now gives differently are relabelled, classes the teacher adds are added
with their names, and as many new items as the budget affords are added in the recipe's order
(random-keyed items skip those already held, so the index section codes their counts alone). The
same resulting set is also encoded as a full payload; the smaller of the two is sent, and
``send-report.json`` records both sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..codec.delta import Changes, LabelledSet, apply_delta, diff_sets
from ..codec.errors import BudgetError
from .budget import Encoded, Fit, LinkBudget, fit_budget
from .selection import prefix_key, rank_items

__all__ = ["load_parent", "delta_encoder", "fit_delta", "SET_FILE"]

SET_FILE = "labelled-set.npz"


def load_parent(path: str | Path) -> LabelledSet:
    """The labelled set a previous send left: its outbox folder, its send-report.json, or the .npz itself."""
    p = Path(path)
    if p.is_dir():
        p = p / SET_FILE
    elif p.name == "send-report.json":
        p = p.with_name(SET_FILE)
    if not p.is_file():
        raise ValueError(f"{path}: no {SET_FILE} (give the previous outbox folder, its send-report.json or the .npz)")
    return LabelledSet.from_bytes(p.read_bytes())


def delta_encoder(
    scored, recipe, spec, parent: LabelledSet, names: list[str] | None
) -> tuple[Callable[[int], Encoded], int]:
    """``build(k)``: the delta that relabels the parent where the teacher now disagrees, adds the classes it
    adds, and adds the recipe's next ``k`` items not held; and how many items could be added at most."""
    classes = scored.classes
    if classes < parent.classes:
        raise ValueError(
            f"the teacher has {classes} classes, the parent set {parent.classes}: a delta cannot remove classes"
        )
    if parent.n_items != spec.n_items:
        raise ValueError("the parent set was made for another reference store")
    order = rank_items(scored.logits, recipe.select, spec.segments)
    fresh = order[~np.isin(order, parent.indices)]
    new_parent_labels = scored.labels[parent.indices]
    key = prefix_key(recipe.select)
    grows = classes > parent.classes

    def build(k: int) -> Encoded:
        add = np.sort(fresh[:k])
        idx = np.concatenate([parent.indices, add])
        lab = np.concatenate([new_parent_labels, scored.labels[add]])
        changes, add_idx, add_lab = diff_sets(parent, idx, lab, classes)
        delta = {"parent": parent.digest, "changes": changes, "base": parent.indices}
        names_sent = names if names and (grows or spec.class_names) else None
        payload, sections = spec.build(
            add_idx, add_lab, classes, class_names=names_sent, prefix_key=key, delta=delta, exemplars=None
        )
        result = apply_delta(
            parent,
            parent_digest=parent.digest,
            changes=changes,
            add_indices=add_idx,
            add_labels=add_lab,
            classes=classes,
            class_names=names,
        )
        extra = {"changes": _summary(changes, add_idx), "result": result}
        return Encoded(payload, sections, add_idx, add_lab, extra)

    return build, int(fresh.size)


def _summary(changes: Changes, add_idx: np.ndarray) -> dict:
    return {
        "added": int(add_idx.size),
        "relabelled": int(changes.relabel.positions.size) if changes.relabel is not None else 0,
        "removed": int(changes.remove.size) if changes.remove is not None else 0,
    }


def fit_delta(build: Callable[[int], Encoded], k_max: int, budget: LinkBudget) -> Fit:
    """The delta adding the most items that fits the budget (a relabelling alone when no item fits)."""
    try:
        return fit_budget(build, k_max, budget) if k_max else _only(build(0), budget)
    except BudgetError:
        return _only(build(0), budget)


def _only(enc: Encoded, budget: LinkBudget) -> Fit:
    lay = budget.final_layout(len(enc.payload))
    if lay.total_frames * budget.frame_bytes > budget.budget_bytes:
        raise BudgetError(f"even the relabelling alone needs {lay.total_frames * budget.frame_bytes} framed bytes")
    return Fit(0, enc, lay, lay.total_frames * budget.frame_bytes, 1)


def full_payload(result: LabelledSet, spec, key: int | None) -> tuple[bytes, dict]:
    """A full payload carrying the labelled set ``result`` (a chain's root): (payload, section sizes)."""
    return spec.build(
        result.indices,
        result.labels,
        result.classes,
        class_names=result.class_names,
        prefix_key=key,
        exemplars=None,
        delta=None,
    )


def full_equivalent(result: LabelledSet, spec, key: int | None) -> int:
    """Bytes of a full payload carrying the same labelled set (what resending everything would cost)."""
    return len(full_payload(result, spec, key)[0])
