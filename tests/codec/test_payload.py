import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelcast.codec.errors import (
    DecodeError,
    ExpiredError,
    LabelcastError,
    LimitError,
    RevokedKeyError,
    SignatureError,
    UnknownKeyError,
)
from labelcast.codec.keys import TrustSet, key_id
from labelcast.codec.payload import build_payload, open_payload, peek_header
from labelcast.codec.softlabels import soft_from_probs
from tests.conftest import resign

ROOT = hashlib.sha256(b"reference").digest()
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
TRUST = TrustSet({key_id(KEY.public_key()): KEY.public_key()})
NOW = 1_800_000_000


def small(**kw):
    args = dict(n_items=100, classes=4, root=ROOT, key=KEY, sequence=7, expires_at=NOW + 3600)
    args.update(kw)
    return build_payload(np.array([3, 17, 42, 99]), np.array([0, 1, 2, 3]), **args)[0]


def test_golden_bytes():
    # pins the v2 container; a change here is a format change (bump the version)
    p = small()
    assert p.hex() == GOLDEN


GOLDEN = (
    "4c435354020056475aa75463474c0790c0a7da06640404010700281234ce39010205020000003990c732806fbec86065eeb8"
    "d3b779e1999eb3856ee663f2945c827d252118d56e3ed009e952299427c4d5f6a9196da5ca0a86774496d6ef95f53439c447131305"
)
# the same payload as written by format version 1 (release 197905a): it must keep opening
GOLDEN_V1 = (
    "4c435354010056475aa75463474c0790c0a7da066404040700281234ce39010502000000396b4426f1365d3d29b7eb5c521e"
    "7d8e19e0b0f3d632d450601d43955cd44f2d8b93b0437d3b75fcc3ffbca2092255a40c7e6fad17dc209346d80b74775c4b5104"
)


def test_v1_golden_payload_still_opens_to_the_same_selection():
    p = open_payload(bytes.fromhex(GOLDEN_V1), TRUST, ROOT, now=NOW)
    assert p.header.version == 1
    assert p.indices.tolist() == [3, 17, 42, 99] and p.labels.tolist() == [0, 1, 2, 3]


def test_v1_payload_cannot_be_replayed_as_v2():
    # the signature domain differs per version: relabelling the version byte breaks the signature
    q = bytearray(bytes.fromhex(GOLDEN_V1))
    q[4] = 2
    with pytest.raises(SignatureError):
        open_payload(bytes(q), TRUST, ROOT, now=NOW)


def test_roundtrip_with_all_sections():
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(1000, 50, replace=False))
    lab = rng.integers(0, 5, 50)
    probs = rng.dirichlet(np.ones(5), 50)
    soft = soft_from_probs(probs, lab, extra=2, levels=16)
    data, sizes = build_payload(
        idx,
        lab,
        n_items=1000,
        classes=5,
        root=ROOT,
        key=KEY,
        sequence=1,
        expires_at=NOW + 10,
        segments=np.array([500, 500]),
        soft=soft,
        class_names=list("abcde"),
        hints={"student": {"arch": "resnet8"}},
    )
    p = open_payload(data, TRUST, ROOT, n_items=1000, segments=np.array([500, 500]), now=NOW)
    assert np.array_equal(p.indices, idx) and np.array_equal(p.labels, lab)
    assert np.array_equal(p.soft.q, soft.q) and p.class_names == list("abcde")
    assert p.hints == {"student": {"arch": "resnet8"}}
    assert sum(sizes.values()) == len(data)


def test_payload_rejected_when_expired():
    with pytest.raises(ExpiredError):
        open_payload(small(), TRUST, ROOT, now=NOW + 3600)


def test_payload_rejected_for_other_reference_root():
    with pytest.raises(SignatureError):
        open_payload(small(), TRUST, hashlib.sha256(b"other").digest(), now=NOW)


def test_payload_rejected_for_unknown_and_revoked_key():
    other = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKeyError):
        open_payload(small(key=other), TRUST, ROOT, now=NOW)
    revoked = TrustSet(dict(TRUST.keys), {key_id(KEY.public_key())})
    with pytest.raises(RevokedKeyError):
        open_payload(small(), revoked, ROOT, now=NOW)


def test_every_single_bit_flip_is_refused():
    p = small()
    for bit in range(len(p) * 8):
        q = bytearray(p)
        q[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(LabelcastError):
            open_payload(bytes(q), TRUST, ROOT, now=NOW)


def test_truncations_and_extensions_are_refused():
    p = small()
    for cut in range(len(p)):
        with pytest.raises(LabelcastError):
            open_payload(p[:cut], TRUST, ROOT, now=NOW)
    with pytest.raises(LabelcastError):
        open_payload(p + b"\0", TRUST, ROOT, now=NOW)


def test_resigned_garbage_raises_only_typed_errors():
    # a holder of the key who sends nonsense still cannot crash the decoder
    rng = np.random.default_rng(5)
    p = small()
    for _ in range(400):

        def edit(body):
            pos = int(rng.integers(14, len(body)))
            body[pos] = int(rng.integers(0, 256))
            return body

        q = resign(p, KEY, ROOT, edit)
        try:
            open_payload(q, TRUST, ROOT, now=NOW)
        except LabelcastError:
            pass  # typed refusals only; anything else fails the test


def test_oversized_declarations_refused_before_allocating():
    with pytest.raises(LimitError):
        peek_header(b"LCST\x02" + b"\0" * (65 << 20))

    # declared k beyond N, re-signed so that only the limit check can refuse it
    def edit(body):
        return body[:14] + bytes([7, 0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x64\xff\xff\xff\x0f\x04" + body[22:]

    with pytest.raises(DecodeError):
        open_payload(resign(small(), KEY, ROOT, edit), TRUST, ROOT, now=NOW)


def test_payload_at_the_declared_limits_decodes():
    # the largest reference size and class count the format allows, with a real selection
    rng = np.random.default_rng(9)
    n, c = (1 << 32) - 1, 1 << 16
    idx = np.unique(rng.integers(0, n, 2000, dtype=np.int64))
    lab = rng.integers(0, c, idx.size)
    data, _ = build_payload(idx, lab, n_items=n, classes=c, root=ROOT, key=KEY, sequence=1, expires_at=NOW + 10)
    p = open_payload(data, TRUST, ROOT, n_items=n, now=NOW)
    assert np.array_equal(p.indices, idx) and np.array_equal(p.labels, lab)
