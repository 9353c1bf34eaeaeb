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

from .errors import KeyFileError, RevokedKeyError, SignatureError, UnknownKeyError
from .storage import atomic_write

__all__ = [
    "key_id",
    "KEY_ROLES",
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


KEY_ROLES = ("sender", "device")  # sender: signs payloads; device: signs receipts (docs/receipts.md)


def generate_keypair(out_dir: str | os.PathLike, *, force: bool = False, role: str = "sender") -> tuple[Path, Path]:
    """Write ``ROLE.key`` (0600) and ``ROLE.pub`` into ``out_dir``; returns both paths. ``role`` is ``sender``
    (the ground's payload key) or ``device`` (a device's receipt key).

    Existing keys are never replaced unless ``force`` (the CLI's ``keygen --force``)."""
    if role not in KEY_ROLES:
        raise ValueError(f"a key's role is one of {', '.join(KEY_ROLES)}, not {role!r}")
    out = Path(out_dir)
    priv_path, pub_path = out / f"{role}.key", out / f"{role}.pub"
    if not force and (priv_path.exists() or pub_path.exists()):
        raise KeyFileError(f"{priv_path} already exists; refusing to overwrite a key (use --force to replace it)")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(priv_path, priv, mode=0o600, what=f"private key {priv_path}")
    atomic_write(pub_path, pub, what=f"public key {pub_path}")
    return priv_path, pub_path


def _pem_kind(data: bytes) -> str:
    """The PEM block type ("PRIVATE KEY", "PUBLIC KEY", …) of a key file, or "" when it is not PEM."""
    head = data.lstrip()[:64]
    if not head.startswith(b"-----BEGIN "):
        return ""
    return head[11:].split(b"-----", 1)[0].decode("ascii", "replace")


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Load a PKCS#8 PEM Ed25519 private key; the file's type is checked before its permissions,
    so a public key passed by mistake is named as such (not met with "chmod 600")."""
    p = Path(path)
    try:
        st = p.stat()
        data = p.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read private key {p}: {e.strerror}") from e
    kind = _pem_kind(data)
    if kind == "PUBLIC KEY":
        raise KeyFileError(f"{p} is a public key; sign with the private key (sender.key beside it)")
    if kind != "PRIVATE KEY":
        raise KeyFileError(f"{p} is not a PEM Ed25519 private key (make one with `labelcast keygen`)")
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
    if _pem_kind(data) == "PRIVATE KEY":
        raise KeyFileError(f"{p} is a private key; the device needs only the public key (sender.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{p} is not a PEM Ed25519 public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{p} is not an Ed25519 key")
    return key


@dataclass
class TrustSet:
    """Public keys the device accepts, by key id, minus revoked ids. One made by :meth:`from_files`
    remembers its files, so a long-running device can :meth:`reload` them (a key added to a folder)."""

    keys: dict[bytes, Ed25519PublicKey] = field(default_factory=dict)
    revoked: set[bytes] = field(default_factory=set)
    sources: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # (key files or folders, revoked ids)
    device: Ed25519PrivateKey | None = None  # this device's own key: opens payloads sealed to it

    def with_device(self, key: Ed25519PrivateKey | str | os.PathLike | None) -> TrustSet:
        """This set, able to open payloads sealed to ``key`` (a device.key path or the key)."""
        if key is not None and not isinstance(key, Ed25519PrivateKey):
            key = load_private_key(key)
        self.device = key
        return self

    @classmethod
    def from_files(
        cls, paths: str | os.PathLike | Iterable[str | os.PathLike], revoked: Iterable[str] = ()
    ) -> TrustSet:
        """Keys from ``.pub`` files and folders of them (one path, or several)."""
        paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        revoked = [revoked] if isinstance(revoked, str) else list(revoked)
        ts = cls(sources=(tuple(map(str, paths)), tuple(revoked)))
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

    def with_folder(self, folder: str | os.PathLike) -> TrustSet:
        """This set and the ``.pub`` files of ``folder`` (a device keeps announced keys there), remembered for
        :meth:`reload`; revoked ids stay revoked."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        folder = str(folder)
        if folder in self.sources[0]:
            return self
        # a set made from files re-reads the folder with them; one made in code keeps its keys as they are
        sources = ((*self.sources[0], folder), self.sources[1]) if self.sources[0] else self.sources
        ts = TrustSet(dict(self.keys), set(self.revoked), sources, self.device)
        for f in sorted(Path(folder).glob("*.pub")):
            k = load_public_key(f)
            ts.keys[key_id(k)] = k
        return ts

    def reload(self) -> TrustSet:
        """The same files and folders read again; this set itself when it was not made from files."""
        return TrustSet.from_files(*self.sources).with_device(self.device) if self.sources[0] else self

    def fingerprint(self) -> tuple:
        return tuple(sorted(self.keys)), tuple(sorted(self.revoked))

    def get(self, kid: bytes) -> Ed25519PublicKey:
        if kid in self.revoked:
            raise RevokedKeyError(f"payload is signed by revoked key {kid.hex()}; refused")
        try:
            return self.keys[kid]
        except KeyError:
            raise UnknownKeyError(
                f"payload is signed by unknown key {kid.hex()}; trusted: {', '.join(k.hex() for k in self.keys)}"
            ) from None


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def verify(public: Ed25519PublicKey, signature: bytes, message: bytes, root: bytes | None = None) -> None:
    """Check an Ed25519 signature; ``root`` (the local reference root, part of the message) is
    named in the error so an operator can compare it with the sender's ``reference_root``."""
    try:
        public.verify(signature, message)
    except InvalidSignature:
        where = (
            f"This device's reference root is {root.hex()}; compare it with reference_root in the sender's "
            "send-report.json. If they differ, the device holds another store (rebuilt, or from other files) "
            "even when `labelcast reference verify --full` finds it intact; if they match, the payload was "
            "altered in transit."
            if root is not None
            else "Run `labelcast reference verify --full`."
        )
        raise SignatureError(
            "signature check failed: the payload was altered in transit, or this device's reference set "
            f"differs from the sender's. {where}"
        ) from None
