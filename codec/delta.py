"""Delta payloads (v2): teach a device more by sending only what changed in its labelled set.

A device keeps, per chain, its cumulative **labelled set**: the sorted reference indices it
holds labels for, their hard labels, the class count (and names, and soft targets where a
payload sent them). A full payload is a chain's root. A delta names its **parent** — the
:func:`set_digest` of the set it applies to, bound into the signature — and carries
operations on that set, applied in this order:

1. **relabel**: items at the given positions of the parent's sorted index list get new
   labels, sent as offsets ``(new − old − 1) mod C`` (a relabel never keeps the label, so a
   teacher that fixes look-alike classes costs near the entropy of its corrections);
2. **remove**: items at the given positions leave the set (disjoint from the relabels);
3. **add**: the payload's index and label sections, as in a full payload — with the index
   mode ``PREFIX_EXTEND`` when the new items are, per segment, the next items of the keyed
   order after those the set holds (counts only);
4. **add classes**: the header's class count may grow (never shrink); new names come in the
   names section (all C names).

Both ends run :func:`apply_delta`, so the sender knows exactly what the device will hold.

Sections (see ``payload.py`` for their place in the container)::

    PARENT   32 bytes  set_digest of the parent set
    RELABEL  uvarint k_parent, uvarint r, blob positions (index set over k_parent),
             blob offsets (hard-label section over C − 1 classes)
    REMOVE   uvarint k_parent, uvarint r, blob positions (index set over k_parent)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import indexset, labels
from ._wire import Reader, Writer
from .errors import DecodeError, ParentError

__all__ = ["LabelledSet", "Relabel", "set_digest", "encode_changes", "decode_changes", "apply_delta", "diff_sets"]

DIGEST_DOMAIN = b"labelcast/set/v1\x00"


def set_digest(n_items: int, classes: int, indices: np.ndarray, hard_labels: np.ndarray) -> bytes:
    """SHA-256 over a labelled set: domain ‖ u64 N ‖ u32 C ‖ u64 k ‖ indices (u64 LE, sorted) ‖ labels (u32 LE).

    Soft targets and class names are not part of the identity of a set."""
    idx = np.asarray(indices, dtype="<u8")
    lab = np.asarray(hard_labels, dtype="<u4")
    h = hashlib.sha256(DIGEST_DOMAIN)
    h.update(int(n_items).to_bytes(8, "little") + int(classes).to_bytes(4, "little") + idx.size.to_bytes(8, "little"))
    h.update(idx.tobytes())
    h.update(lab.tobytes())
    return h.digest()


@dataclass
class LabelledSet:
    """What a device holds for one chain: sorted indices, hard labels, optional soft targets (k × C)."""

    n_items: int
    classes: int
    indices: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None = None
    soft: np.ndarray | None = None  # k × C float32 target distributions, or None (hard labels)

    @property
    def digest(self) -> bytes:
        return set_digest(self.n_items, self.classes, self.indices, self.labels)

    @property
    def k(self) -> int:
        return int(self.indices.size)

    def targets(self) -> np.ndarray:
        """Training targets: the soft rows where sent, else the hard labels."""
        return self.soft if self.soft is not None else self.labels

    def to_bytes(self) -> bytes:
        """The set as an ``.npz`` (what the device keeps per chain and the sender keeps per outbox)."""
        import io

        buf = io.BytesIO()
        arrays = {
            "n_items": np.array(self.n_items),
            "classes": np.array(self.classes),
            "indices": self.indices,
            "labels": self.labels,
            "names": np.array(self.class_names or [], dtype=str),
        }
        if self.soft is not None:
            arrays["soft"] = self.soft
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelledSet:
        import io

        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                names = [str(v) for v in z["names"]] or None
                soft = z["soft"] if "soft" in z.files else None
                return cls(
                    int(z["n_items"]),
                    int(z["classes"]),
                    z["indices"].astype(np.int64),
                    z["labels"].astype(np.int64),
                    names,
                    soft,
                )
        except (OSError, ValueError, KeyError) as e:
            raise DecodeError(f"a kept labelled set is unreadable ({e}); restore it from the ground") from e


@dataclass
class Relabel:
    positions: np.ndarray  # sorted positions into the parent's index list
    offsets: np.ndarray  # (new − old − 1) mod C


@dataclass
class Changes:
    """The delta operations of one payload (all positions refer to the parent's sorted index list)."""

    k_parent: int
    relabel: Relabel | None = None
    remove: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _positions_blob(pos: np.ndarray, k_parent: int) -> bytes:
    return indexset.encode_indices(np.asarray(pos, dtype=np.int64), k_parent)


def encode_changes(changes: Changes, classes: int) -> dict[str, bytes]:
    """The RELABEL and REMOVE sections (only those with entries)."""
    out: dict[str, bytes] = {}
    if changes.relabel is not None and changes.relabel.positions.size:
        if classes < 2:
            raise ValueError("relabelling needs at least two classes")
        w = Writer()
        w.uvarint(changes.k_parent)
        w.uvarint(changes.relabel.positions.size)
        w.blob(_positions_blob(changes.relabel.positions, changes.k_parent))
        w.blob(labels.encode_labels(changes.relabel.offsets, classes - 1))
        out["relabel"] = w.getvalue()
    if changes.remove is not None and changes.remove.size:
        w = Writer()
        w.uvarint(changes.k_parent)
        w.uvarint(changes.remove.size)
        w.blob(_positions_blob(changes.remove, changes.k_parent))
        out["remove"] = w.getvalue()
    return out


def _read_positions(r: Reader, what: str) -> tuple[int, np.ndarray]:
    k_parent = r.uvarint(limit=indexset.MAX_ITEMS, name=f"{what} parent size")
    count = r.uvarint(limit=k_parent, name=f"{what} count")
    if k_parent == 0 or count == 0:
        raise DecodeError(f"{what} section: empty")
    blob = r.blob(r.remaining(), f"{what} positions")
    return k_parent, indexset.decode_indices(blob, k_parent, count)


def decode_changes(relabel: bytes | None, remove: bytes | None, classes: int) -> Changes | None:
    """Parse the RELABEL/REMOVE sections; raises only DecodeError."""
    if relabel is None and remove is None:
        return None
    k_parent = None
    ch = Changes(0)
    if relabel is not None:
        if classes < 2:
            raise DecodeError("relabel section in a payload of one class")
        r = Reader(relabel, "relabel section")
        k_parent, pos = _read_positions(r, "relabel")
        off = labels.decode_labels(r.blob(r.remaining(), "relabel offsets"), classes - 1, pos)
        r.end()
        ch.relabel = Relabel(pos, off)
    if remove is not None:
        r = Reader(remove, "remove section")
        k_rm, pos = _read_positions(r, "remove")
        r.end()
        if k_parent is not None and k_rm != k_parent:
            raise DecodeError("relabel and remove sections disagree on the parent's size")
        k_parent = k_rm
        ch.remove = pos
    ch.k_parent = int(k_parent)
    return ch


def apply_delta(
    parent: LabelledSet,
    *,
    parent_digest: bytes,
    changes: Changes | None,
    add_indices: np.ndarray,
    add_labels: np.ndarray,
    classes: int,
    class_names: list[str] | None = None,
    add_soft: np.ndarray | None = None,
) -> LabelledSet:
    """The set a delta makes of ``parent``; raises ParentError (and changes nothing) when it does not apply."""
    if parent_digest != parent.digest:
        raise ParentError(
            f"parent {parent_digest.hex()[:16]} not here, head is {parent.digest.hex()[:16]}; "
            "the frames are kept until the parent arrives"
        )
    if classes < parent.classes:
        raise ParentError(f"a delta cannot remove classes ({parent.classes} → {classes})")
    k = parent.k
    lab = parent.labels.copy()
    keep = np.ones(k, dtype=bool)
    relabelled = np.zeros(k, dtype=bool)
    if changes is not None and changes.k_parent != k:
        raise ParentError(f"the delta was made for a set of {changes.k_parent} items; the head has {k}")
    if changes is not None and changes.relabel is not None:
        pos = changes.relabel.positions
        if pos.size and pos[-1] >= k:
            raise ParentError("the delta relabels an item the set does not hold")
        lab[pos] = (lab[pos] + changes.relabel.offsets + 1) % classes
        relabelled[pos] = True
    if changes is not None and changes.remove is not None:
        pos = changes.remove
        if pos.size and pos[-1] >= k:
            raise ParentError("the delta removes an item the set does not hold")
        if relabelled[pos].any():
            raise ParentError("the delta both relabels and removes the same item")
        keep[pos] = False
    add = np.asarray(add_indices, dtype=np.int64)
    if np.isin(add, parent.indices, assume_unique=True).any():
        raise ParentError("the delta adds an item the set already holds")
    idx = np.concatenate([parent.indices[keep], add])
    new_lab = np.concatenate([lab[keep], np.asarray(add_labels, dtype=np.int64)])
    order = np.argsort(idx, kind="stable")
    soft = None
    if parent.soft is not None or add_soft is not None:
        old = parent.soft if parent.soft is not None else np.eye(parent.classes, dtype=np.float32)[parent.labels]
        old = np.pad(old, ((0, 0), (0, classes - parent.classes)))
        old[relabelled] = np.eye(classes, dtype=np.float32)[lab[relabelled]]
        new = add_soft if add_soft is not None else np.eye(classes, dtype=np.float32)[np.asarray(add_labels)]
        soft = np.concatenate([old[keep], np.asarray(new, dtype=np.float32)])[order]
    names = class_names if class_names is not None else parent.class_names
    return LabelledSet(parent.n_items, classes, idx[order], new_lab[order], names, soft)


def diff_sets(
    parent: LabelledSet, indices: np.ndarray, hard_labels: np.ndarray, classes: int | None = None
) -> tuple[Changes, np.ndarray, np.ndarray]:
    """The operations that turn ``parent`` into the set (indices, labels): the changes, and the indices and
    labels of the items to add."""
    idx = np.asarray(indices, dtype=np.int64)
    lab = np.asarray(hard_labels, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    idx, lab = idx[order], lab[order]
    inter, p_pos, n_pos = np.intersect1d(parent.indices, idx, assume_unique=True, return_indices=True)
    changed = parent.labels[p_pos] != lab[n_pos]
    classes = max(parent.classes, int(lab.max(initial=0)) + 1) if classes is None else classes
    rel = p_pos[changed]
    offsets = (lab[n_pos][changed] - parent.labels[rel] - 1) % classes
    o = np.argsort(rel)
    relabel = Relabel(rel[o], offsets[o]) if rel.size else None
    removed = np.setdiff1d(np.arange(parent.k), p_pos, assume_unique=True)
    adds = np.setdiff1d(np.arange(idx.size), n_pos, assume_unique=True)
    return Changes(parent.k, relabel, removed if removed.size else None), idx[adds], lab[adds]
