"""Payload container: format version 2 (written), version 1 (still read).

Version 2 layout (little-endian; uvarint = LEB128, canonical; no holes, no trailing bytes)::

    offset  size     field
    0       4        magic  b"LCST"
    4       1        format version (2)
    5       1        flags (reserved: must be 0)
    6       8        key id (first 8 bytes of SHA-256 of the raw Ed25519 public key)
    14      uvarint  sequence number (monotonic per key id)
            uvarint  expiry, Unix seconds (UTC)
            uvarint  N, reference size          ≤ 2**32 − 1
            uvarint  k, items in the index section ≤ min(N, 2**27)
            uvarint  C, class count             1 … 65,536
            sections, each: u8 type, blob content — strictly ascending types:
              1 INDEX      index set (indexset.py)                          required
              2 LABELS     hard labels of the k items (labels.py)           required
              3 SOFT       soft labels (softlabels.py)
              4 NAMES      class names: UTF-8, one per line, exactly C lines
              5 HINTS      training hints: a UTF-8 JSON object
              6 EXEMPLARS  target images with labels (exemplars.py)
              7 PARENT     32-byte digest of the labelled set this delta applies to (delta.py)
              8 RELABEL    delta: new labels for items of the parent set (delta.py)
              9 REMOVE     delta: items leaving the parent set (delta.py)
            An unknown section type is refused (a newer sender; upgrade the receiver).
    end−64  64       Ed25519 signature over DOMAIN_V2 ‖ root ‖ every byte before it

Version 1 (flags bit0 soft, bit1 names, bit2 hints; sections as bare blobs in that order;
DOMAIN_V1) is decoded exactly as before. In both, ``root`` — the Merkle root of the
receiver's *own* reference manifest — is part of the signed message but never sent:
a device whose reference set differs fails the check at zero link cost. The receiver
verifies the exact bytes that arrived (:func:`verify_payload`) before parsing anything
beyond the fixed 14-byte prefix, then decodes (:func:`decode_payload`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import delta as delta_coder
from . import exemplars as exemplar_coder
from . import indexset, labels, softlabels
from ._wire import Reader, Writer
from .errors import DecodeError, ExpiredError, LimitError
from .keys import TrustSet, key_id, sign, verify

__all__ = [
    "MAGIC",
    "VERSION",
    "VERSIONS",
    "SECTIONS",
    "Header",
    "Payload",
    "Peek",
    "Verified",
    "build_payload",
    "peek",
    "peek_header",
    "verify_payload",
    "decode_payload",
    "open_payload",
    "MAX_PAYLOAD_BYTES",
]

MAGIC = b"LCST"
VERSION = 2
VERSIONS = (1, 2)
SEALED = 3  # format version of a payload sealed to one device (sealed.py)
GROUP = 4  # format version of a signed payload whose body is sealed for a list of devices (sealed.py)
DOMAIN_V1 = b"labelcast/payload/v1\x00"
DOMAIN_V2 = b"labelcast/payload/v2\x00"
DOMAIN = DOMAIN_V2  # what build_payload signs with
DOMAINS = {1: DOMAIN_V1, 2: DOMAIN_V2}
SIG_LEN = 64
PREFIX_LEN = 14
MAX_PAYLOAD_BYTES = 64 << 20
MAX_K = 1 << 27
DIGEST_LEN = 32
# v1 flags
FLAG_SOFT, FLAG_NAMES, FLAG_HINTS = 1, 2, 4
_V1_FLAGS = FLAG_SOFT | FLAG_NAMES | FLAG_HINTS
_V1_SECTIONS = ((FLAG_SOFT, "soft"), (FLAG_NAMES, "names"), (FLAG_HINTS, "hints"))
# v2 section types
SECTIONS = {
    "index": 1,
    "labels": 2,
    "soft": 3,
    "names": 4,
    "hints": 5,
    "exemplars": 6,
    "parent": 7,
    "relabel": 8,
    "remove": 9,
}
_SECTION_NAMES = {v: k for k, v in SECTIONS.items()}


@dataclass(frozen=True)
class Header:
    version: int
    flags: int
    key_id: bytes
    sequence: int
    expires_at: int
    n_items: int
    k: int
    classes: int


@dataclass
class Payload:
    header: Header
    indices: np.ndarray
    labels: np.ndarray
    soft: softlabels.SoftLabels | None = None
    class_names: list[str] | None = None
    hints: dict = field(default_factory=dict)
    section_bytes: dict[str, int] = field(default_factory=dict)
    exemplars: exemplar_coder.Exemplars | None = None
    parent: bytes | None = None  # a delta's parent set digest (None: a full payload)
    changes: delta_coder.Changes | None = None

    @property
    def is_delta(self) -> bool:
        return self.parent is not None


@dataclass(frozen=True)
class Peek:
    """An unverified look at a payload's start: enough to order payloads, nothing to trust."""

    version: int
    key_id: bytes
    sequence: int | None


