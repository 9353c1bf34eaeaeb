"""One grammar for every source of images, labelled or not (``labelcast sources`` lists it).

====================================  ===========================================================
form                                  what it is
====================================  ===========================================================
``builtin:NAME``                      a built-in scenario's unlabelled reference pool
``builtin:NAME:train`` / ``:test``    its labelled target data (the sender's private set / held out)
``folder:PATH``                       image files (JPEG, PNG, WebP, …) found recursively; canonical
                                      order = sorted relative paths; group = parent folder; as
                                      labelled data the first folder level is the class
``npy:PATH``                          an N×H×W[×C] uint8 array (memory-mapped); labels from
                                      ``--labels LABELS.npy``, else ``PATH-labels.npy`` or
                                      ``labels.npy`` beside it
``npz:PATH``                          arrays ``x`` (images) and, for labelled use, ``y`` (labels)
                                      and optionally ``names`` (class names)
``npy:PATH`` / ``npz:PATH`` of        **vectors**: an N×D float32 or float16 array (features, not
N×D floats                            images) — a vector store (``kind == "vector"``)
====================================  ===========================================================

Text forms (``lines:PATH``, ``jsonl:PATH:FIELD[:LABEL]``, a ``folder:`` of ``.txt`` files,
``builtin:wordnet``) are listed in :mod:`labelcast.datasets.textsources`; they open as a
:class:`Source` whose ``kind`` is ``"text"`` and whose items are normalised UTF-8 bytes.

Every image form is a source of images; a labelled form also carries labels, which a command
that needs none simply does not read. A form without labels where labels are needed is a
:class:`SourceError` naming the forms that would do. Images are brought to the size asked
for with a documented policy (``fit``): ``crop`` (the default: scale the short side, cut the
centre — the aspect ratio is kept), ``squash`` (scale each side independently) or ``pad``
(scale the long side, pad the rest with black).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from . import builtin
from .base import IMAGE_SUFFIXES, Source, decode_image, list_images

KINDS = ("builtin", "folder", "npy", "npz", "lines", "jsonl")
FITS = ("crop", "squash", "pad")
STREAM_OVER_BYTES = 1 << 30  # labelled folders decoding to more than this are cached on disk, memory-mapped

FORMS = {
    "builtin:NAME": "a built-in scenario's unlabelled pool, e.g. builtin:fashion",
    "builtin:NAME:SPLIT": "its labelled target data, e.g. builtin:fashion:train or builtin:digits:test",
    "folder:PATH": "images below PATH, e.g. folder:/data/pool (labelled: one subfolder per class)",
    "npy:PATH": "an N×H×W[×C] uint8 array, e.g. npy:images.npy (labels: --labels labels.npy); "
    "an N×D float32/float16 array is vectors",
    "npz:PATH": "arrays x and y (and names) in one file, e.g. npz:train.npz",
    "lines:PATH": "text: one item per line of a UTF-8 file, e.g. lines:/data/messages.txt",
    "folder:PATH (.txt)": "text: one item per .txt file (per line with --per-line; labelled: a subfolder per class)",
    "jsonl:PATH:FIELD[:LABEL]": "text: one item per JSON line, e.g. jsonl:train.jsonl:text:label",
    "builtin:wordnet[:SPLIT]": "the built-in text scenario: GCIDE + fortunes pool; WordNet glosses train/test",
}
LABELLED_FORMS = (
    "builtin:NAME:train, folder:PATH (one subfolder per class), npy:PATH with --labels, npz:PATH with y, "
    "jsonl:PATH:FIELD:LABEL"
)

__all__ = [
    "Source",
    "SourceError",
    "open_source",
    "open_pool",
    "load_labelled",
    "parse_source",
    "list_images",
    "decode_image",
    "parse_size",
    "FORMS",
]


def parse_size(text: str | int | None) -> tuple[int, int] | None:
    """``S`` or ``HxW`` → (height, width)."""
    if text is None:
        return None
    if isinstance(text, int):
        return (text, text)
    t = str(text).lower().replace("×", "x")
    try:
        parts = [int(v) for v in t.split("x")] if "x" in t else [int(t)] * 2
    except ValueError:
        raise SourceError(f"size {text!r}: give S or HxW, e.g. 64 or 48x64") from None
    if len(parts) != 2 or min(parts) < 1 or max(parts) > 4096:
        raise SourceError(f"size {text!r}: give S or HxW with sides 1..4096")
    return parts[0], parts[1]


def parse_source(source: str) -> tuple[str, str]:
    if not isinstance(source, str) or ":" not in source:
        raise SourceError(f"source {source!r} must be one of: {', '.join(FORMS)}")
    kind, rest = source.split(":", 1)
    if kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r} in {source!r}; forms: {', '.join(FORMS)}")
    if not rest:
        raise SourceError(f"source {source!r} names nothing after {kind}:")
    return kind, rest


# -- image decoding and fitting -------------------------------------------------------------------


def fit_array(x: np.ndarray, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """Arrays (N×H×W×C uint8) to another size/channel count: the codec's area/bilinear resize (squash)."""
    from ..codec.preprocess import resize

    a = x if x.ndim == 4 else x[..., None]
    if channels and channels != a.shape[3]:
        a = np.repeat(a, 3, axis=3) if a.shape[3] == 1 else np.rint(a.mean(axis=3, keepdims=True)).astype(np.uint8)
    if size and tuple(size) != a.shape[1:3]:
        a = np.clip(np.rint(resize(a.astype(np.float32), size[0], size[1])), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a, dtype=np.uint8)


