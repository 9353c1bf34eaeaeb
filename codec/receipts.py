"""Receipts: what a device tells the ground over the return link, signed with the device's own key.

A receipt is one return-link message (an Iridium SBD mobile-originated message, a LoRaWAN uplink, an
acoustic modem's reply). It carries one or more *events*; several pending events coalesce into one
receipt, and a newer state supersedes an older one not yet sent (:func:`coalesce`).

Layout (little-endian; docs/receipts.md has it byte by byte)::

    1        magic/version 0xB1
    1        mode: 0 = signed (Ed25519, a 64-byte signature closes the receipt)
    8        device key id (first 8 bytes of SHA-256 of the device's raw public key)
    uvarint  counter: strictly increasing per device (the ground refuses a counter it has seen)
    uvarint  time: the device's clock, unix seconds
    uvarint  n, the number of events (1..64)
    n ×      event: 1 type byte, then its body (below)
    64       Ed25519 signature over every byte above

Events (``pid``: the payload id, the first 4 bytes of the payload's SHA-256, as in every frame)::

    1 ACCEPTED   pid, uvarint payload sequence            verified and taken (before training)
    2 REFUSED    pid, u8 error exit code, u8 retryable    refused; retryable: tried again when its cause changes
    3 PARTIAL    pid, uvarint S, S × uvarint blocks still needed per stripe,
                 u8 has_bitmap, [uvarint T, ceil(T/8) bytes: bit f set = frame f of the first send is held]
    4 TRAINED    pid, 8 student digest, u16 held-back agreement × 10,000 (65,535: none),
                 uvarint training seconds, uvarint peak training memory in MiB
    5 MODEL      pid, u8 action: 1 promoted, 2 kept aside, 3 rolled back
    6 HEAD       8 sender key id, uvarint sequence, 8 labelled-set digest prefix: the chain head held
    7 STORE      8 reference root prefix: the store the device holds
    8 FIELD      u16 drift × 10,000 (Jensen–Shannon bits against the last sketch reported; 65,535: first),
                 uvarint L, L bytes: the field sketch (``codec/field.py``, ≤ 512 bytes)

Sealed receipts (mode 1) carry the same events encrypted with ChaCha20-Poly1305 under the pair key of the
device and the ground's sender key (``codec/sealed.py``; the nonce ``"LCRC" ‖ counter`` never meets a
payload's ``"LCPL" ‖ sequence``), so a status receipt fits a 51-byte LoRaWAN DR0 uplink::

    1        magic/version 0xB1
    1        mode: 1 = sealed
    4        device key id, first 4 bytes (the ground tries the devices it registered with that prefix)
    uvarint  counter
    uvarint  time
    …        ciphertext of: uvarint n, n × event
    16       Poly1305 tag over every byte above (the header is associated data)

Decoding never trusts a length it has not bounded; any malformed receipt raises :class:`DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._wire import Reader, Writer
from .errors import DecodeError, SignatureError
from .keys import key_id

__all__ = [
    "RECEIPT_MAGIC",
    "EVENT_TYPES",
    "MODEL_ACTIONS",
    "Event",
    "Receipt",
    "encode_receipt",
    "encode_sealed_receipt",
    "open_sealed_receipt",
    "sealed_receipt_device",
    "decode_receipt",
    "verify_receipt",
    "coalesce",
    "event_bytes",
    "event_from_bytes",
    "pack_events",
    "receipt_size",
]

RECEIPT_MAGIC = 0xB1
MODE_SIGNED = 0
MODE_SEALED = 1
SIG_LEN = 64
TAG_LEN = 16
DOMAIN_RECEIPT = b"labelcast/receipt/v1-sealed\x00"
MAX_EVENTS = 64
MAX_RECEIPT = 64 << 10
MAX_STRIPES = 1 << 10  # a payload has at most 65,536 frames in stripes of ≥ 64 blocks
MAX_FRAMES = 1 << 16
NO_ACCURACY = 0xFFFF

EVENT_TYPES = {
    1: "accepted",
    2: "refused",
    3: "partial",
    4: "trained",
    5: "model",
    6: "head",
    7: "store",
    8: "field",
}
MAX_SKETCH = 512  # bytes of a field sketch in a receipt
_CODES = {v: k for k, v in EVENT_TYPES.items()}
MODEL_ACTIONS = {1: "promoted", 2: "kept aside", 3: "rolled back"}


@dataclass(frozen=True)
class Event:
    """One event. ``kind`` is a name of :data:`EVENT_TYPES`; the fields it uses are set, the rest default."""

    kind: str
    pid: bytes = b""  # payload id (4 bytes) for payload events
    sequence: int = 0  # accepted: the payload's sequence; head: the chain head's sequence
    code: int = 0  # refused: the error's exit code
    retryable: bool = False  # refused: tried again when its cause changes
    needed: tuple[int, ...] = ()  # partial: blocks still needed per stripe
    held: bytes | None = None  # partial: bitmap of the frames of the first send that are held
    frames: int = 0  # partial: the number of frames of the first send (the bitmap's length in bits)
    digest: bytes = b""  # trained: student digest prefix; head: labelled-set digest prefix; store: root prefix
    accuracy: float | None = None  # trained: agreement with the teacher on the held-back items
    seconds: int = 0  # trained: training seconds
    peak_mb: int = 0  # trained: peak training memory
    action: str = ""  # model: promoted | kept aside | rolled back
    sender: bytes = b""  # head: the sender's key id
    sketch: bytes = b""  # field: the encoded field sketch
    drift: float | None = None  # field: divergence from the last sketch reported (None: the first)

    def key(self) -> tuple:
        """What a newer event of the same key supersedes (one state per payload, per chain, per store)."""
        if self.kind in ("head",):
            return ("head", self.sender)
        if self.kind in ("store", "field"):
            return (self.kind,)
        if self.kind in ("accepted", "refused", "partial"):
            return ("delivery", self.pid)
        return (self.kind, self.pid)

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.pid:
            d["payload_id"] = self.pid.hex()
        extra = {
            "accepted": ("sequence",),
            "refused": ("code", "retryable"),
            "partial": ("needed", "frames"),
            "trained": ("accuracy", "seconds", "peak_mb"),
            "model": ("action",),
            "head": ("sequence",),
            "field": ("drift",),
        }.get(self.kind, ())
        d.update({k: getattr(self, k) for k in extra})
        if self.kind == "partial":
            d["needed"] = list(self.needed)
            d["missing_frames"] = missing_frames(self) if self.held is not None else None
        if self.digest:
            d["digest"] = self.digest.hex()
        if self.sender:
            d["sender"] = self.sender.hex()
        if self.sketch:
            d["sketch"] = self.sketch.hex()
        return d


def missing_frames(e: Event) -> list[int]:
    """The frame numbers of the first send a partial event says are not held."""
    held = e.held or b""
    return [f for f in range(e.frames) if not (held[f >> 3] >> (f & 7)) & 1]


@dataclass(frozen=True)
class Receipt:
    device: bytes  # device key id
    counter: int
    time: int
    events: tuple[Event, ...] = field(default_factory=tuple)
    signed: bytes = b""  # the bytes the signature covers (set by decode)
    signature: bytes = b""
    sealed: bool = False  # mode 1: ``device`` is a 4-byte id prefix; the events were opened with the pair key

    def to_dict(self) -> dict:
        return {
            "device": self.device.hex(),
            "counter": self.counter,
            "time": self.time,
            "events": [e.to_dict() for e in self.events],
        }


def _pid(w: Writer, e: Event) -> None:
    if len(e.pid) != 4:
        raise ValueError(f"a {e.kind} event needs a 4-byte payload id")
    w.raw(e.pid)


def _prefix(b: bytes, what: str) -> bytes:
    if len(b) < 8:
        raise ValueError(f"{what} needs at least 8 bytes")
    return b[:8]


def _encode_event(w: Writer, e: Event) -> None:
    if e.kind not in _CODES:
        raise ValueError(f"unknown receipt event {e.kind!r}; known: {', '.join(_CODES)}")
    w.u8(_CODES[e.kind])
    if e.kind in ("accepted", "refused", "partial", "trained", "model"):
        _pid(w, e)
    if e.kind == "accepted":
        w.uvarint(e.sequence)
    elif e.kind == "refused":
        w.u8(e.code & 0xFF)
        w.u8(1 if e.retryable else 0)
    elif e.kind == "partial":
        w.uvarint(len(e.needed))
        for n in e.needed:
            w.uvarint(n)
        w.u8(1 if e.held is not None else 0)
        if e.held is not None:
            w.uvarint(e.frames)
            w.raw(e.held[: (e.frames + 7) // 8].ljust((e.frames + 7) // 8, b"\0"))
    elif e.kind == "trained":
        w.raw(_prefix(e.digest, "a trained event's student digest"))
        acc = NO_ACCURACY if e.accuracy is None else round(min(max(e.accuracy, 0.0), 1.0) * 10_000)
        w.u16(acc)
        w.uvarint(max(0, int(e.seconds)))
        w.uvarint(max(0, int(e.peak_mb)))
    elif e.kind == "model":
        w.u8({v: k for k, v in MODEL_ACTIONS.items()}[e.action])
    elif e.kind == "head":
        w.raw(_prefix(e.sender, "a head event's sender key id"))
        w.uvarint(e.sequence)
        w.raw(_prefix(e.digest, "a head event's labelled-set digest"))
    elif e.kind == "store":
        w.raw(_prefix(e.digest, "a store event's root"))
    elif e.kind == "field":
        if not 1 <= len(e.sketch) <= MAX_SKETCH:
            raise ValueError(f"a field event carries a sketch of 1..{MAX_SKETCH} bytes")
        w.u16(NO_ACCURACY if e.drift is None else round(min(max(e.drift, 0.0), 1.0) * 10_000))
        w.uvarint(len(e.sketch))
        w.raw(e.sketch)


def encode_receipt(key: Ed25519PrivateKey, counter: int, time: int, events: list[Event] | tuple[Event, ...]) -> bytes:
    """The signed receipt of ``events`` (1..64 of them)."""
    if not 1 <= len(events) <= MAX_EVENTS:
        raise ValueError(f"a receipt carries 1..{MAX_EVENTS} events, not {len(events)}")
    w = Writer()
    w.u8(RECEIPT_MAGIC)
    w.u8(MODE_SIGNED)
    w.raw(key_id(key.public_key()))
    w.uvarint(counter)
    w.uvarint(max(0, int(time)))
    w.uvarint(len(events))
    for e in events:
        _encode_event(w, e)
    body = w.getvalue()
    return body + key.sign(body)


def encode_sealed_receipt(
    key: Ed25519PrivateKey, ground: Ed25519PublicKey, counter: int, time: int, events: list[Event] | tuple[Event, ...]
) -> bytes:
    """The receipt of ``events`` sealed to the ground's key (a 16-byte tag instead of the signature)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from .sealed import pair_key

    if not 1 <= len(events) <= MAX_EVENTS:
        raise ValueError(f"a receipt carries 1..{MAX_EVENTS} events, not {len(events)}")
    device = key_id(key.public_key())
    w = Writer()
    w.u8(RECEIPT_MAGIC)
    w.u8(MODE_SEALED)
    w.raw(device[:4])
    w.uvarint(counter)
    w.uvarint(max(0, int(time)))
    head = w.getvalue()
    body = Writer()
    body.uvarint(len(events))
    for e in events:
        _encode_event(body, e)
    aead = ChaCha20Poly1305(pair_key(key, ground, key_id(ground), device))
    return head + aead.encrypt(_receipt_nonce(counter), body.getvalue(), DOMAIN_RECEIPT + head)


