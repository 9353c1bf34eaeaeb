"""Receipts: the wire format byte for byte, every event both ways, signatures, fuzzing, packing, coalescing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelcast.codec.errors import DecodeError, LabelcastError, SealError, SignatureError
from labelcast.codec.receipts import (
    Event,
    coalesce,
    decode_receipt,
    encode_receipt,
    event_bytes,
    event_from_bytes,
    pack_events,
    receipt_size,
    verify_receipt,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
EVENTS = [
    Event("store", digest=bytes(range(8))),
    Event("accepted", b"\x01\x02\x03\x04", sequence=7),
    Event("partial", b"\x05\x06\x07\x08", needed=(3, 0), frames=10, held=bytes([0b10110101, 0b01])),
    Event("trained", b"\x01\x02\x03\x04", digest=b"\xaa" * 8, accuracy=0.9123, seconds=42, peak_mb=118),
    Event("model", b"\x01\x02\x03\x04", action="promoted"),
    Event("head", sender=b"\x11" * 8, sequence=7, digest=b"\x22" * 8),
    Event("refused", b"\x09\x0a\x0b\x0c", code=15, retryable=True),
]
GOLDEN = Path(__file__).parents[1] / "data" / "receipt-v1.hex"


def test_receipt_golden_bytes():
    # Ed25519 is deterministic: the same key, counter, time and events give these bytes on every machine
    data = encode_receipt(KEY, 5, 1_800_000_000, EVENTS)
    assert data.hex() == GOLDEN.read_text().strip()
    assert data[0] == 0xB1 and data[1] == 0 and len(data) == 156


def test_every_event_round_trips():
    r = decode_receipt(bytes.fromhex(GOLDEN.read_text().strip()))
    assert r.counter == 5 and r.time == 1_800_000_000 and r.events == tuple(EVENTS)
    verify_receipt(r, KEY.public_key())
    d = r.to_dict()["events"]
    assert d[2]["missing_frames"] == [1, 3, 6, 9] and d[3]["accuracy"] == 0.9123
    for e in EVENTS:
        assert event_from_bytes(event_bytes(e)) == e


def test_a_forged_or_foreign_receipt_is_refused():
    data = bytearray(encode_receipt(KEY, 1, 100, EVENTS[:2]))
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(SignatureError, match="registered key"):
        verify_receipt(decode_receipt(bytes(data)), other.public_key())
    data[20] ^= 1  # the accepted event's payload id
    with pytest.raises(SignatureError, match="bad signature"):
        verify_receipt(decode_receipt(bytes(data)), KEY.public_key())


def test_fuzzed_receipts_raise_only_decode_errors():
    rng = np.random.default_rng(0)
    good = encode_receipt(KEY, 3, 1000, EVENTS)
    for i in range(4000):
        b = bytearray(good)
        kind = i % 4
        if kind == 0:
            b = b[: rng.integers(0, len(b))]
        elif kind == 1:
            for _ in range(rng.integers(1, 6)):
                b[rng.integers(0, len(b))] = int(rng.integers(0, 256))
        elif kind == 2:
            b = bytearray(rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes())
            b[:1] = b"\xb1"
        else:
            b[rng.integers(0, 30)] ^= 0xFF
        try:
            r = decode_receipt(bytes(b))
        except LabelcastError as e:
            assert isinstance(e, DecodeError | SealError)  # a mode byte turned to 1 reads as a sealed receipt
            continue
        with pytest.raises(SignatureError):  # parsed, but never trusted: the signature covers every byte
            if bytes(b) != good:
                verify_receipt(r, KEY.public_key())
            else:
                raise SignatureError("unchanged")


def test_events_pack_into_return_messages_and_a_large_bitmap_is_dropped_first():
    big = Event("partial", b"\1\2\3\4", needed=(5,) * 4, frames=4000, held=bytes(500))
    groups = pack_events([*EVENTS[:2], big, *EVENTS[3:]], 340)
    assert all(receipt_size(g) <= 340 for g in groups)
    sent = [e for g in groups for e in g]
    partial = next(e for e in sent if e.kind == "partial")
    assert partial.held is None and partial.needed == (5,) * 4  # the stripe counts still say what to repair
    assert len(groups) == 1  # seven small events and the counts fit one Iridium SBD MO message
    with pytest.raises(ValueError, match="does not fit"):
        pack_events([EVENTS[3]], 60)


def test_a_newer_state_supersedes_a_pending_one():
    pid = b"\1\2\3\4"
    pending = coalesce(
        [], [Event("partial", pid, needed=(2,)), Event("head", sender=b"s" * 8, sequence=1, digest=b"a" * 8)]
    )
    pending = coalesce(
        pending, [Event("accepted", pid, sequence=3), Event("head", sender=b"s" * 8, sequence=2, digest=b"b" * 8)]
    )
    kinds = sorted((e.kind, e.sequence) for e in pending)
    assert kinds == [("accepted", 3), ("head", 2)]  # the NAK is moot once accepted; one head per chain


GROUND = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
STATUS = [Event("head", sender=b"\x11" * 8, sequence=7, digest=b"\x22" * 8)]


def test_a_sealed_status_receipt_fits_a_lorawan_dr0_uplink():
    from labelcast.codec.receipts import encode_sealed_receipt, open_sealed_receipt

    data = encode_sealed_receipt(KEY, GROUND.public_key(), 5, 1_800_000_000, STATUS)
    golden = (Path(__file__).parents[1] / "data" / "receipt-sealed-v1.hex").read_text().strip()
    assert data.hex() == golden and len(data) == 47 <= 51  # one DR0 uplink, with its 16-byte tag
    r = open_sealed_receipt(data, GROUND, KEY.public_key())
    assert r.sealed and r.counter == 5 and r.events == tuple(STATUS)
    assert receipt_size(STATUS, sealed=True) <= 51 < receipt_size(STATUS)
    with pytest.raises(SealError):  # a sealed receipt is never parsed as a signed one
        decode_receipt(data)


def test_a_sealed_receipt_with_any_bit_flipped_or_the_wrong_keys_is_refused():
    from labelcast.codec.receipts import encode_sealed_receipt, open_sealed_receipt

    data = encode_sealed_receipt(KEY, GROUND.public_key(), 5, 1_800_000_000, STATUS)
    for i in range(len(data) * 8):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        with pytest.raises(LabelcastError):
            open_sealed_receipt(bytes(b), GROUND, KEY.public_key())
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
    with pytest.raises(SealError, match="tag"):
        open_sealed_receipt(data, other, KEY.public_key())
    with pytest.raises(SealError, match="names device"):
        open_sealed_receipt(data, GROUND, other.public_key())


def test_fuzzed_sealed_receipts_raise_only_typed_errors():
    from labelcast.codec.receipts import encode_sealed_receipt, open_sealed_receipt
    from tests.conftest import mutations

    good = encode_sealed_receipt(KEY, GROUND.public_key(), 9, 1000, EVENTS)
    for b in mutations(good, 3000, seed=1):
        try:
            open_sealed_receipt(b, GROUND, KEY.public_key())
        except LabelcastError:
            continue
        assert b == good  # nothing altered opens
