"""Device state: the replay state (last accepted sequence number per key id) and the event log.

One small JSON file per key id in the state directory, replaced atomically
(write, fsync, rename). A payload is *begun* when its training starts and
*accepted* only when the model is exported; a rerun of a begun payload resumes,
a rerun of an accepted one is a replay. ``events.jsonl`` records what every
``receive`` (one-shot or ``--watch``) did, for ``labelcast status``.

:class:`StateLock` makes one process at a time the owner of a state folder:
a watcher holds it for as long as it runs, a one-shot ``receive`` while it
works. A second one exits at once with :class:`LockedError` naming the holder
(an advisory ``flock`` on ``STATE/lock``: released by the kernel when the
holder dies, so a power cut or SIGKILL never leaves a stale lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

from ..codec.errors import LockedError, ReplayError, StaleError, StorageError
from ..codec.storage import atomic_write

__all__ = ["ReplayState", "EventLog", "StateLock", "default_state_dir"]


def default_state_dir() -> Path:
    env = os.environ.get("LABELCAST_STATE_DIR")
    if env:
        return Path(env)
    try:
        from platformdirs import user_state_dir

        return Path(user_state_dir("labelcast"))
    except ImportError:
        return Path.home() / ".local" / "state" / "labelcast"


class ReplayState:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else default_state_dir()

    def _file(self, kid: bytes) -> Path:
        return self.path / f"key-{kid.hex()}.json"

    def read(self, kid: bytes) -> dict:
        f = self._file(kid)
        if not f.exists():
            return {"accepted": 0, "begun": None}
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise StorageError(f"replay state {f} is unreadable ({e}); restore it or remove it deliberately") from e

    def check(self, kid: bytes, seq: int) -> None:
        st = self.read(kid)
        last = int(st.get("accepted", 0))
        if seq == last:
            raise ReplayError(f"payload {seq} from key {kid.hex()} was already accepted; nothing to do")
        if seq < last:
            raise StaleError(
                f"payload {seq} from key {kid.hex()} is older than the accepted {last}; refused (rollback attempt?)"
            )

    def _write(self, kid: bytes, st: dict) -> None:
        f = self._file(kid)
        atomic_write(f, json.dumps(st), what=f"replay state {f}")

    def begin(self, kid: bytes, seq: int, payload_sha256: str) -> None:
        st = self.read(kid)
        st["begun"] = {"sequence": seq, "payload_sha256": payload_sha256}
        self._write(kid, st)

    def accept(self, kid: bytes, seq: int) -> None:
        st = self.read(kid)
        st["accepted"] = max(int(st.get("accepted", 0)), seq)
        st["begun"] = None
        self._write(kid, st)


class EventLog:
    """JSON-lines event log, one fsync'd line per event (a line cut by a power loss is skipped on read)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __call__(self, event: str, **fields) -> None:
        rec = {"ts": round(time.time(), 3), "event": event, **fields}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(rec, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StorageError(f"cannot write the event log {self.path}: {e.strerror}") from e

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a power loss
        return out


class StateLock:
    """Exclusive ownership of a device state folder by one process (a context manager). Re-entrant within
    the process that holds it: the watcher's own ``receive`` calls pass through."""

    _held: dict[str, list[int]] = {}  # real path of the lock file -> [descriptor, holders in this process]

    def __init__(self, state_dir: str | os.PathLike, role: str) -> None:
        self.path = Path(state_dir) / "lock"
        self.role = role
        self._fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _key(self) -> str:
        return os.path.realpath(self.path)

    def acquire(self) -> StateLock:
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the state folder {self.path.parent}: {e.strerror}") from e
        held = StateLock._held.get(self._key())
        if held is not None:
            held[1] += 1
            self._fd = held[0]
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot open the state lock {self.path}: {e.strerror}", path=self.path) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            h = self.holder()
            who = f"{h.get('role', 'a labelcast process')} (pid {h.get('pid', '?')}, since {h.get('since', '?')})"
            raise LockedError(
                f"the device state folder {self.path.parent} is in use by {who}; "
                "one watcher or receive per state folder — stop the other one, or give this one its own --state"
            ) from None
        info = {
            "pid": os.getpid(),
            "role": self.role,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "argv": sys.argv[:6],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        StateLock._held[self._key()] = [fd, 1]
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            held = StateLock._held.get(self._key())
            if held is not None and held[1] > 1:
                held[1] -= 1
                return
            StateLock._held.pop(self._key(), None)
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