def _receipt_nonce(counter: int) -> bytes:
    return b"LCRC" + counter.to_bytes(8, "little")


def sealed_receipt_device(data: bytes) -> bytes:
    """The 4-byte device id prefix of a sealed receipt (unverified)."""
    if len(data) < 2 + 4 + 2 + TAG_LEN or data[0] != RECEIPT_MAGIC or data[1] != MODE_SEALED:
        raise DecodeError("not a sealed labelcast receipt")
    return bytes(data[2:6])


def open_sealed_receipt(data: bytes, ground: Ed25519PrivateKey, device: Ed25519PublicKey) -> Receipt:
    """Check a sealed receipt's tag with the pair key of ``ground`` and ``device``, then decode its events."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from .errors import SealError
    from .sealed import pair_key

    if len(data) > MAX_RECEIPT:
        raise DecodeError(f"a receipt of {len(data):,} bytes is over the {MAX_RECEIPT:,}-byte limit")
    prefix = sealed_receipt_device(data)
    did = key_id(device)
    if did[:4] != prefix:
        raise SealError(f"the receipt names device {prefix.hex()}…, not {did.hex()}")
    r = Reader(data[: len(data) - TAG_LEN], "sealed receipt")
    r.raw(6)
    counter = r.uvarint(name="counter")
    time = r.uvarint(name="time")
    head = bytes(data[: r.pos])
    aead = ChaCha20Poly1305(pair_key(ground, device, key_id(ground.public_key()), did))
    try:
        body = aead.decrypt(_receipt_nonce(counter), bytes(data[r.pos :]), DOMAIN_RECEIPT + head)
    except InvalidTag:
        raise SealError(f"sealed receipt {counter} of device {did.hex()}: the tag does not verify") from None
    b = Reader(body, "sealed receipt")
    n = b.uvarint(limit=MAX_EVENTS, name="events")
    if n == 0:
        raise DecodeError("a receipt without events")
    events = tuple(_decode_event(b) for _ in range(n))
    b.end()
    return Receipt(did, counter, time, events, sealed=True)


def _decode_event(r: Reader) -> Event:
    t = r.u8()
    kind = EVENT_TYPES.get(t)
    if kind is None:
        raise DecodeError(f"receipt: unknown event type {t}")
    pid = r.raw(4) if kind in ("accepted", "refused", "partial", "trained", "model") else b""
    if kind == "accepted":
        return Event(kind, pid, sequence=r.uvarint(name="sequence"))
    if kind == "refused":
        code, retry = r.u8(), r.u8()
        if retry > 1:
            raise DecodeError("receipt: a refused event's retryable flag is 0 or 1")
        return Event(kind, pid, code=code, retryable=bool(retry))
    if kind == "partial":
        s = r.uvarint(limit=MAX_STRIPES, name="stripes")
        needed = tuple(r.uvarint(limit=256, name="blocks needed") for _ in range(s))
        has = r.u8()
        if has > 1:
            raise DecodeError("receipt: a partial event's bitmap flag is 0 or 1")
        if not has:
            return Event(kind, pid, needed=needed)
        frames = r.uvarint(limit=MAX_FRAMES, name="frames")
        return Event(kind, pid, needed=needed, frames=frames, held=r.raw((frames + 7) // 8))
    if kind == "trained":
        digest, acc = r.raw(8), r.u16()
        if acc > 10_000 and acc != NO_ACCURACY:
            raise DecodeError(f"receipt: accuracy {acc} beyond 10,000")
        secs, peak = r.uvarint(name="seconds"), r.uvarint(name="peak memory")
        return Event(kind, pid, digest=digest, accuracy=None if acc == NO_ACCURACY else acc / 10_000, seconds=secs,
                     peak_mb=peak)  # fmt: skip
    if kind == "model":
        a = r.u8()
        if a not in MODEL_ACTIONS:
            raise DecodeError(f"receipt: unknown model action {a}")
        return Event(kind, pid, action=MODEL_ACTIONS[a])
    if kind == "head":
        sender, seq = r.raw(8), r.uvarint(name="sequence")
        return Event(kind, sender=sender, sequence=seq, digest=r.raw(8))
    if kind == "field":
        drift = r.u16()
        if drift > 10_000 and drift != NO_ACCURACY:
            raise DecodeError(f"receipt: drift {drift} beyond 10,000")
        sketch = r.raw(r.uvarint(limit=MAX_SKETCH, name="sketch length"))
        return Event(kind, sketch=sketch, drift=None if drift == NO_ACCURACY else drift / 10_000)
    return Event(kind, digest=r.raw(8))


def decode_receipt(data: bytes) -> Receipt:
    """Parse a receipt (its signature is not checked here: :func:`verify_receipt`)."""
    if len(data) > MAX_RECEIPT:
        raise DecodeError(f"a receipt of {len(data):,} bytes is over the {MAX_RECEIPT:,}-byte limit")
    if len(data) < 2 + 4 + 2 + TAG_LEN:
        raise DecodeError(f"{len(data)} bytes is too short for a receipt")
    if data[0] == RECEIPT_MAGIC and data[1] == MODE_SEALED:
        from .errors import SealError

        raise SealError("a sealed receipt: it opens with the ground's key (open_sealed_receipt; `ingest --key`)")
    if len(data) < 2 + 8 + 3 + SIG_LEN:
        raise DecodeError(f"{len(data)} bytes is too short for a receipt")
    r = Reader(data[:-SIG_LEN], "receipt")
    if r.u8() != RECEIPT_MAGIC:
        raise DecodeError("not a labelcast receipt (bad magic or version)")
    mode = r.u8()
    if mode == MODE_SEALED:
        from .errors import SealError

        raise SealError("a sealed receipt: it opens with the ground's key (open_sealed_receipt; `ingest --key`)")
    if mode != MODE_SIGNED:
        raise DecodeError(f"receipt mode {mode} is not known to this version (0: signed, 1: sealed)")
    device = r.raw(8)
    counter = r.uvarint(name="counter")
    time = r.uvarint(name="time")
    n = r.uvarint(limit=MAX_EVENTS, name="events")
    if n == 0:
        raise DecodeError("a receipt without events")
    events = tuple(_decode_event(r) for _ in range(n))
    r.end()
    return Receipt(device, counter, time, events, bytes(data[:-SIG_LEN]), bytes(data[-SIG_LEN:]))


def verify_receipt(receipt: Receipt, public: Ed25519PublicKey) -> None:
    """Check the receipt's device id and signature against the registered key; ``SignatureError`` when not."""
    from cryptography.exceptions import InvalidSignature

    if key_id(public) != receipt.device:
        raise SignatureError(
            f"the receipt names device key {receipt.device.hex()} but the registered key is {key_id(public).hex()}"
        )
    try:
        public.verify(receipt.signature, receipt.signed)
    except InvalidSignature:
        raise SignatureError(f"receipt {receipt.counter} of device {receipt.device.hex()}: bad signature") from None


