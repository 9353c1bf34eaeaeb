"""Reference store and manifest: the artifact both ends hold.

A reference store is a folder::

    store.json      shape, dtype, source and build options (informational)
    items.u8        N × H × W × C uint8, row i = item i in canonical order (memory-mapped)
    manifest.lcm    binary manifest (below)
    provenance.lcp  per item: source path and SHA-256 of the source file (optional)

A **text** store holds variable-length items instead of ``items.u8``::

    texts.u8        the items' normalised UTF-8 bytes (``codec.text.normalize``), concatenated
    offsets.u64     N + 1 little-endian u64: item i is texts.u8[offsets[i]:offsets[i+1]]

and its manifest declares item shape ``(0,)`` and item size 0 (variable); an item's hash is the
SHA-256 of its bytes, so verify, payloads and the Merkle root work unchanged.

A **vector** store (features, not images: ``npy:`` sources of N × D float32 or float16) keeps
``items.u8`` but each row holds one item's D little-endian floats; its manifest declares the item
shape ``(D, E)`` with E = 4 (float32) or 2 (float16) bytes per element — the only 2-D item shape —
so the kind and the float type are covered by the root. An item's hash is the SHA-256 of its bytes.

``manifest.lcm`` (little-endian)::

    4   magic b"LCMF"     1  version (1)     1  hash algorithm (1 = SHA-256)
    8   N                 4  item bytes      1  ndim, then 4 × ndim item shape
    4   G group count, then G × blob group name (uvarint length + UTF-8)
    N × 32   item hashes (SHA-256 of the item's bytes in items.u8)
    N × 4    group id per item
    32       Merkle root over the item hashes
    32       SHA-256 of every byte above (the manifest's own integrity)

Merkle root: leaves are the item hashes; they are cut into chunks of 4,096
(the last may be shorter) and each chunk is hashed as ``SHA-256(0x01 || leaves)``;
chunk hashes are then combined pairwise with ``SHA-256(0x02 || left || right)``,
an odd one promoted unchanged, until one remains. ``SHA-256(0x00 || N as u64)``
is the root of an empty set. The fan-out keeps the root O(N) bytes of hashing at
14M items while a chunk's inclusion proof stays short.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ._wire import Reader, Writer
from .errors import DecodeError, LimitError, ReferenceMismatchError
from .indexset import segments_from_groups
from .storage import atomic_write

__all__ = ["Manifest", "ReferenceStore", "TextItems", "merkle_root", "hash_items", "write_manifest", "ItemProblem"]

MAGIC = b"LCMF"
VERSION = 1
HASH_SHA256 = 1
HASH_LEN = 32  # bytes of one item hash
GROUP_ID_LEN = 4  # bytes of one group id
ROW_LEN = HASH_LEN + GROUP_ID_LEN  # manifest bytes per item
TRAILER_LEN = 2 * HASH_LEN  # root + the manifest's own hash
MAX_GROUP_NAME = 4096
CHUNK = 4096
MAX_ITEMS = (1 << 32) - 1
MAX_ITEM_BYTES = 1 << 26
MAX_GROUPS = 1 << 24
VECTOR_DTYPES = {2: "<f2", 4: "<f4"}  # a vector store's element bytes → its float type


def hash_items(rows) -> np.ndarray:
    """SHA-256 of each row of a (n, ...) uint8 array, or of each item of a text batch → (n, 32) uint8."""
    if isinstance(rows, list) or np.dtype(getattr(rows, "dtype", np.uint8)) == np.dtype(object):
        from .text import hash_texts

        return hash_texts(rows)
    n = rows.shape[0]
    if n == 0:
        return np.zeros((0, 32), dtype=np.uint8)
    flat = np.ascontiguousarray(rows).reshape(n, -1)
    step = flat.shape[1]
    mv = memoryview(flat.reshape(-1))
    sha = hashlib.sha256
    digests = b"".join([sha(mv[i : i + step]).digest() for i in range(0, n * step, step)])
    return np.frombuffer(digests, dtype=np.uint8).reshape(n, 32).copy()


def merkle_root(hashes: np.ndarray) -> bytes:
    n = int(hashes.shape[0])
    if n == 0:
        return hashlib.sha256(b"\x00" + n.to_bytes(8, "little")).digest()
    level = [
        hashlib.sha256(b"\x01" + np.ascontiguousarray(hashes[i : i + CHUNK]).tobytes()).digest()
        for i in range(0, n, CHUNK)
    ]
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x02" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def write_manifest(
    path: str | os.PathLike,
    hashes: np.ndarray,
    groups: np.ndarray,
    group_names: list[str],
    item_shape: tuple[int, ...],
) -> bytes:
    """Write ``manifest.lcm`` atomically; returns the root."""
    n = int(hashes.shape[0])
    item_bytes = int(np.prod(item_shape))
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    w.u8(HASH_SHA256)
    w.u64(n)
    w.u32(item_bytes)
    w.u8(len(item_shape))
    for s in item_shape:
        w.u32(s)
    w.u32(len(group_names))
    for g in group_names:
        w.blob(g.encode())
    root = merkle_root(hashes)
    head = w.getvalue()
    h = hashlib.sha256(head)
    hb = np.ascontiguousarray(hashes, dtype=np.uint8).tobytes()
    gb = np.ascontiguousarray(groups, dtype="<u4").tobytes()
    for part in (hb, gb, root):
        h.update(part)
    digest = h.digest()

    def write(f) -> None:
        for part in (head, hb, gb, root, digest):
            f.write(part)

    atomic_write(path, write, what=f"manifest {path}")
    return root


@dataclass
class ItemProblem:
    index: int
    source: str
    problem: str

    def __str__(self) -> str:
        return f"item {self.index} ({self.source}): {self.problem}"


class Manifest:
    """A parsed manifest; hashes and groups stay memory-mapped."""

    def __init__(self, path: str | os.PathLike, *, check: bool = True) -> None:
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                head = f.read(min(size, 1 << 20))
        except OSError as e:
            raise ReferenceMismatchError(f"cannot read manifest {self.path}: {e.strerror}") from e
        r = Reader(head, f"manifest {self.path}")
        try:
            if r.raw(4) != MAGIC:
                raise DecodeError(f"{self.path} is not a labelcast manifest")
            if r.u8() != VERSION or r.u8() != HASH_SHA256:
                raise DecodeError(f"{self.path}: unsupported manifest version or hash")
            self.n = r.u64()
            self.item_bytes = r.u32()
            ndim = r.u8()
            if self.n > MAX_ITEMS or self.item_bytes > MAX_ITEM_BYTES or not 1 <= ndim <= 4:
                raise LimitError(f"{self.path}: declared sizes exceed the limits")
            self.item_shape = tuple(r.u32() for _ in range(ndim))
            g = r.u32()
            if g > MAX_GROUPS:
                raise LimitError(f"{self.path}: too many groups")
            self.group_names = [r.blob(MAX_GROUP_NAME, "group name").decode("utf-8", "replace") for _ in range(g)]
        except DecodeError as e:
            raise ReferenceMismatchError(f"manifest {self.path} is damaged: {e}") from e
        if int(np.prod(self.item_shape)) != self.item_bytes:
            raise ReferenceMismatchError(f"manifest {self.path} is damaged: item shape and size disagree")
        self._off = r.pos
        expect = self._off + self.n * ROW_LEN + TRAILER_LEN
        if size != expect:
            raise ReferenceMismatchError(
                f"manifest {self.path} is {'truncated' if size < expect else 'too long'} "
                f"({size} bytes, expected {expect}); copy it again from the ground station"
            )
        self.hashes = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self._off, shape=(self.n, HASH_LEN))
        self.groups = np.memmap(self.path, dtype="<u4", mode="r", offset=self._off + self.n * HASH_LEN, shape=(self.n,))
        with open(self.path, "rb") as f:
            f.seek(self._off + self.n * ROW_LEN)
            self.root = f.read(HASH_LEN)
            self._self_hash = f.read(HASH_LEN)
        if self.n and int(self.groups.max()) >= max(len(self.group_names), 1):
            raise ReferenceMismatchError(f"manifest {self.path} is damaged: group id out of range")
        if check:
            self.check()

    def check(self) -> None:
        """Manifest self-hash and root; cost = one pass over the manifest file."""
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            remaining = self._off + self.n * ROW_LEN + HASH_LEN
            while remaining:
                b = f.read(min(remaining, 8 << 20))
                if not b:
                    break
                h.update(b)
                remaining -= len(b)
        if h.digest() != self._self_hash:
            raise ReferenceMismatchError(f"manifest {self.path} fails its own checksum; it was altered or damaged")
        if merkle_root(self.hashes) != self.root:
            raise ReferenceMismatchError(f"manifest {self.path}: item hashes do not match its root")

    @cached_property
    def segments(self) -> np.ndarray:
        return segments_from_groups(self.groups)

    @property
    def sha256(self) -> str:
        return self._self_hash.hex()


class TextItems:
    """A text store's items, indexable like an array (an int, a slice or an index array → bytes / an object
    array of bytes), read from the memory-mapped ``texts.u8`` through ``offsets.u64``."""

    def __init__(self, texts: Path, offsets: np.ndarray) -> None:
        self.offsets = offsets
        self.n = int(offsets.shape[0]) - 1
        self.shape = (self.n,)
        self.dtype = np.dtype(object)
        size = int(offsets[-1])
        self._data = np.memmap(texts, dtype=np.uint8, mode="r", shape=(size,)) if size else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return self.n

    def _one(self, i: int) -> bytes:
        return self._data[int(self.offsets[i]) : int(self.offsets[i + 1])].tobytes()

    def __getitem__(self, key):
        if isinstance(key, int | np.integer):
            i = int(key) + (self.n if key < 0 else 0)
            if not 0 <= i < self.n:
                raise IndexError("text item index out of range")
            return self._one(i)
        idx = np.arange(self.n)[key] if isinstance(key, slice) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        out = np.empty(idx.size, dtype=object)
        out[:] = [self._one(int(i)) for i in idx.reshape(-1)]
        return out


def _texts_of(blob: bytes, offsets: np.ndarray) -> np.ndarray:
    """Split one read of consecutive items at their offsets (relative to the first)."""
    o = (offsets - offsets[0]).tolist()
    out = np.empty(len(o) - 1, dtype=object)
    out[:] = [blob[a:b] for a, b in zip(o[:-1], o[1:], strict=True)]
    return out


class ReferenceStore:
    """A reference store folder: memory-mapped items plus manifest (image items, or text items — ``kind``)."""

    def __init__(self, path: str | os.PathLike, *, check: bool = True) -> None:
        self.path = Path(path)
        if not (self.path / "manifest.lcm").exists():
            raise ReferenceMismatchError(f"{self.path} is not a reference store (no manifest.lcm)")
        self.manifest = Manifest(self.path / "manifest.lcm", check=check)
        try:
            self.info = json.loads((self.path / "store.json").read_text())
        except (OSError, ValueError):
            self.info = {}
        m = self.manifest
        self.kind = "text" if m.item_shape == (0,) else ("vector" if len(m.item_shape) == 2 else "image")
        self.dtype, self.item_shape = np.dtype(object), m.item_shape
        if self.kind == "text":
            self._open_texts()
            return
        if self.kind == "vector" and m.item_shape[1] not in VECTOR_DTYPES:
            raise ReferenceMismatchError(f"manifest {m.path}: a vector item of {m.item_shape[1]}-byte floats")
        # a vector store's items.u8 holds each item's little-endian float bytes; the array views them as floats
        self.dtype = np.dtype(VECTOR_DTYPES[m.item_shape[1]]) if self.kind == "vector" else np.dtype(np.uint8)
        self.item_shape = (m.item_shape[0],) if self.kind == "vector" else m.item_shape
        items = self.path / "items.u8"
        try:
            size = items.stat().st_size
        except OSError as e:
            raise ReferenceMismatchError(f"reference items {items} are missing: {e.strerror}") from e
        if size != m.n * m.item_bytes:
            raise ReferenceMismatchError(
                f"reference items {items} are {size} bytes, the manifest expects {m.n * m.item_bytes} "
                "(truncated or from another set)"
            )
        self.items = (
            np.memmap(items, dtype=self.dtype, mode="r", shape=(m.n, *self.item_shape))
            if m.n
            else np.zeros((0, *self.item_shape), self.dtype)
        )

    def _open_texts(self) -> None:
        n = self.manifest.n
        op, tp = self.path / "offsets.u64", self.path / "texts.u8"
        try:
            osize, tsize = op.stat().st_size, tp.stat().st_size
        except OSError as e:
            raise ReferenceMismatchError(f"text store {self.path} is missing a file: {e.strerror}") from e
        if osize != 8 * (n + 1):
            raise ReferenceMismatchError(f"{op} is {osize} bytes, the manifest's {n} items need {8 * (n + 1)}")
        offsets = np.memmap(op, dtype="<u8", mode="r", shape=(n + 1,))
        if int(offsets[0]) != 0 or int(offsets[-1]) != tsize or (n and bool((np.diff(offsets) > 1 << 26).any())):
            raise ReferenceMismatchError(f"text store {self.path}: offsets and texts.u8 ({tsize} bytes) disagree")
        if n and bool((offsets[1:] < offsets[:-1]).any()):
            raise ReferenceMismatchError(f"text store {self.path}: offsets go backwards (damaged)")
        self.offsets = offsets
        self.items = TextItems(tp, offsets)

    @property
    def n(self) -> int:
        return self.manifest.n

    @property
    def root(self) -> bytes:
        return self.manifest.root

    def source_of(self, i: int) -> str:
        prov = self.path / "provenance.lcp"
        if prov.exists():
            try:
                return read_provenance(prov, [i])[0][0]
            except (OSError, DecodeError, IndexError):
                pass
        return f"{self.info.get('source', '?')}#{i}"

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Items [start, stop) with one pread (sequential scans without growing the memory map's RSS)."""
        m = self.manifest
        if not 0 <= start <= stop <= self.n:
            raise ValueError("item range out of bounds")
        if self.kind == "text":
            return self._read_texts(start, stop)
        path = self.path / "items.u8"
        try:
            with open(path, "rb") as f:
                b = os.pread(f.fileno(), (stop - start) * m.item_bytes, start * m.item_bytes)
        except OSError as e:
            raise ReferenceMismatchError(f"reference items near item {start} are unreadable: {e.strerror}") from e
        if len(b) != (stop - start) * m.item_bytes:
            raise ReferenceMismatchError(f"reference items near item {start} are missing: the store was truncated")
        return np.frombuffer(b, dtype=self.dtype).reshape(stop - start, *self.item_shape)

    def _read_texts(self, start: int, stop: int) -> np.ndarray:
        o = np.asarray(self.offsets[start : stop + 1], dtype=np.int64)
        path = self.path / "texts.u8"
        try:
            with open(path, "rb") as f:
                b = os.pread(f.fileno(), int(o[-1] - o[0]), int(o[0]))
        except OSError as e:
            raise ReferenceMismatchError(f"text items near item {start} are unreadable: {e.strerror}") from e
        if len(b) != int(o[-1] - o[0]):
            raise ReferenceMismatchError(f"text items near item {start} are missing: the store was truncated")
        return _texts_of(b, o)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The given items, read with pread (not the memory map): a store truncated or made
        unreadable after opening gives ReferenceMismatchError naming the item, not SIGBUS."""
        idx = np.asarray(indices, dtype=np.int64)
        m = self.manifest
        if self.kind == "text":
            if idx.size and (idx.min() < 0 or idx.max() >= self.n):
                raise ValueError("item index out of range")
            out = np.empty(idx.size, dtype=object)
            out[:] = [self._read_texts(i, i + 1)[0] for i in idx.tolist()]
            return out
        out = np.empty((idx.size, *self.item_shape), dtype=self.dtype)
        flat = out.reshape(idx.size, int(np.prod(self.item_shape))).view(np.uint8)  # rows of item bytes
        path = self.path / "items.u8"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise ReferenceMismatchError(f"reference items {path} unreadable: {e.strerror}") from e
        try:
            for j, i in enumerate(idx.tolist()):
                if not 0 <= i < self.n:
                    raise ValueError(f"item index {i} out of range")
                try:
                    b = os.pread(fd, m.item_bytes, i * m.item_bytes)
                except OSError as e:
                    raise ReferenceMismatchError(
                        f"reference item {i} ({self.source_of(i)}) is unreadable: {e.strerror}"
                    ) from e
                if len(b) != m.item_bytes:
                    raise ReferenceMismatchError(
                        f"reference item {i} ({self.source_of(i)}) is missing: the store was truncated"
                    )
                flat[j] = np.frombuffer(b, dtype=np.uint8)
        finally:
            os.close(fd)
        return out

    def check_items(self, indices: np.ndarray | None = None, *, chunk: int = 4096, progress=None) -> list[ItemProblem]:
        """Re-hash the given items (all when None); returns the ones that differ."""
        idx = np.arange(self.n) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= self.n):
            raise ValueError("item index out of range")
        bad: list[ItemProblem] = []
        for s in range(0, idx.size, chunk):
            part = idx[s : s + chunk]
            if indices is not None:
                got = hash_items(self.read(part))
            elif self.kind == "text":
                self._check_size()
                got = hash_items(self.read_range(int(part[0]), int(part[-1]) + 1))
            else:
                self._check_size()
                got = hash_items(self.items[part[0] : part[-1] + 1])
            bad.extend(self._mismatches(part, got))
            if progress is not None:
                progress(part.size)
        return bad

    def _mismatches(self, idx: np.ndarray, got: np.ndarray) -> list[ItemProblem]:
        """Items whose freshly computed hashes ``got`` differ from the manifest's."""
        if idx.size == 0:
            return []
        diff = np.flatnonzero((got != self.manifest.hashes[idx]).any(axis=1))
        return [ItemProblem(int(idx[d]), self.source_of(int(idx[d])), "content hash differs") for d in diff]

    def _check_size(self) -> None:
        if self.kind == "text":
            size = (self.path / "texts.u8").stat().st_size if (self.path / "texts.u8").exists() else -1
            if size != int(self.offsets[-1]):
                raise ReferenceMismatchError(
                    f"text items changed size while in use ({size} bytes); the store is damaged"
                )
            return
        try:
            size = (self.path / "items.u8").stat().st_size
        except OSError as e:
            raise ReferenceMismatchError(f"reference items unreadable: {e.strerror}") from e
        if size != self.n * self.manifest.item_bytes:
            raise ReferenceMismatchError(
                f"reference items changed size while in use ({size} bytes); the store is damaged"
            )

    def require_items(self, indices: np.ndarray) -> np.ndarray:
        """Read the given items once, check their hashes, and return exactly those bytes
        (so what is trained on is what was verified)."""
        idx = np.asarray(indices, dtype=np.int64)
        x = self.read(idx)
        bad = self._mismatches(idx, hash_items(x))
        if bad:
            shown = "; ".join(str(b) for b in bad[:5])
            raise ReferenceMismatchError(
                f"{len(bad)} selected reference item(s) differ from the manifest: {shown}. "
                "Restore them from the ground copy; nothing was trained."
            )
        return x


def write_provenance(path: str | os.PathLike, paths: list[str], source_hashes: np.ndarray) -> None:
    w = Writer()
    w.raw(b"LCPV")
    w.uvarint(len(paths))
    for p in paths:
        w.blob(p.encode())
    w.raw(np.ascontiguousarray(source_hashes, dtype=np.uint8).tobytes())
    atomic_write(path, w.getvalue(), what=f"provenance {path}")


def read_provenance(path: str | os.PathLike, which: list[int] | None = None) -> list[tuple[str, bytes]]:
    r = Reader(Path(path).read_bytes(), f"provenance {path}")
    if r.raw(4) != b"LCPV":
        raise DecodeError(f"{path} is not a provenance file")
    n = r.uvarint(limit=MAX_ITEMS, name="item count")
    names = [r.blob(1 << 16, "path").decode("utf-8", "replace") for _ in range(n)]
    hashes = r.raw(32 * n)
    r.end()
    idx = range(n) if which is None else which
    return [(names[i], hashes[32 * i : 32 * i + 32]) for i in idx]
