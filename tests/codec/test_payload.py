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


GOLDEN_EXEMPLARS = (
    "4c435354020056475aa75463474c0790c0a7da06640404010700281234ce3901020502000000390624021403040401000300010218000102"
    "030405060708090a0b0c0d0e0f101112131415161792d2e255379d89c8f729a3e39410de185110837c9769aceb3a4f7d009c6668b1a54a8e"
    "caec5ad073be48288fa00a13f9efa9b2a2d1b9738cb2d4c92921626e0e"
)
GOLDEN_DELTA = (
    "4c435354020056475aa75463474c0790c0a7da06640404010700281234ce3901020502000000390720e47125968b3b71049fbc4802d1e40a"
    "71ea1359decfabacf70b34588037d4ff0c08090401040000004001020907040104000000c00d20f4a3b107fcb9dfdd18a0825ed21718bbe0"
    "449f9bfa535644f5424a3f0d4a136346e2eb600bcd7e56e07ffe55a595f0d599deb2c70fa8484493402f2fc40c"
)


def test_golden_bytes_of_the_v2_sections_exemplars_and_delta():
    from labelcast.codec.delta import Changes, Relabel
    from labelcast.codec.exemplars import Exemplars

    ex = Exemplars("webp", 20, 3, 4, 4, 1, np.array([0, 1, 2]), bytes(range(24)))
    assert small(exemplars=ex).hex() == GOLDEN_EXEMPLARS
    changes = Changes(4, Relabel(np.array([1]), np.array([0])), np.array([3]))
    delta = {"parent": hashlib.sha256(b"parent").digest(), "changes": changes, "base": np.array([1, 2, 5, 8])}
    assert small(delta=delta).hex() == GOLDEN_DELTA
    p = open_payload(bytes.fromhex(GOLDEN_EXEMPLARS), TRUST, ROOT, now=NOW)
    assert p.exemplars.codec == "webp" and p.exemplars.labels.tolist() == [0, 1, 2]
    assert p.exemplars.image == bytes(range(24))
    d = open_payload(bytes.fromhex(GOLDEN_DELTA), TRUST, ROOT, now=NOW)
    assert d.is_delta and d.changes.relabel.positions.tolist() == [1] and d.changes.remove.tolist() == [3]


def test_unknown_and_out_of_order_sections_are_refused(tmp_path):
    def add_section(t):
        def edit(body):
            return bytes(body) + bytes([t, 1, 0])

        return edit

    with pytest.raises(DecodeError, match="unknown to this receiver"):
        open_payload(resign(small(), KEY, ROOT, add_section(42)), TRUST, ROOT, now=NOW)
    with pytest.raises(DecodeError, match="out of order"):
        open_payload(resign(small(), KEY, ROOT, add_section(1)), TRUST, ROOT, now=NOW)
