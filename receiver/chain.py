"""Chains of payloads on the device: the cumulative labelled set per sending key, and how a payload moves it.

A full payload starts (or restarts) a chain; a delta payload (``codec.delta``) applies only to the set
whose digest it names as its parent — the chain's **head**. The head is kept in the device's state
folder, crash-safe::

    STATE/chains/<key id>/head.json          digest, sequence, parent, the files below; the previous head
    STATE/chains/<key id>/set-<digest>.npz   the labelled set (indices, labels, classes, names, soft targets)
    STATE/chains/<key id>/model-<digest>.pt  the student trained on it (for a warm start)

Files are written first, ``head.json`` last (atomic replace), and a head's files are removed only
when a newer head replaces its predecessor — so a power cut at any point leaves either the old
head or the new one, with its files. A delta whose result is already the head (the cut fell after
the head moved, before the sequence was accepted) resumes from the head; a delta on an older head is
a fork; any other parent is not here yet (its frames wait).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.delta import LabelledSet, apply_delta
from ..codec.errors import MissingParentError, ParentError
from ..codec.payload import Payload
from ..codec.storage import atomic_write

__all__ = ["Chains", "Step", "labelled_set_of"]


@dataclass
class Step:
    """What a payload makes of the chain: the set to train on, and the model to start from (deltas)."""

    labelled: LabelledSet
    warm: dict | None  # state dict of the student trained on the parent set
    parent: str | None  # the parent's digest (hex), None for a full payload
    resumed: bool = False  # the head already is this payload's result (a cut after the head moved)


def labelled_set_of(p: Payload, use_soft: bool = True) -> LabelledSet:
    """The labelled set a full payload describes."""
    h = p.header
    soft = p.soft.dense(p.labels, h.classes) if (p.soft is not None and use_soft) else None
    return LabelledSet(h.n_items, h.classes, p.indices, p.labels, p.class_names, soft)


class Chains:
    def __init__(self, state_dir: str | Path) -> None:
        self.root = Path(state_dir) / "chains"

    def _dir(self, kid: bytes) -> Path:
        return self.root / kid.hex()

    def head_info(self, kid: bytes) -> dict | None:
        f = self._dir(kid) / "head.json"
        return json.loads(f.read_text()) if f.exists() else None

    def _load_set(self, kid: bytes, name: str) -> LabelledSet:
        return LabelledSet.from_bytes((self._dir(kid) / name).read_bytes())

    def _load_model(self, kid: bytes, name: str | None) -> dict | None:
        import torch

        if not name or not (self._dir(kid) / name).exists():
            return None
        return torch.load(self._dir(kid) / name, map_location="cpu", weights_only=True)

    def base_indices(self, kid: bytes, parent: bytes) -> np.ndarray | None:
        """The indices of the set a delta extends (for decoding its index section), or None."""
        info = self.head_info(kid)
        if info is None:
            return None
        for entry in (info, info.get("previous") or {}):
            if entry.get("digest") == parent.hex():
                return self._load_set(kid, entry["set"]).indices
        return None

    @staticmethod
    def _resumes(info: dict, p: Payload) -> bool:
        return info.get("sequence") == p.header.sequence and info.get("parent") == p.parent.hex()

    def refuse_parent(self, kid: bytes, parent: bytes) -> None:
        """Raise why a delta on ``parent`` does not apply here: a fork (``ParentError``, final) or a parent
        not applied yet (``MissingParentError``: the frames wait for it)."""
        info = self.head_info(kid)
        want = parent.hex()
        if info is None:
            raise MissingParentError(
                f"parent {want[:16]} not here: this device holds no labelled set from key {kid.hex()} yet; "
                "the frames are kept until the full payload arrives"
            )
        if want in info.get("history", []):
            raise ParentError(
                f"forked chain: parent {want[:16]} was already extended (head is {info['digest'][:16]}, "
                f"sequence {info['sequence']}); refused"
            )
        raise MissingParentError(
            f"parent {want[:16]} not here, head is {info['digest'][:16]}; the frames are kept until the parent arrives"
        )

    def step(self, p: Payload, use_soft: bool = True) -> Step:
        """Resolve a decoded payload against the chain; raises ParentError (changing nothing) when it does not apply."""
        kid = p.header.key_id
        if not p.is_delta:
            return Step(labelled_set_of(p, use_soft), None, None)
        info = self.head_info(kid)
        want = p.parent.hex()
        if info is None or (info["digest"] != want and not self._resumes(info, p)):
            self.refuse_parent(kid, p.parent)
        prev = info.get("previous") or {}
        if info.get("sequence") == p.header.sequence and info.get("parent") == want:
            return Step(self._load_set(kid, info["set"]), self._load_model(kid, prev.get("model")), want, True)
        parent = self._load_set(kid, info["set"])
        soft = p.soft.dense(p.labels, p.header.classes) if (p.soft is not None and use_soft) else None
        new = apply_delta(
            parent,
            parent_digest=p.parent,
            changes=p.changes,
            add_indices=p.indices,
            add_labels=p.labels,
            classes=p.header.classes,
            class_names=p.class_names,
            add_soft=soft,
        )
        return Step(new, self._load_model(kid, info.get("model")), want)

    def commit(self, kid: bytes, sequence: int, step: Step, model_state: dict | None) -> None:
        """Make ``step.labelled`` the head (files first, head.json last); keeps the previous head's files."""
        import torch

        d = self._dir(kid)
        s = step.labelled
        digest = s.digest.hex()
        set_name, model_name = f"set-{digest[:16]}.npz", f"model-{digest[:16]}.pt"
        atomic_write(d / set_name, s.to_bytes(), what=f"labelled set in {d}")
        if model_state is not None:
            buf = io.BytesIO()
            torch.save(model_state, buf)
            atomic_write(d / model_name, buf.getvalue(), what=f"chain model in {d}")
        old = self.head_info(kid) or {}
        if step.resumed or old.get("digest") == digest:
            return
        history = (old.get("history", []) + [old["digest"]])[-64:] if old else []
        prev = {k: old[k] for k in ("digest", "set", "model") if k in old}
        head = {
            "digest": digest,
            "sequence": sequence,
            "parent": step.parent,
            "set": set_name,
            "model": model_name if model_state is not None else None,
            "items": s.k,
            "classes": s.classes,
            "history": history,
            "previous": prev or None,
        }
        atomic_write(d / "head.json", json.dumps(head, indent=1), what=f"chain head in {d}")
        keep = {set_name, model_name, prev.get("set"), prev.get("model")}
        for f in list(d.glob("set-*.npz")) + list(d.glob("model-*.pt")):
            if f.name not in keep:
                f.unlink(missing_ok=True)