@dataclass(frozen=True)
class Verified:
    """A payload whose signature, header limits and expiry were checked; its sections still raw."""

    data: bytes
    header: Header
    blobs: dict[str, bytes]

    @property
    def section_bytes(self) -> dict[str, int]:
        return {name: len(b) for name, b in self.blobs.items()}


def _section_content(
    idx, lab, classes, n_items, segments, prefix_key, soft, order, class_names, hints, exemplars, delta
) -> dict[str, bytes]:
    base = delta.get("base") if delta else None
    sections: dict[str, bytes] = {
        "index": indexset.encode_indices(idx, n_items, segments, prefix_key, base),
        "labels": labels.encode_labels(lab, classes, idx, segments),
    }
    if soft is not None:
        sections["soft"] = softlabels.encode_soft(soft.reordered(order), lab, classes)
    if class_names is not None:
        if len(class_names) != classes or any("\n" in n for n in class_names):
            raise ValueError("class_names must be one line each, one per class")
        sections["names"] = "\n".join(class_names).encode()
    if hints:
        sections["hints"] = json.dumps(hints, sort_keys=True, separators=(",", ":")).encode()
    if exemplars is not None:
        sections["exemplars"] = exemplar_coder.encode_exemplars(exemplars, classes)
    if delta:
        parent = bytes(delta["parent"])
        if len(parent) != DIGEST_LEN:
            raise ValueError("a delta's parent is a 32-byte set digest")
        sections["parent"] = parent
        if delta.get("changes") is not None:
            sections.update(delta_coder.encode_changes(delta["changes"], classes))
    return sections


