"""Sealed payloads: one file per party (the X25519 half derived), golden bytes, the tag before anything,
another device or sender refused, every flipped bit refused, fuzzing, and the same decode as signed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelcast.codec.errors import LabelcastError, SealError, UnknownKeyError
from labelcast.codec.keys import TrustSet, key_id
from labelcast.codec.payload import build_payload, decode_payload, peek, verify_payload
from labelcast.codec.sealed import pair_key, x25519_private, x25519_public

SENDER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
ROOT = bytes(range(100, 132))
GOLDEN = Path(__file__).parents[1] / "data" / "sealed-v3.hex"


def trust(device=DEVICE) -> TrustSet:
    return TrustSet({key_id(SENDER.public_key()): SENDER.public_key()}).with_device(device)


def sealed(seq: int = 9, **kw) -> bytes:
    idx = np.array([3, 17, 200, 201, 640])
    args = dict(n_items=1000, classes=4, root=ROOT, key=SENDER, sequence=seq, expires_at=2_000_000_000)
    return build_payload(idx, np.array([0, 3, 1, 1, 2]), seal_to=DEVICE.public_key(), **{**args, **kw})[0]


def test_the_x25519_half_is_derived_from_each_ed25519_key_file():
    from cryptography.hazmat.primitives import serialization as s

    raw = lambda k: k.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)  # noqa: E731
    for k in (SENDER, DEVICE, OTHER):
        assert raw(x25519_private(k).public_key()) == raw(x25519_public(k.public_key()))
    sid, did = key_id(SENDER.public_key()), key_id(DEVICE.public_key())
    assert pair_key(SENDER, DEVICE.public_key(), sid, did) == pair_key(DEVICE, SENDER.public_key(), sid, did)
    assert pair_key(SENDER, OTHER.public_key(), sid, did) != pair_key(SENDER, DEVICE.public_key(), sid, did)


def test_sealed_golden_bytes_and_what_they_cost():
    data = sealed()
    assert data.hex() == GOLDEN.read_text().strip()  # deterministic: the nonce is the sequence
    signed, sizes = build_payload(
        np.array([3, 17, 200, 201, 640]), np.array([0, 3, 1, 1, 2]), n_items=1000, classes=4, root=ROOT,
        key=SENDER, sequence=9, expires_at=2_000_000_000,
    )  # fmt: skip
    assert len(signed) - len(data) == 40  # 64-byte signature → 16-byte tag, plus the device's 8-byte id
    assert peek(data[:40]).sequence == 9 and peek(data[:40]).key_id == key_id(SENDER.public_key())


def test_a_sealed_payload_decodes_as_the_signed_one():
    v = verify_payload(sealed(), trust(), ROOT, n_items=1000, now=0)
    p = decode_payload(v)
    assert v.header.version == 3 and v.header.sequence == 9 and v.header.key_id == key_id(SENDER.public_key())
    assert p.indices.tolist() == [3, 17, 200, 201, 640] and p.labels.tolist() == [0, 3, 1, 1, 2]
    with pytest.raises(SealError, match="another reference store"):
        verify_payload(sealed(), trust(), bytes(32), now=0)


def test_another_device_or_sender_or_no_key_is_refused_by_name():
    with pytest.raises(SealError, match="sealed to device"):
        verify_payload(sealed(), trust(OTHER), ROOT, now=0)
    with pytest.raises(SealError, match="--device-key"):
        verify_payload(sealed(), trust(None), ROOT, now=0)
    stranger = TrustSet({key_id(OTHER.public_key()): OTHER.public_key()}).with_device(DEVICE)
    with pytest.raises(UnknownKeyError):
        verify_payload(sealed(), stranger, ROOT, now=0)


def test_every_flipped_bit_is_refused():
    data = sealed()
    for i in range(len(data) * 8):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        with pytest.raises(LabelcastError):
            verify_payload(bytes(b), trust(), ROOT, n_items=1000, now=0)


def test_the_body_is_not_readable_without_the_key():
    a, b = sealed(seq=9), sealed(seq=10)
    assert a[:6] == b[:6] and a[-30:] != b[-30:]  # another sequence, another nonce: other ciphertext
    plain = build_payload(np.array([3, 17, 200, 201, 640]), np.array([0, 3, 1, 1, 2]), n_items=1000, classes=4,
                          root=ROOT, key=SENDER, sequence=9, expires_at=2_000_000_000)[0]  # fmt: skip
    body = plain[20:-64]  # N, k, C and the sections in the clear
    assert body not in a


def test_fuzzed_sealed_payloads_raise_only_typed_errors():
    from tests.conftest import mutations

    good = sealed()
    for b in mutations(good, 3000, seed=3):
        try:
            verify_payload(b, trust(), ROOT, n_items=1000, now=0)
        except LabelcastError:
            continue
        assert b == good  # nothing altered opens


def group(devices) -> bytes:
    idx, lab = np.array([3, 17, 200, 201, 640]), np.array([0, 3, 1, 1, 2])
    args = dict(n_items=1000, classes=4, root=ROOT, key=SENDER, sequence=11, expires_at=2_000_000_000)
    return build_payload(idx, lab, seal_to=[d.public_key() for d in devices], **args)[0]


def test_a_group_payload_opens_on_every_listed_device_and_no_other():
    members = [DEVICE, OTHER, Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128)))]
    data = group(members)
    assert data[4] == 4 and len(data) - len(group(members[:2])) == 52  # one more recipient: 52 bytes
    for d in members:
        p = decode_payload(verify_payload(data, trust(d), ROOT, n_items=1000, now=0))
        assert p.labels.tolist() == [0, 3, 1, 1, 2] and p.header.version == 4
    outsider = Ed25519PrivateKey.from_private_bytes(bytes(range(128, 160)))
    with pytest.raises(SealError, match="not one of its 3 recipients"):
        verify_payload(data, trust(outsider), ROOT, now=0)
    with pytest.raises(SealError, match="--device-key"):
        verify_payload(data, trust(None), ROOT, now=0)


def test_a_group_payload_is_signed_over_every_byte():
    from labelcast.codec.errors import SignatureError

    data = group([DEVICE, OTHER])
    rng = np.random.default_rng(5)
    for i in rng.choice(len(data) * 8, 400, replace=False):
        b = bytearray(data)
        b[i // 8] ^= 1 << (i % 8)
        with pytest.raises(LabelcastError):
            verify_payload(bytes(b), trust(), ROOT, n_items=1000, now=0)
    with pytest.raises(SignatureError, match="another reference store"):
        verify_payload(data, trust(), bytes(32), now=0)
