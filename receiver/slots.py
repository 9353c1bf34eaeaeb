"""A/B model slots (as RAUC and Mender do for firmware).

    SLOTS/
      m-<payload id>/student.onnx, meta.json   one folder per trained model, complete before it is linked
      active   -> m-…                          the model in service (a symlink, replaced atomically)
      previous -> m-…                          what ``rollback`` returns to
      candidate -> m-…                         the last model kept aside (not promoted)

Promotion is one ``rename`` of a fresh symlink over ``active``: a reader that
opens ``SLOTS/active/student.onnx`` sees the old model or the new one, never a
half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..codec.errors import StorageError
from .errors import SlotError

__all__ = ["Slots", "SlotError"]


class Slots:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def _link(self, name: str, target: str) -> None:
        tmp = self.path / f".{name}.tmp"
        try:
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(target, tmp)
            os.replace(tmp, self.path / name)
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise StorageError(f"cannot update slot link {name} in {self.path}: {e.strerror}") from e

    def get(self, name: str) -> Path | None:
        link = self.path / name
        if not link.is_symlink():
            return None
        target = self.path / os.readlink(link)
        return target if (target / "student.onnx").exists() else None

    def add(self, model: Path, slot_id: str, meta: dict) -> Path:
        """Copy a finished model into its own slot folder (complete before anything links to it)."""
        dest = self.path / f"m-{slot_id}"
        tmp = self.path / f".m-{slot_id}.tmp"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                return dest
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            shutil.copyfile(model, tmp / "student.onnx")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            for f in (tmp / "student.onnx", tmp / "meta.json"):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StorageError(f"cannot store the model in {self.path}: {e.strerror}") from e
        return dest

    def promote(self, slot: Path) -> None:
        cur = self.get("active")
        if cur is not None and cur.resolve() != slot.resolve():
            self._link("previous", cur.name)
        self._link("active", slot.name)

    def keep_aside(self, slot: Path) -> None:
        self._link("candidate", slot.name)

    def promote_candidate(self) -> Path:
        cand = self.get("candidate")
        if cand is None:
            raise SlotError(f"no candidate model in {self.path}")
        self.promote(cand)
        (self.path / "candidate").unlink(missing_ok=True)
        return cand

    def rollback(self) -> Path:
        prev = self.get("previous")
        if prev is None:
            raise SlotError(f"no previous model to roll back to in {self.path}")
        cur = self.get("active")
        self._link("active", prev.name)
        if cur is not None:
            self._link("previous", cur.name)
        return prev

    def status(self) -> dict:
        out = {}
        for name in ("active", "previous", "candidate"):
            s = self.get(name)
            meta = {}
            if s is not None:
                try:
                    meta = json.loads((s / "meta.json").read_text())
                except (OSError, ValueError):
                    meta = {"error": "meta.json unreadable"}
            out[name] = {"slot": s.name if s else None, **meta}
        out["models"] = sorted(p.name for p in self.path.glob("m-*")) if self.path.exists() else []
        return out