def build_payload(
    indices: np.ndarray,
    hard_labels: np.ndarray,
    *,
    n_items: int,
    classes: int,
    root: bytes,
    key: Ed25519PrivateKey,
    sequence: int,
    expires_at: int,
    segments: np.ndarray | None = None,
    soft: softlabels.SoftLabels | None = None,
    class_names: list[str] | None = None,
    hints: dict | None = None,
    prefix_key: int | None = None,
    exemplars: exemplar_coder.Exemplars | None = None,
    delta: dict | None = None,
    seal_to: Ed25519PublicKey | list[Ed25519PublicKey] | None = None,
) -> tuple[bytes, dict[str, int]]:
    """Encode, sign and return ``(payload bytes, bytes per section)`` (format version 2; version 3, sealed
    to one device with a 16-byte tag instead of the signature, when ``seal_to`` is that device's key; version
    4, signed and its body sealed for each of a list of devices, when ``seal_to`` is a list of two or more).

    ``indices`` need not be sorted; pairs are sorted by index (their order carries
    no information). ``segments`` are the manifest's group runs. ``prefix_key``:
    the selection was drawn per segment in that key's order
    (:func:`labelcast.codec.indexset.prefix_select`), so positions may go unsent.
    ``exemplars``: target images sent beside the labels. ``delta``: ``{"parent": digest,
    "changes": delta.Changes | None, "base": the parent's indices}`` makes this a delta on
    that parent, whose indices/labels are the items *added* (see :mod:`labelcast.codec.delta`).
    """
    idx = np.asarray(indices, dtype=np.int64)
    lab = np.asarray(hard_labels, dtype=np.int64)
    if idx.shape != lab.shape:
        raise ValueError("indices and labels must have the same length")
    if len(root) != 32:
        raise ValueError("root must be 32 bytes")
    if idx.size > MAX_K:
        raise ValueError(f"at most {MAX_K} items per payload")
    if sequence < 0 or expires_at < 0:
        raise ValueError("sequence and expiry must be non-negative")
    order = np.argsort(idx, kind="stable")
    idx, lab = idx[order], lab[order]
    sections = _section_content(
        idx, lab, classes, n_items, segments, prefix_key, soft, order, class_names, hints, exemplars, delta
    )
    rest = Writer()
    for v in (n_items, idx.size, classes):
        rest.uvarint(v)
    for name, content in sections.items():
        rest.u8(SECTIONS[name])
        rest.blob(content)
    sizes = {name: len(s) for name, s in sections.items()}
    if seal_to is not None:
        return _sealed(key, seal_to, root, sequence, expires_at, rest.getvalue(), sizes)
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    w.u8(0)
    w.raw(key_id(key.public_key()))
    for v in (sequence, expires_at):
        w.uvarint(v)
    w.raw(rest.getvalue())
    body = w.getvalue()
    sig = sign(key, DOMAIN_V2 + root + body)
    sizes["header"] = len(body) - sum(sizes.values())
    sizes["signature"] = SIG_LEN
    return body + sig, sizes


def _sealed(key, seal_to, root: bytes, sequence: int, expires_at: int, rest: bytes, sizes: dict):
    """Version 3 (one device) or 4 (a list of devices) around the version-2 body ``rest``."""
    from .sealed import TAG_LEN, WRAP_LEN, seal_body, seal_group

    if isinstance(seal_to, list | tuple) and len(seal_to) == 1:
        seal_to = seal_to[0]
    if isinstance(seal_to, list | tuple):
        sealed = seal_group(key, list(seal_to), root, MAGIC, sequence, expires_at, rest)
        sizes.update(recipients=WRAP_LEN * len(seal_to), tag=TAG_LEN, signature=SIG_LEN)
        sizes["header"] = len(sealed) - sum(sizes.values())
        return sealed, sizes
    sealed = seal_body(key, seal_to, root, MAGIC, sequence, expires_at, rest)
    sizes.update(header=len(sealed) - TAG_LEN - sum(sizes.values()), tag=TAG_LEN)
    return sealed, sizes


