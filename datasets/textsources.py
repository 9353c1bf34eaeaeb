"""Text forms of the source grammar (``labelcast sources`` lists them beside the image forms).

=========================================  =====================================================
form                                       what it is
=========================================  =====================================================
``lines:PATH``                             one item per line of a UTF-8 file (lines empty after
                                           normalisation are skipped); canonical order = file order
``folder:PATH`` (of ``.txt`` files)        one item per file (``per_line``: per line), files in
                                           sorted relative-path order; labelled: the first folder
                                           level is the class, as for images
``jsonl:PATH:FIELD``                       one item per JSON line, the text in ``FIELD``
``jsonl:PATH:FIELD:LABEL``                 … labelled by ``LABEL`` (class names sorted)
``builtin:wordnet`` / ``:train`` / ``:test``  the built-in text scenario (``datasets.textcorpus``)
=========================================  =====================================================

Every item is normalised (``codec.text.normalize``: NFC, whitespace runs → one space, ends
stripped); what a store holds and hashes is that UTF-8. Bytes that are not UTF-8 are a
:class:`SourceError` naming the file and line (``skip_bad`` leaves them out and lists them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.text import normalize

__all__ = ["TEXT_KINDS", "TEXT_SUFFIXES", "open_text_source", "is_text_folder"]

TEXT_KINDS = ("lines", "jsonl")
TEXT_SUFFIXES = {".txt", ".text", ".md"}


def _make(name: str, texts: list[bytes], groups, gnames, paths, labels=None, classes=None, skipped=None):
    from .base import Source

    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    hashes = [hashlib.sha256(t).digest() for t in texts]

    def read(start: int, stop: int):
        return arr[start:stop], hashes[start:stop]

    src = Source(name, len(texts), (0,), np.asarray(groups, np.uint32), gnames, paths, read, labels, classes)
    src.kind = "text"
    src.skipped = list(skipped or [])
    return src


def _decode(raw: bytes, where: str, skip_bad: bool, skipped: list[str]) -> bytes | None:
    try:
        return normalize(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        if skip_bad:
            skipped.append(where)
            return None
        raise SourceError(f"{where} is not UTF-8 ({e.reason} at byte {e.start}); fix it or pass --skip-bad") from e


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise SourceError(f"cannot read {p}: {e.strerror}") from e


def _lines(rest: str, skip_bad: bool):
    p = Path(rest)
    texts, paths, skipped = [], [], []
    for i, raw in enumerate(_read(p).split(b"\n"), 1):
        t = _decode(raw.rstrip(b"\r"), f"{p} line {i}", skip_bad, skipped)
        if t:
            texts.append(t)
            paths.append(f"{p.name}:{i}")
    if not texts:
        raise SourceError(f"{p} holds no text lines")
    return _make(f"lines:{rest}", texts, np.zeros(len(texts)), [p.name], paths, skipped=skipped)


def _split_jsonl(rest: str) -> tuple[Path, str, str | None]:
    """PATH:FIELD[:LABEL], the path taken as the longest prefix that is a file."""
    parts = rest.split(":")
    for cut in range(len(parts) - 1, 0, -1):
        p = Path(":".join(parts[:cut]))
        if p.is_file():
            fields = parts[cut:]
            if len(fields) > 2 or not all(fields):
                break
            return p, fields[0], (fields[1] if len(fields) == 2 else None)
    raise SourceError(f"jsonl:{rest}: give jsonl:PATH:FIELD or jsonl:PATH:FIELD:LABEL with PATH an existing file")


def _jsonl(rest: str, skip_bad: bool):
    p, field, label = _split_jsonl(rest)
    texts, paths, raw_labels, skipped = [], [], [], []
    for i, line in enumerate(_read(p).split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            value = obj[field]
            lab = obj[label] if label else None
        except (ValueError, KeyError, TypeError) as e:
            if skip_bad:
                skipped.append(f"{p} line {i}")
                continue
            what = "is not a JSON object" if not isinstance(e, KeyError) else f"has no field {e}"
            raise SourceError(f"{p} line {i} {what}; fix it or pass --skip-bad") from e
        t = normalize(str(value))
        if t:
            texts.append(t)
            paths.append(f"{p.name}:{i}")
            raw_labels.append(str(lab) if label else None)
    if not texts:
        raise SourceError(f"{p} holds no items with a {field!r} field")
    y = classes = None
    if label:
        classes = sorted(set(raw_labels))
        y = np.array([classes.index(v) for v in raw_labels], dtype=np.int64)
    return _make(f"jsonl:{rest}", texts, np.zeros(len(texts)), [p.name], paths, y, classes, skipped)


def list_texts(root: Path) -> list[Path]:
    return sorted(
        (f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES),
        key=lambda f: f.relative_to(root).as_posix(),
    )


def is_text_folder(root: Path) -> bool:
    """A folder of text files (and no images): opened as text."""
    from .base import IMAGE_SUFFIXES

    if not root.is_dir():
        return False
    has_text = False
    for f in root.rglob("*"):
        if f.is_file():
            if f.suffix.lower() in IMAGE_SUFFIXES:
                return False
            has_text = has_text or f.suffix.lower() in TEXT_SUFFIXES
    return has_text


def _text_folder(rest: str, per_line: bool, skip_bad: bool):
    root = Path(rest)
    texts, paths, parents, skipped = [], [], [], []
    for f in list_texts(root):
        rel = f.relative_to(root).as_posix()
        raw = _read(f)
        pieces = [(f"{rel}:{i}", r) for i, r in enumerate(raw.split(b"\n"), 1)] if per_line else [(rel, raw)]
        for where, r in pieces:
            t = _decode(r, f"{root / where}", skip_bad, skipped)
            if t:
                texts.append(t)
                paths.append(where)
                parents.append(rel.rsplit("/", 1)[0] if "/" in rel else ".")
    if not texts:
        raise SourceError(f"no text under {root} (looked for {', '.join(sorted(TEXT_SUFFIXES))} files)")
    gnames = sorted(set(parents))
    src = _make(f"folder:{rest}", texts, [gnames.index(p) for p in parents], gnames, paths, skipped=skipped)
    top = [p.split("/", 1)[0] if p != "." else None for p in parents]
    if any(t is None for t in top):
        src.notes.append(f"text files directly in {root} have no class folder: not usable as labelled data")
    else:
        classes = sorted(set(top))
        src.labels = np.array([classes.index(t) for t in top], dtype=np.int64)
        src.class_names = classes
    return src


def _builtin_text(rest: str):
    from . import textcorpus

    _, _, split = rest.partition(":")
    try:
        if split:
            x, y, names = textcorpus.wordnet_target(split)
            g, gnames = np.zeros(len(x)), [rest]
        else:
            (x, g, gnames), y, names = textcorpus.wordnet_pool(), None, None
    except ValueError as e:
        raise SourceError(str(e)) from e
    return _make(f"builtin:{rest}", list(x), g, gnames, [f"{rest}#{i}" for i in range(len(x))], y, names)


TEXT_BUILTINS = ("wordnet",)


def open_text_source(kind: str, rest: str, *, per_line: bool = False, skip_bad: bool = False):
    """A text form (see the module docstring) as a ``Source`` whose ``kind`` is ``"text"``."""
    if kind == "lines":
        return _lines(rest, skip_bad)
    if kind == "jsonl":
        return _jsonl(rest, skip_bad)
    if kind == "builtin":
        return _builtin_text(rest)
    return _text_folder(rest, per_line, skip_bad)
