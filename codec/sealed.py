"""Sealed payloads: encrypted and authenticated for one device, a 16-byte tag instead of a 64-byte signature.

Keys. Every party keeps one Ed25519 key file (``keygen``); its X25519 half is derived from it, as libsodium
derives it (``crypto_sign_ed25519_sk_to_curve25519``): the X25519 private scalar is the first 32 bytes of
SHA-512 of the Ed25519 seed, and the X25519 public key is the Montgomery form u = (1 + y) / (1 − y) of the
Ed25519 public point. So a sender's ``sender.pub`` and a device's ``device.pub`` are all either side needs.

Pair key. ``K = HKDF-SHA256(X25519(sender, device), salt = DOMAIN_V3, info = sender id ‖ device id)``: the
same on both ends, different for every (sender, device) pair. The nonce is ``"LCPL" ‖ sequence`` (8 bytes,
little-endian): 0 bytes on the link, and never repeated under one key because the sender's sequence only
grows (the counter beside its key is recorded before a payload leaves).

Layout, format version 3 (everything before the ciphertext is bound as associated data, with the device's
reference root, which is never sent)::

    0       4        magic  b"LCST"
    4       1        format version (3: sealed to one device)
    5       1        flags (reserved: 0)
    6       8        sender key id
    14      8        device key id
    22      uvarint  sequence
            uvarint  expiry, Unix seconds
            …        ChaCha20-Poly1305 ciphertext of the version-2 body after its expiry
                     (N, k, C and the sections, byte for byte as version 2 writes them)
    end−16  16       Poly1305 tag

The order of trust is the signed payload's: the fixed prefix is read (sizes only), the tag is checked, and
nothing of the body is parsed, decompressed or allocated by it before that.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._wire import Reader, Writer
from .errors import DecodeError, LimitError, SealError
from .keys import key_id

__all__ = [
    "GROUP_VERSION",
    "seal_group",
    "open_group",
    "SEALED_VERSION",
    "TAG_LEN",
    "x25519_private",
    "x25519_public",
    "pair_key",
    "seal_body",
    "open_sealed",
    "sealed_prefix",
]

SEALED_VERSION = 3
GROUP_VERSION = 4
DOMAIN_V3 = b"labelcast/payload/v3-sealed\x00"
DOMAIN_V4 = b"labelcast/payload/v4-group\x00"
WRAP_LEN = 4 + 32 + 16  # device id prefix, the content key wrapped, its tag
MAX_RECIPIENTS = 4096
TAG_LEN = 16
SEALED_PREFIX = 22  # magic, version, flags, two key ids
_P = 2**255 - 19


def x25519_private(key: Ed25519PrivateKey) -> X25519PrivateKey:
    """The X25519 half of an Ed25519 private key (libsodium's conversion)."""
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


def x25519_public(key: Ed25519PublicKey) -> X25519PublicKey:
    """The X25519 half of an Ed25519 public key: the Montgomery u-coordinate of its point."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if (1 - y) % _P == 0:
        raise SealError("this public key has no X25519 half (a degenerate point)")
    u = (1 + y) * pow((1 - y) % _P, _P - 2, _P) % _P
    return X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))


def pair_key(mine: Ed25519PrivateKey, theirs: Ed25519PublicKey, sender: bytes, device: bytes) -> bytes:
    """The 32-byte key of one (sender, device) pair, from either side's private key and the other's public."""
    shared = x25519_private(mine).exchange(x25519_public(theirs))
    if shared == bytes(32):
        raise SealError("the key agreement gave the all-zero secret (a low-order public key); refused")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=DOMAIN_V3, info=sender + device).derive(shared)


def _head(magic: bytes, version: int, ids: bytes, sequence: int, expires_at: int, *counts: int) -> bytes:
    """The clear header of a sealed (v3) or group (v4) payload: magic, version, flags, key ids, sequence,
    expiry, then any counts (a group's recipients)."""
    w = Writer()
    w.raw(magic)
    w.u8(version)
    w.u8(0)
    w.raw(ids)
    for v in (sequence, expires_at, *counts):
        w.uvarint(v)
    return w.getvalue()


def _nonce(sequence: int) -> bytes:
    return b"LCPL" + sequence.to_bytes(8, "little")


def seal_body(
    sender: Ed25519PrivateKey,
    device: Ed25519PublicKey,
    root: bytes,
    magic: bytes,
    sequence: int,
    expires_at: int,
    rest: bytes,
) -> bytes:
    """The sealed payload whose plaintext is ``rest`` (the version-2 body after its expiry)."""
    sid, did = key_id(sender.public_key()), key_id(device)
    head = _head(magic, SEALED_VERSION, sid + did, sequence, expires_at)
    if sequence >= 1 << 64:
        raise ValueError("a sealed payload's sequence is below 2**64")
    aead = ChaCha20Poly1305(pair_key(sender, device, sid, did))
    return head + aead.encrypt(_nonce(sequence), rest, DOMAIN_V3 + root + head)


def sealed_prefix(data: bytes) -> tuple[bytes, bytes]:
    """(sender key id, device key id) of a sealed payload, unverified: sizes and version only."""
    if len(data) < SEALED_PREFIX + 2 + TAG_LEN:
        raise DecodeError(f"sealed payload is truncated ({len(data)} bytes); ask the sender to resend")
    if data[4] != SEALED_VERSION:
        raise DecodeError("not a sealed payload")
    return bytes(data[6:14]), bytes(data[14:22])


def open_sealed(
    data: bytes, sender: Ed25519PublicKey, device: Ed25519PrivateKey, root: bytes
) -> tuple[int, int, bytes]:
    """Check the tag over the exact bytes, then return (sequence, expiry, plaintext). ``SealError`` names the
    failing check: a payload for another device, or a tag that does not verify (altered, another sender,
    another store)."""
    sid, did = sealed_prefix(data)
    mine = key_id(device.public_key())
    if did != mine:
        raise SealError(f"payload sealed to device {did.hex()}; this device is {mine.hex()}")
    if sid != key_id(sender):
        raise SealError(f"payload sealed by key {sid.hex()}, not by {key_id(sender).hex()}")
    r = Reader(data[: len(data) - TAG_LEN], "sealed payload")
    r.raw(SEALED_PREFIX)
    try:
        seq = r.uvarint(name="sequence")
        exp = r.uvarint(name="expiry")
    except LimitError:
        raise
    head_len = r.pos
    head = bytes(data[:head_len])
    aead = ChaCha20Poly1305(pair_key(device, sender, sid, did))
    try:
        rest = aead.decrypt(_nonce(seq), bytes(data[head_len:]), DOMAIN_V3 + bytes(root) + head)
    except InvalidTag:
        raise SealError(
            f"sealed payload {seq}: the tag does not verify (altered on the way, sealed by another key, or made "
            "for another reference store)"
        ) from None
    return seq, exp, rest


def seal_group(
    sender: Ed25519PrivateKey,
    devices: list[Ed25519PublicKey],
    root: bytes,
    magic: bytes,
    sequence: int,
    expires_at: int,
    rest: bytes,
) -> bytes:
    """A payload for a group (format version 4): the body encrypted under a fresh content key, that key wrapped
    for each device under its pair key, and the whole signed by the sender (every device checks who made it;
    each reads it; nobody else does)::

        magic, version 4, flags, sender key id (8), uvarint sequence, uvarint expiry,
        uvarint R, R × (4-byte device id prefix, 48-byte wrapped content key),
        ChaCha20-Poly1305(content key, nonce 0) of the version-2 body after its expiry, 16-byte tag,
        64-byte Ed25519 signature over DOMAIN_V4 ‖ root ‖ every byte before it
    """
    import os

    if not 1 <= len(devices) <= MAX_RECIPIENTS:
        raise ValueError(f"a group payload has 1..{MAX_RECIPIENTS} recipients, not {len(devices)}")
    sid = key_id(sender.public_key())
    head = _head(magic, GROUP_VERSION, sid, sequence, expires_at, len(devices))
    cek = os.urandom(32)
    wraps = b""
    for d in devices:
        did = key_id(d)
        wrap = ChaCha20Poly1305(pair_key(sender, d, sid, did)).encrypt(
            b"LCWK" + sequence.to_bytes(8, "little"), cek, head
        )
        wraps += did[:4] + wrap
    body = ChaCha20Poly1305(cek).encrypt(bytes(12), rest, DOMAIN_V4 + root + head)
    unsigned = head + wraps + body
    return unsigned + sender.sign(DOMAIN_V4 + root + unsigned)


def open_group(
    data: bytes, sender: Ed25519PublicKey, device: Ed25519PrivateKey | None, root: bytes
) -> tuple[int, int, bytes]:
    """Check the signature over the exact bytes, find this device's wrapped key, open the body: (sequence,
    expiry, plaintext). ``SignatureError`` for a forged payload, ``SealError`` for a device not listed."""
    from cryptography.exceptions import InvalidSignature

    from .errors import SignatureError

    try:
        sender.verify(bytes(data[-64:]), DOMAIN_V4 + bytes(root) + bytes(data[:-64]))
    except InvalidSignature:
        raise SignatureError(
            "group payload: the signature does not verify (altered, another sender, or another reference store)"
        ) from None
    r = Reader(data[:-64], "group payload")
    r.raw(14)
    seq = r.uvarint(name="sequence")
    exp = r.uvarint(name="expiry")
    n = r.uvarint(limit=MAX_RECIPIENTS, name="recipients")
    head = bytes(data[: r.pos])
    if device is None:
        raise SealError("a payload sealed for a group of devices; open it with this device's key (--device-key)")
    did = key_id(device.public_key())
    mine = None
    for _ in range(n):
        prefix, wrap = r.raw(4), r.raw(48)
        if prefix == did[:4] and mine is None:
            try:
                aead = ChaCha20Poly1305(pair_key(device, sender, key_id(sender), did))
                mine = aead.decrypt(b"LCWK" + seq.to_bytes(8, "little"), wrap, head)
            except InvalidTag:
                continue
    if mine is None:
        raise SealError(f"group payload {seq}: this device ({did.hex()}) is not one of its {n} recipients")
    try:
        rest = ChaCha20Poly1305(mine).decrypt(bytes(12), r.raw(r.remaining()), DOMAIN_V4 + bytes(root) + head)
    except InvalidTag:  # pragma: no cover - the signature covers these bytes
        raise SealError(f"group payload {seq}: the body does not open") from None
    return seq, exp, rest
