"""Sources of images, named by one string: ``builtin:NAME[:SPLIT]``, ``folder:PATH``, ``npy:PATH``.

* ``builtin:fashion`` / ``builtin:digits`` — a scenario's unlabelled reference pool;
  ``builtin:fashion:train`` / ``:test`` — its labelled target data.
* ``folder:PATH`` — image files Pillow reads (JPEG, PNG, WebP, …) found
  recursively; canonical order = sorted relative POSIX paths; group = parent
  folder. As labelled data, the first folder level is the class.
* ``npy:PATH`` — an N×H×W[×C] uint8 array, memory-mapped. As labelled data, a
  sibling ``PATH-labels.npy`` (or ``labels.npy`` beside it) holds the labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import builtin

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm"}

__all__ = ["Pool", "open_pool", "load_labelled", "list_images", "decode_image", "SourceError"]


class SourceError(ValueError):
    """A source string or the data behind it is unusable."""


@dataclass
class Pool:
    """An unlabelled source in canonical order."""

    name: str
    n: int
    item_shape: tuple[int, int, int]
    groups: np.ndarray
    group_names: list[str]
    paths: list[str] = field(default_factory=list)
    _array: np.ndarray | None = None
    _files: list[Path] = field(default_factory=list)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, list[bytes]]:
        """Items [start, stop) as uint8 and the SHA-256 of each source file (or item)."""
        if self._array is not None:
            x = np.ascontiguousarray(self._array[start:stop])
            if x.ndim == 3:
                x = x[..., None]
            return x, [hashlib.sha256(r.tobytes()).digest() for r in x]
        h, w, c = self.item_shape
        out = np.empty((stop - start, h, w, c), dtype=np.uint8)
        hashes = []
        for j, f in enumerate(self._files[start:stop]):
            try:
                raw = f.read_bytes()
            except OSError as e:
                raise SourceError(f"cannot read {f}: {e.strerror}") from e
            hashes.append(hashlib.sha256(raw).digest())
            out[j] = decode_image(raw, (h, w), c, name=str(f))
        return out, hashes

    def chunks(self, chunk: int = 4096, start: int = 0) -> Iterator[tuple[int, np.ndarray, list[bytes]]]:
        for s in range(start, self.n, chunk):
            x, hs = self.read(s, min(self.n, s + chunk))
            yield s, x, hs


def decode_image(raw: bytes, size: tuple[int, int], channels: int, name: str = "image") -> np.ndarray:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SourceError(f"{name} is not a readable image: {e}") from e
    return a.reshape(size[0], size[1], channels)


def list_images(root: Path) -> list[Path]:
    """Image files below ``root`` in canonical order (sorted relative POSIX paths)."""
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _split(source: str) -> tuple[str, str]:
    if ":" not in source:
        raise SourceError(f"source {source!r} must look like builtin:NAME, folder:PATH or npy:PATH")
    kind, rest = source.split(":", 1)
    if kind not in ("builtin", "folder", "npy"):
        raise SourceError(f"unknown source kind {kind!r} in {source!r}; use builtin:, folder: or npy:")
    return kind, rest


def open_pool(source: str, size: int | None = None, channels: int | None = None) -> Pool:
    kind, rest = _split(source)
    if kind == "builtin":
        try:
            x, g, names = builtin.pool(rest)
        except ValueError as e:
            raise SourceError(str(e)) from e
        if size not in (None, 28) or channels not in (None, 1):
            raise SourceError("built-in pools are 28×28×1; omit --size/--channels")
        return Pool(source, x.shape[0], (28, 28, 1), g, names, [f"{rest}#{i}" for i in range(x.shape[0])], _array=x)
    if kind == "npy":
        try:
            arr = np.load(rest, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise SourceError(f"cannot open {rest} as a .npy array: {e}") from e
        if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
            raise SourceError(f"{rest}: need an N×H×W[×C] uint8 array, got {arr.dtype} {arr.shape}")
        shape = (arr.shape[1], arr.shape[2], arr.shape[3] if arr.ndim == 4 else 1)
        if (size and size != shape[0]) or (channels and channels != shape[2]):
            raise SourceError(f"{rest} holds {shape} items; array stores are used at their own size")
        g = np.zeros(arr.shape[0], dtype=np.uint32)
        return Pool(
            source, arr.shape[0], shape, g, [Path(rest).name], [f"{rest}#{i}" for i in range(arr.shape[0])], arr
        )
    root = Path(rest)
    files = list_images(root)
    if not files:
        raise SourceError(f"no image files found under {root}")
    rel = [f.relative_to(root).as_posix() for f in files]
    parents = [r.rsplit("/", 1)[0] if "/" in r else "." for r in rel]
    names = sorted(set(parents))
    gid = {n: i for i, n in enumerate(names)}
    groups = np.array([gid[p] for p in parents], dtype=np.uint32)
    c = channels or 3
    s = size or 32
    return Pool(source, len(files), (s, s, c), groups, names, rel, _files=files)


def load_labelled(source: str, size: int | None = None, channels: int | None = None):
    """Labelled data: (N×H×W×C uint8, labels int64, class names)."""
    kind, rest = _split(source)
    if kind == "builtin":
        if ":" not in rest:
            raise SourceError(f"labelled built-in data is {source}:train or {source}:test")
        name, split = rest.split(":", 1)
        try:
            return builtin.target(name, split)
        except ValueError as e:
            raise SourceError(str(e)) from e
    if kind == "npy":
        p = Path(rest)
        x = np.load(p, mmap_mode="r")
        for lp in (p.with_name(p.stem + "-labels.npy"), p.with_name("labels.npy")):
            if lp.exists():
                y = np.load(lp).astype(np.int64)
                break
        else:
            raise SourceError(f"no labels for {p}: put them in {p.stem}-labels.npy beside it")
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[..., None]
        return x, y, [str(i) for i in range(int(y.max()) + 1)]
    root = Path(rest)
    files = list_images(root)
    if not files:
        raise SourceError(f"no image files found under {root}")
    classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    if not classes:
        raise SourceError(f"{root} needs one subfolder per class")
    cid = {c: i for i, c in enumerate(classes)}
    s, c = size or 32, channels or 3
    keep = [f for f in files if len(f.relative_to(root).parts) > 1]
    x = np.stack([decode_image(f.read_bytes(), (s, s), c, str(f)) for f in keep])
    y = np.array([cid[f.relative_to(root).parts[0]] for f in keep], dtype=np.int64)
    return x, y, classes
