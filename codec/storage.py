"""Durable file writes: the one atomic write every writer in labelcast uses.

A file is written to a temporary name in the same folder, flushed and fsync'd,
renamed over the target, and the folder is fsync'd so the rename itself survives
a power cut. A reader therefore sees the old file or the new one, never a mix.
Any ``OSError`` (disk full, read-only, permissions) becomes :class:`StorageError`
with the previous file left intact and the temporary removed — also when the
content writer itself fails some other way (torch reports a full disk as a
``RuntimeError``): the temporary never outlives the call. The temporary name is
opened with ``O_EXCL | O_NOFOLLOW``, so a link planted at that name is refused,
never followed.

:func:`check_space` is what a writer calls *before* long work: the folder must be
writable and hold the bytes it will need, or the work does not start.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import StorageError

__all__ = ["atomic_write", "check_space", "free_bytes", "fsync_dir", "replace_durably"]

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


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes free for an unprivileged writer on the file system holding ``path`` (its nearest existing
    ancestor); None where the system cannot say."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} B"


def check_space(folder: str | os.PathLike, need: int = 0, *, what: str = "") -> Path:
    """Refuse (``StorageError``) before long work when ``folder`` cannot be created or written, or holds
    fewer than ``need`` free bytes. Creates the folder; leaves nothing else behind. Returns it."""
    p = Path(folder)
    name = what or str(p)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".labelcast-probe-{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StorageError(f"cannot write {name} in {p}: {e.strerror or e}; choose another folder") from e
    free = free_bytes(p)
    if need and free is not None and free < need:
        raise StorageError(
            f"not enough space for {name} in {p}: needs {_mb(need)}, {_mb(free)} free; free some space and run again",
            path=p,
            needed=need,
        )
    return p


def atomic_write(path: str | os.PathLike, content: Content, *, mode: int | None = None, what: str = "") -> Path:
    """Write ``content`` (bytes, text, or a function that writes to a binary file) to ``path`` atomically.

    ``mode``: file permissions set before the rename (e.g. ``0o600`` for private keys).
    ``what``: how the file is named in the error message (default: its path).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    data = content.encode() if isinstance(content, str) else content
    size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags, 0o600 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        replace_durably(tmp, p)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError) or (isinstance(e, Exception) and _disk_full(p)):
            raise _storage_error(p, what, e, size) from e
        raise
    return p


def _disk_full(p: Path) -> bool:
    free = free_bytes(p.parent)
    return free is not None and free < 64 * 1024


def _storage_error(p: Path, what: str, e: BaseException, size: int) -> StorageError:
    os_reason = getattr(e, "strerror", None) if isinstance(e, OSError) else None
    full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or not isinstance(e, OSError)
    reason = (f"the disk is full ({os_reason})" if os_reason else "the disk is full") if full else (os_reason or str(e))
    free = free_bytes(p.parent)
    need = f"; needs {_mb(size)}" if size else ""
    have = f", {_mb(free)} free" if free is not None else ""
    return StorageError(
        f"cannot write {what or p}: {reason}{need}{have} in {p.parent}; the previous version (if any) is intact",
        path=p,
        needed=size,
    )