def _readable(f: Path) -> bool:
    """A cheap check that Pillow can open an image file (header, size limit, and its chunks' checksums)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                im.verify()
        return True
    except Exception:  # anything Pillow raises means: not usable
        return False


# -- the forms ------------------------------------------------------------------------------------
def _array_reader(arr: np.ndarray, size, channels) -> Callable[[int, int], tuple[np.ndarray, list[bytes]]]:
    def read(start: int, stop: int):
        x = fit_array(np.asarray(arr[start:stop]), size, channels)
        return x, [hashlib.sha256(r.tobytes()).digest() for r in x]

    return read


def _shape(arr: np.ndarray, size, channels) -> tuple[int, int, int]:
    h, w = size or arr.shape[1:3]
    c = channels or (arr.shape[3] if arr.ndim == 4 else 1)
    return int(h), int(w), int(c)


def _builtin(rest: str, size, channels) -> Source:
    name, _, split = rest.partition(":")
    try:
        if split:
            x, y, names = builtin.target(name, split)
        else:
            x, g, gnames = builtin.pool(name)
    except ValueError as e:
        raise SourceError(str(e)) from e
    shape = _shape(x, size, channels)
    src = f"builtin:{rest}"
    paths = [f"{rest}#{i}" for i in range(x.shape[0])]
    if split:
        return Source(
            src,
            x.shape[0],
            shape,
            np.zeros(x.shape[0], np.uint32),
            [rest],
            paths,
            _array_reader(x, size, channels),
            y,
            names,
        )
    return Source(src, x.shape[0], shape, g, gnames, paths, _array_reader(x, size, channels))


def _npy(rest: str, size, channels, labels: str | None) -> Source:
    p = Path(rest)
    try:
        arr = np.load(p, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot open {p} as a .npy array: {e}") from e
    if not _is_vectors(arr) and (arr.dtype != np.uint8 or arr.ndim not in (3, 4)):
        raise SourceError(
            f"{p}: need an N×H×W[×C] uint8 array (images) or an N×D float32/float16 array (vectors), "
            f"got {arr.dtype} {arr.shape}"
        )
    y = None
    cands = [Path(labels)] if labels else [p.with_name(p.stem + "-labels.npy"), p.with_name("labels.npy")]
    for lp in cands:
        if lp.exists():
            try:
                y = np.asarray(np.load(lp), dtype=np.int64)
            except (OSError, ValueError) as e:
                raise SourceError(f"cannot read labels {lp}: {e}") from e
            break
    else:
        if labels:
            raise SourceError(f"labels file {labels} not found")
    if y is not None and y.shape != (arr.shape[0],):
        raise SourceError(f"{p} has {arr.shape[0]} images but its labels {y.shape}")
    return _array_source(f"npy:{rest}", p, arr, y, None, size, channels)


def _npz(rest: str, size, channels) -> Source:
    p = Path(rest)
    try:
        z = np.load(p)
        x = np.asarray(z["x"])
        y = np.asarray(z["y"], dtype=np.int64) if "y" in z.files else None
        names = [str(v) for v in z["names"]] if "names" in z.files else None
    except (OSError, ValueError, KeyError) as e:
        raise SourceError(f"cannot read {p} as an .npz with arrays x (and y): {e}") from e
    bad_x = not _is_vectors(x) and (x.dtype != np.uint8 or x.ndim not in (3, 4))
    if bad_x or (y is not None and y.shape != (x.shape[0],)):
        raise SourceError(f"{p}: x must be N×H×W[×C] uint8 (or N×D float32/float16 vectors) and y N labels")
    return _array_source(f"npz:{rest}", p, x, y, names, size, channels)


def _is_vectors(arr: np.ndarray) -> bool:
    return arr.ndim == 2 and arr.dtype in (np.float32, np.float16)


def _vector_reader(arr: np.ndarray) -> Callable[[int, int], tuple[np.ndarray, list[bytes]]]:
    dtype = "<f4" if arr.dtype == np.float32 else "<f2"

    def read(start: int, stop: int):
        x = np.ascontiguousarray(arr[start:stop], dtype=dtype)
        if not np.isfinite(x).all():
            bad = start + int(np.flatnonzero(~np.isfinite(x).all(1))[0])
            raise SourceError(f"vector {bad} holds NaN or infinity; a store holds finite features")
        return x, [hashlib.sha256(r.tobytes()).digest() for r in x]

    return read


def _array_source(spec: str, p: Path, arr: np.ndarray, y, names, size, channels) -> Source:
    """One array file as a source: one group, items named ``PATH#i``, labels numbered when not named."""
    if y is not None and names is None and y.size:
        names = [str(i) for i in range(int(y.max()) + 1)]
    n = arr.shape[0]
    rest = spec.split(":", 1)[1]
    ids = [f"{rest}#{i}" for i in range(n)]
    if _is_vectors(arr):
        if size is not None or channels is not None:
            raise SourceError(f"{spec} holds N×D vectors: --size and --channels apply to images only")
        src = Source(
            spec, n, (int(arr.shape[1]),), np.zeros(n, np.uint32), [p.name], ids, _vector_reader(arr), y, names
        )
        src.kind, src.dtype = "vector", np.dtype("<f4" if arr.dtype == np.float32 else "<f2")
        return src
    return Source(
        spec,
        n,
        _shape(arr, size, channels),
        np.zeros(n, np.uint32),
        [p.name],
        ids,
        _array_reader(arr, size, channels),
        y,
        names,
    )


