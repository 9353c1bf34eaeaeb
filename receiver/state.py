"""Device state: the replay state (last accepted sequence number per key id) and the event log.

One small JSON file per key id in the state directory, replaced atomically
(write, fsync, rename). A payload is *begun* when its training starts and
*accepted* only when the model is exported; a rerun of a begun payload resumes,
a rerun of an accepted one is a replay. ``events.jsonl`` records what every
``receive`` (one-shot or ``--watch``) did, for ``labelcast status``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..codec.errors import ReplayError, StaleError, StorageError
from ..codec.storage import atomic_write

__all__ = ["ReplayState", "EventLog", "default_state_dir"]


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
