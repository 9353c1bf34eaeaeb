"""What every source form shares, below them all: the :class:`Source` a form opens, image files (their
suffixes, listing in canonical order, decoding to a size), the cache folder of decoded built-in data,
and a stratified split. ``sources``, ``builtin``, ``textsources`` and ``textcorpus`` import from here,
never from each other's private parts, so the package has no import cycle."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError

__all__ = ["IMAGE_SUFFIXES", "Source", "decode_image", "list_images", "cache_root", "stratified_split"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm"}


@dataclass
class Source:
    """A source in canonical order: images on demand, groups, and labels where it has them."""

    name: str
    n: int
    item_shape: tuple[int, ...]  # (H, W, C) images; (D,) vectors; (0,) text
    groups: np.ndarray
    group_names: list[str]
    paths: list[str]
    reader: Callable[[int, int], tuple[np.ndarray, list[bytes]]]
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (--skip-bad)
    notes: list[str] = field(default_factory=list)
    kind: str = "image"  # "image": uint8 N×H×W×C items; "text": normalised UTF-8 bytes; "vector": N×D floats
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.uint8))  # a vector source's float type

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def read(self, start: int, stop: int) -> tuple[np.ndarray, list[bytes]]:
        """Items [start, stop) as uint8 N×H×W×C and the SHA-256 of each source file (or item)."""
        return self.reader(start, stop)

    def chunks(self, chunk: int = 4096, start: int = 0) -> Iterator[tuple[int, np.ndarray, list[bytes]]]:
        for s in range(start, self.n, chunk):
            x, hs = self.read(s, min(self.n, s + chunk))
            yield s, x, hs

    def images(self) -> np.ndarray:
        """Every item in one array (use chunks() for large sources); a text source's is an object array."""
        if self.kind == "text":
            return self.read(0, self.n)[0]
        return (
            np.concatenate([x for _, x, _ in self.chunks()]) if self.n else np.zeros((0, *self.item_shape), self.dtype)
        )


def _fit_pil(im, size: tuple[int, int], fit: str):
    from PIL import Image

    h, w = size
    if im.size == (w, h):
        return im
    if fit == "squash":
        return im.resize((w, h), Image.BOX if im.size[0] >= w else Image.BILINEAR)
    iw, ih = im.size
    scale = max(w / iw, h / ih) if fit == "crop" else min(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    im = im.resize((nw, nh), Image.BOX if scale < 1 else Image.BILINEAR)
    if fit == "crop":
        left, top = (nw - w) // 2, (nh - h) // 2
        return im.crop((left, top, left + w, top + h))
    canvas = Image.new(im.mode, (w, h))
    canvas.paste(im, ((w - nw) // 2, (h - nh) // 2))
    return canvas


def decode_image(
    raw: bytes, size: tuple[int, int], channels: int, name: str = "image", fit: str = "crop"
) -> np.ndarray:
    """Decode one image file's bytes to size × channels uint8 (transparent pixels become black)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # large but allowed: decoded and shrunk
            im = Image.open(io.BytesIO(raw))
            im.load()
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                base = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(base, im)
            im = _fit_pil(im.convert("L" if channels == 1 else "RGB"), size, fit)
            a = np.asarray(im, dtype=np.uint8)
    except UnidentifiedImageError as e:
        raise SourceError(f"{name} is not an image file Pillow can read (JPEG, PNG, WebP, …)") from e
    except Image.DecompressionBombError as e:
        raise SourceError(
            f"{name} is larger than an image labelcast decodes ({e}); skip such files with skip_bad=True "
            "(`reference build --skip-bad`), which lists them in the store's record"
        ) from e
    except (OSError, ValueError) as e:
        raise SourceError(f"{name} is not a readable image ({type(e).__name__}: {e})") from e
    return a.reshape(size[0], size[1], channels)


def list_images(root: Path) -> list[Path]:
    """Image files below ``root`` in canonical order (sorted relative POSIX paths)."""
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def cache_root() -> Path:
    """Where decoded built-in data is cached (``$LABELCAST_CACHE_DIR``, else ~/.cache/labelcast)."""
    env = os.environ.get("LABELCAST_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "labelcast"


def stratified_split(y: np.ndarray, n_first: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified split with ``n_first`` items in the first part."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    classes = np.unique(y)
    frac = n_first / y.size
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        m = int(round(idx.size * frac))
        first.append(idx[:m])
        second.append(idx[m:])
    a, b = np.concatenate(first), np.concatenate(second)
    # fix rounding so the first part has exactly n_first items
    if a.size > n_first:
        b = np.concatenate([b, a[n_first:]])
        a = a[:n_first]
    elif a.size < n_first:
        need = n_first - a.size
        a, b = np.concatenate([a, b[:need]]), b[need:]
    return np.sort(rng.permutation(a)), np.sort(b)