def _folder(rest: str, size, channels, fit: str, skip_bad: bool) -> Source:
    root = Path(rest)
    files = list_images(root)
    if not files:
        raise SourceError(f"no image files found under {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    skipped: list[str] = []
    h, w = size or (32, 32)
    c = channels or 3
    if skip_bad:
        good = []
        for f in files:
            if _readable(f):
                good.append(f)
            else:
                skipped.append(f.relative_to(root).as_posix())
        files = good
        if not files:
            raise SourceError(f"no readable image under {root}; skipped {len(skipped)} file(s)")
    rel = [f.relative_to(root).as_posix() for f in files]
    parents = [r.rsplit("/", 1)[0] if "/" in r else "." for r in rel]
    gnames = sorted(set(parents))
    gid = {g: i for i, g in enumerate(gnames)}

    def read(start: int, stop: int):
        out = np.empty((stop - start, h, w, c), dtype=np.uint8)
        hashes = []
        for j, f in enumerate(files[start:stop]):
            try:
                raw = f.read_bytes()
            except OSError as e:
                raise SourceError(f"cannot read {f}: {e.strerror}") from e
            hashes.append(hashlib.sha256(raw).digest())
            out[j] = decode_image(raw, (h, w), c, name=str(f), fit=fit)
        return out, hashes

    src = Source(
        f"folder:{rest}", len(files), (h, w, c), np.array([gid[p] for p in parents], np.uint32), gnames, rel, read
    )
    src.skipped = skipped
    _folder_labels(src, root, rel)
    return src


def _folder_labels(src: Source, root: Path, rel: list[str]) -> None:
    """Labels from the first folder level, where every image sits in a class folder."""
    top = [r.split("/", 1)[0] if "/" in r else None for r in rel]
    if any(t is None for t in top):
        src.notes.append(f"images directly in {root} have no class folder: not usable as labelled data")
        return
    classes = sorted(set(top))
    empty = sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in classes
    )
    if empty:
        src.notes.append(f"class folder(s) without images: {', '.join(empty)}")
    cid = {c: i for i, c in enumerate(classes)}
    src.labels = np.array([cid[t] for t in top], dtype=np.int64)
    src.class_names = classes