def peek_header(data: bytes) -> tuple[int, int, bytes]:
    """Untrusted look at the fixed prefix: (version, flags, key id). Checks only sizes."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise LimitError(f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if len(data) < PREFIX_LEN + SIG_LEN:
        raise DecodeError(f"payload is truncated ({len(data)} bytes); ask the sender to resend")
    if data[:4] != MAGIC:
        raise DecodeError("not a labelcast payload (bad magic)")
    if data[4] not in VERSIONS:
        known = ", ".join(map(str, VERSIONS))
        raise DecodeError(f"payload format version {data[4]} is not supported by this receiver (supports {known})")
    return data[4], data[5], bytes(data[6:14])


def peek(start: bytes) -> Peek | None:
    """(version, key id, sequence) from the first bytes of a payload (e.g. its first frame's block),
    unverified: for ordering only — the worst a forger can do with it is delay. None if unreadable."""
    if len(start) < PREFIX_LEN + 1 or start[:4] != MAGIC or start[4] not in (*VERSIONS, SEALED, GROUP):
        return None
    at = PREFIX_LEN + 8 if start[4] == SEALED else PREFIX_LEN  # a sealed payload names its device first
    try:
        seq = Reader(start[at : at + 10], "payload").uvarint(name="sequence")
    except DecodeError:
        seq = None
    return Peek(start[4], bytes(start[6:14]), seq)


def verify_signature(data: bytes, trust: TrustSet, root: bytes) -> bytes:
    """Check the signature over the exact bytes; returns the key id. Nothing is parsed before."""
    version, _, kid = peek_header(data)
    body = bytes(data[:-SIG_LEN])
    verify(trust.get(kid), bytes(data[-SIG_LEN:]), DOMAINS[version] + bytes(root) + body, root=bytes(root))
    return kid


def _read_header(r: Reader) -> Header:
    r.raw(4)
    version = r.u8()
    flags = r.u8()
    if version == 1 and flags & ~_V1_FLAGS:
        raise DecodeError(f"payload has unknown flags {flags:#x}; upgrade the receiver")
    if version == 2 and flags:
        raise DecodeError(f"payload has reserved flags {flags:#x} set; upgrade the receiver")
    kid = r.raw(8)
    seq = r.uvarint(name="sequence")
    exp = r.uvarint(name="expiry")
    n = r.uvarint(limit=indexset.MAX_ITEMS, name="reference size")
    k = r.uvarint(limit=min(n, MAX_K), name="selected items")
    c = r.uvarint(limit=labels.MAX_CLASSES, name="class count")
    if n == 0 or c == 0:
        raise DecodeError("payload declares an empty reference set or zero classes")
    return Header(version, flags, kid, seq, exp, n, k, c)


def _read_sections(r: Reader, h: Header, limit: int) -> dict[str, bytes]:
    if h.version == 1:
        blobs = {"index": r.blob(limit, "index-set section"), "labels": r.blob(limit, "label section")}
        for flag, name in _V1_SECTIONS:
            if h.flags & flag:
                blobs[name] = r.blob(limit, f"{name} section")
        return blobs
    blobs: dict[str, bytes] = {}
    last = 0
    while r.remaining():
        t = r.u8()
        if t not in _SECTION_NAMES:
            raise DecodeError(f"payload has section type {t}, unknown to this receiver; upgrade the receiver")
        if t <= last:
            raise DecodeError("payload sections are out of order or repeated; it was altered")
        last = t
        blobs[_SECTION_NAMES[t]] = r.blob(limit, f"{_SECTION_NAMES[t]} section")
    if "index" not in blobs or "labels" not in blobs:
        raise DecodeError("payload lacks its index or label section")
    if ("relabel" in blobs or "remove" in blobs) and "parent" not in blobs:
        raise DecodeError("payload has delta operations but names no parent")
    return blobs


def verify_payload(
    data: bytes, trust: TrustSet, root: bytes, *, n_items: int | None = None, now: float | None = None
) -> Verified:
    """Verify the signature over the exact bytes, then the header, expiry and section framing.

    Raises only LabelcastError subclasses. ``n_items`` comes from the local manifest; a payload
    for another reference size is refused before any section is decoded."""
    data = bytes(data)
    if len(data) > 4 and data[:4] == MAGIC and data[4] in (SEALED, GROUP):
        r, h = _open_sealed(data, trust, root)
    else:
        verify_signature(data, trust, root)
        r = Reader(data[:-SIG_LEN], "payload")
        h = _read_header(r)
    now = time.time() if now is None else now
    if h.expires_at <= now:
        raise ExpiredError(
            f"payload {h.sequence} expired at {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(h.expires_at))}; "
            "ask the ground station for a fresh one"
        )
    if n_items is not None and h.n_items != n_items:
        raise DecodeError(f"payload is for a reference set of {h.n_items} items; this one has {n_items}")
    blobs = _read_sections(r, h, len(data))
    r.end()
    return Verified(data, h, blobs)


def _open_sealed(data: bytes, trust: TrustSet, root: bytes) -> tuple[Reader, Header]:
    """The tag first (sender from the trust set, this device's key), then the header inside."""
    from .errors import SealError
    from .sealed import open_group, open_sealed, sealed_prefix

    if len(data) > MAX_PAYLOAD_BYTES:
        raise LimitError(f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if data[4] == GROUP:
        if len(data) < PREFIX_LEN + SIG_LEN + 16:
            raise DecodeError(f"payload is truncated ({len(data)} bytes); ask the sender to resend")
        sid = bytes(data[6:14])
        seq, exp, rest = open_group(data, trust.get(sid), trust.device, root)
        version = GROUP
    else:
        sid, did = sealed_prefix(data)
        sender = trust.get(sid)
        if trust.device is None:
            raise SealError(f"payload sealed to device {did.hex()}; open it with this device's key (--device-key)")
        seq, exp, rest = open_sealed(data, sender, trust.device, root)
        version = SEALED
    r = Reader(rest, "sealed payload")
    n = r.uvarint(limit=indexset.MAX_ITEMS, name="reference size")
    k = r.uvarint(limit=min(n, MAX_K), name="selected items")
    c = r.uvarint(limit=labels.MAX_CLASSES, name="class count")
    if n == 0 or c == 0:
        raise DecodeError("payload declares an empty reference set or zero classes")
    return r, Header(version, 0, sid, seq, exp, n, k, c)


def _decode_text(blobs: dict[str, bytes], h: Header, p: Payload) -> None:
    if "names" in blobs:
        try:
            names = blobs["names"].decode("utf-8").split("\n")
        except UnicodeDecodeError as e:
            raise DecodeError("class names are not UTF-8") from e
        if len(names) != h.classes:
            raise DecodeError("class names do not match the class count")
        p.class_names = names
    if "hints" in blobs:
        try:
            hints = json.loads(blobs["hints"].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise DecodeError("training hints are not valid JSON") from e
        if not isinstance(hints, dict):
            raise DecodeError("training hints must be a JSON object")
        p.hints = hints


def decode_payload(v: Verified, segments: np.ndarray | None = None, base: np.ndarray | None = None) -> Payload:
    """Decode the sections of a verified payload. ``segments``: the local manifest's group runs;
    ``base``: the indices of the labelled set a delta extends (needed by PREFIX_EXTEND)."""
    h, blobs = v.header, v.blobs
    p = Payload(h, np.zeros(0, np.int64), np.zeros(0, np.int64), section_bytes=v.section_bytes)
    p.indices = indexset.decode_indices(blobs["index"], h.n_items, h.k, segments, base)
    p.labels = labels.decode_labels(blobs["labels"], h.classes, p.indices, segments)
    if "soft" in blobs:
        p.soft = softlabels.decode_soft(blobs["soft"], p.labels, h.classes)
    _decode_text(blobs, h, p)
    if "exemplars" in blobs:
        p.exemplars = exemplar_coder.decode_exemplars(blobs["exemplars"], h.classes)
    if "parent" in blobs:
        if len(blobs["parent"]) != DIGEST_LEN:
            raise DecodeError("parent section must be a 32-byte digest")
        p.parent = blobs["parent"]
        p.changes = delta_coder.decode_changes(blobs.get("relabel"), blobs.get("remove"), h.classes)
    return p


def open_payload(
    data: bytes,
    trust: TrustSet,
    root: bytes,
    *,
    n_items: int | None = None,
    segments: np.ndarray | None = None,
    now: float | None = None,
    decode: bool = True,
    base: np.ndarray | None = None,
) -> Payload:
    """Verify, check expiry and decode a payload (:func:`verify_payload` then :func:`decode_payload`).

    Raises only LabelcastError subclasses. With ``decode=False`` only the header is filled in."""
    v = verify_payload(data, trust, root, n_items=n_items, now=now)
    if not decode:
        empty = np.zeros(0, dtype=np.int64)
        return Payload(v.header, empty, empty, section_bytes=v.section_bytes)
    return decode_payload(v, segments, base)
