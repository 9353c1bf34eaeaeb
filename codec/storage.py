"""Durable file writes: the one atomic write every writer in labelcast uses.

A file is written to a temporary name in the same folder, flushed and fsync'd,
renamed over the target, and the folder is fsync'd so the rename itself survives
a power cut. A reader therefore sees the old file or the new one, never a mix.
Any ``OSError`` (disk full, read-only, permissions) becomes :class:`StorageError`
with the previous file left intact and the temporary removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import StorageError

__all__ = ["atomic_write", "fsync_dir", "replace_durably"]

Content = bytes | str | Callable[[BinaryIO], None]


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so that renames inside it are durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``os.replace`` then fsync of the destination folder."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def atomic_write(path: str | os.PathLike, content: Content, *, mode: int | None = None, what: str = "") -> Path:
    """Write ``content`` (bytes, text, or a function that writes to a binary file) to ``path`` atomically.

    ``mode``: file permissions set before the rename (e.g. ``0o600`` for private keys).
    ``what``: how the file is named in the error message (default: its path).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(tmp, flags, 0o600 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, str):
                f.write(content.encode())
            elif isinstance(content, bytes | bytearray | memoryview):
                f.write(content)
            else:
                content(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        replace_durably(tmp, p)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise StorageError(
            f"cannot write {what or p}: {e.strerror or e}; the previous version (if any) is intact"
        ) from e
    return p