def event_bytes(e: Event) -> bytes:
    """One event as it stands in a receipt (a device keeps its pending events in this form)."""
    w = Writer()
    _encode_event(w, e)
    return w.getvalue()


def event_from_bytes(data: bytes) -> Event:
    r = Reader(data, "receipt event")
    e = _decode_event(r)
    r.end()
    return e


def coalesce(pending: list[Event], new: list[Event]) -> list[Event]:
    """Pending events with ``new`` ones added: an event supersedes a pending one of the same key (a payload's
    delivery state, a chain's head, the store), so the return link carries only the newest state."""
    out = {e.key(): e for e in pending}
    for e in new:
        out.pop(e.key(), None)
        out[e.key()] = e
    return list(out.values())


def receipt_size(events: list[Event] | tuple[Event, ...], sealed: bool = False, counter: int = (1 << 28) - 1) -> int:
    """Bytes of the receipt of ``events`` with a counter up to ``counter`` (the time at its widest, 5 bytes)."""
    w = Writer()
    w.uvarint(counter)
    width = len(w.getvalue())
    w = Writer()
    for e in events:
        _encode_event(w, e)
    if sealed:
        return 2 + 4 + width + 5 + 1 + len(w.getvalue()) + TAG_LEN
    return 2 + 8 + width + 5 + 1 + len(w.getvalue()) + SIG_LEN


def pack_events(
    events: list[Event], message_bytes: int, sealed: bool = False, counter: int = (1 << 28) - 1
) -> list[list[Event]]:
    """Split ``events`` into receipts that each fit ``message_bytes``, in order. A partial event too large for
    one message drops its frame bitmap (the per-stripe counts still say what to repair)."""
    out: list[list[Event]] = []
    cur: list[Event] = []
    for e in events:
        if receipt_size([e], sealed, counter) > message_bytes and e.kind == "partial":
            e = Event(e.kind, e.pid, needed=e.needed)
        if receipt_size([e], sealed, counter) > message_bytes:
            raise ValueError(f"a {e.kind} event does not fit a {message_bytes}-byte return message")
        if cur and (receipt_size([*cur, e], sealed, counter) > message_bytes or len(cur) == MAX_EVENTS):
            out.append(cur)
            cur = []
        cur.append(e)
    if cur:
        out.append(cur)
    return out