def open_source(
    source: str,
    size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    *,
    fit: str = "crop",
    labels: str | None = None,
    skip_bad: bool = False,
    per_line: bool = False,
) -> Source:
    """Open any form (see the module docstring) as images of ``size`` × ``channels`` (None: the source's own;
    32×32×3 for folders). ``labels``: a labels .npy for an ``npy:`` source. Text forms open as text
    (``per_line``: a folder's .txt files give one item per line); size and channels do not apply to them."""
    from .textsources import TEXT_BUILTINS, TEXT_KINDS, is_text_folder, open_text_source

    kind, rest = parse_source(source)
    text = (
        kind in TEXT_KINDS
        or (kind == "builtin" and rest.partition(":")[0] in TEXT_BUILTINS)
        or (kind == "folder" and is_text_folder(Path(rest)))
    )
    if text:
        if size is not None or channels is not None:
            raise SourceError(f"{source} is text: --size and --channels apply to images only")
        return open_text_source(kind, rest, per_line=per_line, skip_bad=skip_bad)
    if per_line:
        raise SourceError(f"--per-line applies to folders of .txt files; {source} holds images")
    hw = parse_size(size) if not isinstance(size, tuple) else size
    if channels not in (None, 1, 3):
        raise SourceError("channels must be 1 or 3")
    if fit not in FITS:
        raise SourceError(f"fit must be one of {', '.join(FITS)}")
    if labels and kind != "npy":
        raise SourceError(f"--labels applies to npy: sources; {kind}: sources carry their own labels")
    if kind == "builtin":
        return _builtin(rest, hw, channels)
    if kind == "npy":
        return _npy(rest, hw, channels, labels)
    if kind == "npz":
        return _npz(rest, hw, channels)
    return _folder(rest, hw, channels, fit, skip_bad)


def open_pool(source: str, size=None, channels: int | None = None, **kw) -> Source:
    """A source of images (labels, if any, are not read)."""
    return open_source(source, size, channels, **kw)


def _cache_dir() -> Path:
    env = os.environ.get("LABELCAST_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "labelcast" / "sources"


def _images_streamed(src: Source) -> np.ndarray:
    """All images of a large source decoded once into a memory-mapped cache file (bounded RAM)."""
    key = hashlib.sha256(repr((src.name, src.item_shape, src.n, src.paths[:3], src.paths[-3:])).encode()).hexdigest()[
        :20
    ]
    path = _cache_dir() / f"{key}.u8"
    shape = (src.n, *src.item_shape)
    if path.exists() and path.stat().st_size == int(np.prod(shape)):
        return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    mm = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
    for s, x, _ in src.chunks(2048):
        mm[s : s + x.shape[0]] = x
    mm.flush()
    del mm
    os.replace(tmp, path)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def load_labelled(
    source: str, size=None, channels: int | None = None, *, labels: str | None = None, fit: str = "crop"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labelled images: (N×H×W×C uint8, labels int64, class names); labelled text: (object array of UTF-8
    bytes, labels, class names). Large image folders are decoded once into a memory-mapped cache
    (``$LABELCAST_CACHE_DIR``) rather than into RAM."""
    src = open_source(source, size, channels, labels=labels, fit=fit)
    if src.kind == "text" and src.labelled:
        return src.images(), src.labels, list(src.class_names or [])
    if not src.labelled:
        why = f" ({'; '.join(src.notes)})" if src.notes else ""
        raise SourceError(f"{source} has no labels{why}; labelled forms: {LABELLED_FORMS}")
    big = src.n * int(np.prod(src.item_shape)) > STREAM_OVER_BYTES
    x = _images_streamed(src) if big and source.startswith("folder:") else src.images()
    return x, src.labels, list(src.class_names or [])
