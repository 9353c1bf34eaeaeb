"""Payload container, format version 1.

Layout (little-endian; uvarint = LEB128, canonical; no holes, no trailing bytes)::

    offset  size     field
    0       4        magic  b"LCST"
    4       1        format version (1)
    5       1        flags  bit0 soft labels, bit1 class names, bit2 hints (others must be 0)
    6       8        key id (first 8 bytes of SHA-256 of the raw Ed25519 public key)
    14      uvarint  sequence number (monotonic per key id)
            uvarint  expiry, Unix seconds (UTC)
            uvarint  N, reference size          ≤ 2**32 − 1
            uvarint  k, selected items          ≤ min(N, 2**27)
            uvarint  C, class count             1 … 65,536
            blob     index-set section          (uvarint length + bytes; see indexset.py)
            blob     hard-label section         (see labels.py)
            [blob    soft-label section]        if flag bit0 (see softlabels.py)
            [blob    class names]               if flag bit1: UTF-8, one name per line, exactly C lines
            [blob    training hints]            if flag bit2: UTF-8 JSON object
    end−64  64       Ed25519 signature

The signature covers ``DOMAIN || root || body``, where body is every byte before
the signature and ``root`` is the 32-byte Merkle root of the receiver's own
reference manifest — never transmitted, so a device whose reference set differs
fails the check at zero link cost. The receiver verifies the exact bytes that
arrived before parsing anything beyond the fixed 14-byte prefix.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import indexset, labels, softlabels
from ._wire import Reader, Writer
from .errors import DecodeError, ExpiredError, LimitError
from .keys import TrustSet, key_id, sign, verify

__all__ = ["MAGIC", "VERSION", "Header", "Payload", "build_payload", "peek_header", "open_payload", "MAX_PAYLOAD_BYTES"]

MAGIC = b"LCST"
VERSION = 1
DOMAIN = b"labelcast/payload/v1\x00"
SIG_LEN = 64
PREFIX_LEN = 14
MAX_PAYLOAD_BYTES = 64 << 20
MAX_K = 1 << 27
FLAG_SOFT, FLAG_NAMES, FLAG_HINTS = 1, 2, 4
_KNOWN_FLAGS = FLAG_SOFT | FLAG_NAMES | FLAG_HINTS


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
) -> tuple[bytes, dict[str, int]]:
    """Encode, sign and return ``(payload bytes, bytes per section)``.

    ``indices`` need not be sorted; pairs are sorted by index (their order carries
    no information). ``segments`` are the manifest's group runs. ``prefix_key``:
    the selection was drawn per segment in that key's order
    (:func:`labelcast.codec.indexset.prefix_select`), so positions may go unsent.
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
    flags = 0
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    sections: dict[str, bytes] = {
        "index": indexset.encode_indices(idx, n_items, segments, prefix_key),
        "labels": labels.encode_labels(lab, classes, idx, segments),
    }
    if soft is not None:
        flags |= FLAG_SOFT
        sections["soft"] = softlabels.encode_soft(soft.reordered(order), lab, classes)
    if class_names is not None:
        if len(class_names) != classes or any("\n" in n for n in class_names):
            raise ValueError("class_names must be one line each, one per class")
        flags |= FLAG_NAMES
        sections["names"] = "\n".join(class_names).encode()
    if hints:
        flags |= FLAG_HINTS
        sections["hints"] = json.dumps(hints, sort_keys=True, separators=(",", ":")).encode()
    w.u8(flags)
    w.raw(key_id(key.public_key()))
    for v in (sequence, expires_at, n_items, idx.size, classes):
        w.uvarint(v)
    for s in sections.values():
        w.blob(s)
    body = w.getvalue()
    sig = sign(key, DOMAIN + root + body)
    sizes = {name: len(s) for name, s in sections.items()}
    sizes["header"] = len(body) - sum(len(s) for s in sections.values())
    sizes["signature"] = SIG_LEN
    return body + sig, sizes


def peek_header(data: bytes) -> tuple[int, int, bytes]:
    """Untrusted look at the fixed prefix: (version, flags, key id). Checks only sizes."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise LimitError(f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if len(data) < PREFIX_LEN + SIG_LEN:
        raise DecodeError(f"payload is truncated ({len(data)} bytes); ask the sender to resend")
    if data[:4] != MAGIC:
        raise DecodeError("not a labelcast payload (bad magic)")
    if data[4] != VERSION:
        raise DecodeError(f"payload format version {data[4]} is not supported by this receiver (supports {VERSION})")
    return data[4], data[5], bytes(data[6:14])


def verify_signature(data: bytes, trust: TrustSet, root: bytes) -> bytes:
    """Check the signature over the exact bytes; returns the key id. Nothing is parsed before."""
    _, _, kid = peek_header(data)
    verify(trust.get(kid), bytes(data[-SIG_LEN:]), DOMAIN + bytes(root) + bytes(data[:-SIG_LEN]))
    return kid


def _read_header(r: Reader) -> Header:
    r.raw(4)
    version = r.u8()
    flags = r.u8()
    if flags & ~_KNOWN_FLAGS:
        raise DecodeError(f"payload has unknown flags {flags:#x}; upgrade the receiver")
    kid = r.raw(8)
    seq = r.uvarint(name="sequence")
    exp = r.uvarint(name="expiry")
    n = r.uvarint(limit=indexset.MAX_ITEMS, name="reference size")
    k = r.uvarint(limit=min(n, MAX_K), name="selected items")
    c = r.uvarint(limit=labels.MAX_CLASSES, name="class count")
    if n == 0 or c == 0:
        raise DecodeError("payload declares an empty reference set or zero classes")
    return Header(version, flags, kid, seq, exp, n, k, c)


def open_payload(
    data: bytes,
    trust: TrustSet,
    root: bytes,
    *,
    n_items: int | None = None,
    segments: np.ndarray | None = None,
    now: float | None = None,
    decode: bool = True,
) -> Payload:
    """Verify, check expiry and decode a payload. Raises only LabelcastError subclasses.

    ``n_items``/``segments`` come from the local manifest; a payload for another
    reference size is refused before decoding.
    """
    data = bytes(data)
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
    limit = len(data)
    blobs = {"index": r.blob(limit, "index-set section"), "labels": r.blob(limit, "label section")}
    if h.flags & FLAG_SOFT:
        blobs["soft"] = r.blob(limit, "soft-label section")
    if h.flags & FLAG_NAMES:
        blobs["names"] = r.blob(limit, "class names")
    if h.flags & FLAG_HINTS:
        blobs["hints"] = r.blob(limit, "hints")
    r.end()
    sizes = {name: len(b) for name, b in blobs.items()}
    empty = np.zeros(0, dtype=np.int64)
    p = Payload(h, empty, empty, section_bytes=sizes)
    if not decode:
        return p
    p.indices = indexset.decode_indices(blobs["index"], h.n_items, h.k, segments)
    p.labels = labels.decode_labels(blobs["labels"], h.classes, p.indices, segments)
    if "soft" in blobs:
        p.soft = softlabels.decode_soft(blobs["soft"], p.labels, h.classes)
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
    return p
