"""Ed25519 keys: generation, files, key ids, trust sets.

Key id = the first 8 bytes of SHA-256 over the raw 32-byte public key.
Private keys are PKCS#8 PEM files written with mode 0600 and refused when group-
or world-readable; public keys are SubjectPublicKeyInfo PEM files.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import KeyFileError, SignatureError, StorageError, UnknownKeyError

__all__ = [
    "key_id",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "TrustSet",
    "sign",
    "verify",
]


def key_id(public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8]


def generate_keypair(out_dir: str | os.PathLike, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``sender.key`` (0600) and ``sender.pub`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    priv_path, pub_path = out / "sender.key", out / "sender.pub"
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise KeyFileError(f"{priv_path} already exists; refusing to overwrite a key (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = priv_path.with_suffix(".key.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(priv)
        os.chmod(tmp, 0o600)
        os.replace(tmp, priv_path)
        pub_path.write_bytes(pub)
    except OSError as e:
        raise StorageError(f"cannot write keys to {out}: {e.strerror}") from e
    return priv_path, pub_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read private key {p}: {e.strerror}") from e
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"private key {p} is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {p}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{p} is not a PEM Ed25519 private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{p} is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read public key {p}: {e.strerror}") from e
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{p} is not a PEM Ed25519 public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{p} is not an Ed25519 key")
    return key


@dataclass
class TrustSet:
    """Public keys the device accepts, by key id, minus revoked ids."""

    keys: dict[bytes, Ed25519PublicKey] = field(default_factory=dict)
    revoked: set[bytes] = field(default_factory=set)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike], revoked: Iterable[str] = ()) -> TrustSet:
        ts = cls()
        for p in paths:
            pp = Path(p)
            files = sorted(pp.glob("*.pub")) if pp.is_dir() else [pp]
            for f in files:
                k = load_public_key(f)
                ts.keys[key_id(k)] = k
        for r in revoked:
            try:
                ts.revoked.add(bytes.fromhex(r))
            except ValueError as e:
                raise ValueError(f"revoked key id {r!r} is not hex") from e
        if not ts.keys:
            raise KeyFileError("no trusted public key given; pass --trust sender.pub")
        return ts

    def get(self, kid: bytes) -> Ed25519PublicKey:
        if kid in self.revoked:
            raise UnknownKeyError(f"payload is signed by revoked key {kid.hex()}; refused")
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownKeyError(
                f"payload is signed by unknown key {kid.hex()}; trusted: {', '.join(k.hex() for k in self.keys)}"
            ) from None


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def verify(public: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        raise SignatureError(
            "signature check failed: the payload was altered in transit, or this device's reference set "
            "differs from the sender's (run `labelcast reference verify --full`)"
        ) from None
