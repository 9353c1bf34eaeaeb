"""``receive --watch INBOX``: an unattended receiver for frames that trickle in from a modem.

Whatever talks to the modem drops one file per frame into INBOX (written atomically by
rename). The :class:`Watcher` keeps nothing in memory that it cannot rebuild: the frames on
disk, the device's replay state, the per-payload work folders (with training checkpoints)
and ``watch-done.json`` are everything.

Each pass reads only the frame files it has not seen (junk is logged once and moved to
``.junk/``), adds them to one long-lived reassembler (linear in frames), verifies each
payload that has enough frames — once, signature first — and processes them in (key id,
sequence) order, waiting up to ``wait_lower_s`` for a payload of the same key whose *first
frame* announces a lower sequence (a hint read without trusting it: the worst a forger can do
is delay). For each: the order of trust, training (resumable), export, then the A/B decision:
the new model becomes *active* if there is none yet or it beats the active one on the
payload's held-back validation slice; otherwise it is kept aside as *candidate*.

Failures are sorted by what they mean: an attack or a malformed payload (trust and decode
errors, a student that cannot fit or export) is refused for good and its frames move to
``.refused/``; a replay is benign; anything the environment may fix (disk full, a damaged
reference item, a missing parent, an unexpected error) is logged and retried after
``retry_s`` — its frames stay. The watcher itself never stops on a payload's error.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from ..codec.errors import (
    BudgetError,
    DecodeError,
    ExportError,
    LabelcastError,
    ModelError,
    ReplayError,
    TrustError,
)
from ..codec.framing import Reassembler, parse_frame
from ..codec.keys import TrustSet
from ..codec.manifest import ReferenceStore
from ..codec.payload import Verified, peek, verify_payload
from ..codec.storage import atomic_write
from .receive import ReceiveConfig, receive
from .slots import Slots
from .state import EventLog, default_state_dir

__all__ = ["WatchConfig", "Watcher", "WatchStopped", "watch"]

PERMANENT = (TrustError, DecodeError, BudgetError, ModelError, ExportError)  # refused for good (ReplayError aside)


class WatchStopped(Exception):
    """Raised inside training when the watcher was asked to stop (SIGTERM); the checkpoint resumes it."""


@dataclass
class WatchConfig:
    poll_s: float = 2.0  # seconds between inbox scans
    wait_lower_s: float = 600.0  # how long to wait for an announced lower sequence number
    retry_s: float = 60.0  # a payload that failed for a reason the environment may fix is retried after this
    once: bool = False  # one pass, then return (cron jobs, tests)
    max_seconds: float | None = None  # stop after this long (tests)


class Watcher:
    """One unattended receiver: its configuration, its inbox state and its device state."""

    def __init__(
        self,
        inbox: str | os.PathLike,
        reference: ReferenceStore,
        trust: TrustSet,
        cfg: ReceiveConfig | None = None,
        wcfg: WatchConfig | None = None,
        *,
        state_dir: str | os.PathLike | None = None,
        slots_dir: str | os.PathLike | None = None,
    ) -> None:
        self.inbox = Path(inbox)
        self.store = reference
        self.trust = trust
        self.cfg = cfg or ReceiveConfig()
        self.wcfg = wcfg or WatchConfig()
        self.state = Path(state_dir) if state_dir else default_state_dir()
        self.slots = Slots(slots_dir or self.state / "slots")
        self.log = EventLog(self.state / "events.jsonl")
        self.done_file = self.state / "watch-done.json"
        self.done: dict = json.loads(self.done_file.read_text()) if self.done_file.exists() else {}
        self.frames = Reassembler()
        self.files_of: dict[bytes, list[Path]] = {}
        self.first_blocks: dict[bytes, bytes] = {}
        self.seen: set[str] = set()
        self.verified: dict[bytes, Verified] = {}
        self.waiting_since: dict[str, float] = {}
        self.retry_at: dict[bytes, float] = {}
        self.stopping = False
        self.summary = {"processed": 0, "promoted": 0, "kept_aside": 0, "refused": 0, "retrying": 0}

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        """Pass over the inbox until stopped (SIGTERM), ``once``, or ``max_seconds``; returns a summary."""
        old = signal.signal(signal.SIGTERM, lambda *_: self.stop())
        t_start = time.time()
        self.log("watch started", inbox=str(self.inbox), pid=os.getpid())
        reason = "done"
        try:
            while not self.stopping:
                self.one_pass()
                if self.wcfg.once or (self.wcfg.max_seconds and time.time() - t_start > self.wcfg.max_seconds):
                    break
                for _ in range(int(self.wcfg.poll_s * 10)):
                    if self.stopping:
                        break
                    time.sleep(0.1)
        except WatchStopped:
            pass
        finally:
            signal.signal(signal.SIGTERM, old)
            reason = "SIGTERM" if self.stopping else reason
            self.log("watch stopped", reason=reason)
        return {**self.summary, "stopped": reason, "slots": self.slots.status(), "done": self.done}

    def stop(self) -> None:
        self.stopping = True

    def one_pass(self) -> None:
        self.scan()
        ready = self.ready()
        self.note_missing()
        for kid, seq, pid, v in sorted(ready, key=lambda r: (r[0], r[1], r[2])):
            if self.stopping:
                raise WatchStopped
            if self.waits_for_lower(pid, kid, seq):
                continue
            self.process(pid, v)

    # -- frames -----------------------------------------------------------------------------------
    def scan(self) -> None:
        """Add the frame files not seen before (O(new frames) per pass)."""
        if not self.inbox.exists():
            return
        for f in sorted(self.inbox.iterdir()):
            if f.name in self.seen or not f.is_file() or f.name.startswith(".") or f.suffix == ".tmp":
                continue
            try:
                data = f.read_bytes()
            except OSError:
                continue  # being written or gone: the next pass sees it
            self.seen.add(f.name)
            pid = self.frames.add(data)
            if pid is None:
                self.log("junk ignored", file=f.name, bytes=len(data))
                self._move(f, self.inbox / ".junk")
                continue
            if pid.hex() in self.done:
                self._move(f, self.inbox / ".done" / pid.hex())
                continue
            self.files_of.setdefault(pid, []).append(f)
            info = parse_frame(data)
            if info.number == 0:
                self.first_blocks[pid] = info.block

    def ready(self) -> list[tuple[bytes, int, bytes, Verified]]:
        """Complete payloads, each verified once (signature first); refused ones are archived."""
        out = []
        for pid in self.frames.payload_ids():
            if pid.hex() in self.done or not self.frames.complete(pid) or time.time() < self.retry_at.get(pid, 0):
                continue
            if pid not in self.verified:
                try:
                    data = self.frames.payload(pid)
                    self.verified[pid] = verify_payload(data, self.trust, self.store.root, n_items=self.store.n)
                except LabelcastError as e:
                    self.refuse(pid, e)
                    continue
            v = self.verified[pid]
            out.append((v.header.key_id, v.header.sequence, pid, v))
        return out

    def note_missing(self) -> None:
        for pid in self.frames.payload_ids():
            if pid.hex() in self.done or self.frames.complete(pid):
                continue
            st = self.frames.status(pid)
            key = f"{pid.hex()}:{st['frames_received']}"
            if key not in self.waiting_since:  # log progress once per new frame count
                self.waiting_since[key] = time.time()
                self.log(
                    "frames missing",
                    payload_id=pid.hex(),
                    received=st["frames_received"],
                    needed_more=st["frames_needed_more"],
                )

    def waits_for_lower(self, pid: bytes, kid: bytes, seq: int) -> bool:
        """True while a payload of the same key announcing a lower sequence is still arriving."""
        lower = [
            a
            for q, b in self.first_blocks.items()
            if q != pid and q.hex() not in self.done and not self.frames.complete(q)
            for a in [peek(b)]
            if a is not None and a.key_id == kid and a.sequence is not None and a.sequence < seq
        ]
        if not lower:
            return False
        since = self.waiting_since.setdefault(pid.hex(), time.time())
        return time.time() - since < self.wcfg.wait_lower_s

    # -- one payload ------------------------------------------------------------------------------
    def process(self, pid: bytes, v: Verified) -> None:
        work = self.state / "watch" / pid.hex()
        try:
            rep = self._receive(pid, v, work)
        except ReplayError as e:
            report = work / "model" / "receive-report.json"
            if not report.exists():
                self.refuse(pid, e, outcome="replay")
                return
            rep = json.loads(report.read_text())  # accepted just before a power cut: finish the slot step
        except WatchStopped:
            raise
        except PERMANENT as e:
            self.refuse(pid, e)
            return
        except LabelcastError as e:
            self.retry(pid, type(e).__name__, str(e))
            return
        except Exception as e:  # the watcher survives anything; the payload is tried again later
            self.retry(pid, type(e).__name__, f"{e} ({traceback.format_exc(limit=2).strip().splitlines()[-1]})")
            return
        self.install(pid, v, rep, work)

    def _receive(self, pid: bytes, v: Verified, work: Path) -> dict:
        atomic_write(work / "payload.lcst", v.data, what=f"payload copy in {work}")
        self.log("verified, training", payload_id=pid.hex(), sequence=v.header.sequence)
        active = self.slots.get("active")
        rc = replace(self.cfg, compare_model=str(active / "student.onnx") if active else None)

        def progress(_n: int) -> None:
            if self.stopping:
                raise WatchStopped

        return receive(
            v, self.store, self.trust, work / "model", rc, state_dir=self.state, resume=True, progress=progress
        )

    def install(self, pid: bytes, v: Verified, rep: dict, work: Path) -> None:
        """The A/B step: the new model becomes active if it beats the active one, else the candidate."""
        val = rep.get("validation") or {}
        meta = {
            "payload_id": pid.hex(),
            "sequence": rep["sequence"],
            "key_id": rep["key_id"],
            "validation": val,
            "payload_sha256": hashlib.sha256(v.data).hexdigest(),
        }
        slot = self.slots.add(work / "model" / "student.onnx", pid.hex()[:8] + f"-s{rep['sequence']}", meta)
        active = self.slots.get("active")
        better = active is None or bool(val and val.get("accuracy", 0) > val.get("compare_accuracy", 1.0))
        if active is not None and active.resolve() == slot.resolve():
            better = False
        if better:
            self.slots.promote(slot)
            self.log("promoted", payload_id=pid.hex(), slot=slot.name, validation=val)
        else:
            self.slots.keep_aside(slot)
            self.log("kept aside", payload_id=pid.hex(), slot=slot.name, validation=val)
        self.summary["processed"] += 1
        self.summary["promoted" if better else "kept_aside"] += 1
        self.record(
            pid, {"outcome": "promoted" if better else "kept aside", "slot": slot.name, "sequence": rep["sequence"]}
        )
        self.archive(pid, "done")

    def refuse(self, pid: bytes, e: LabelcastError, outcome: str = "refused") -> None:
        """Record a refused payload once (it is not tried again) and move its frames aside."""
        self.log(outcome, payload_id=pid.hex(), error=type(e).__name__, message=str(e))
        self.summary["refused"] += 1
        self.record(pid, {"outcome": outcome, "error": type(e).__name__})
        self.archive(pid, "refused" if outcome == "refused" else "done")

    def retry(self, pid: bytes, error: str, message: str) -> None:
        """A failure the environment may fix: keep the frames, log, try again after ``retry_s``."""
        self.retry_at[pid] = time.time() + self.wcfg.retry_s
        self.verified.pop(pid, None)  # verified again next time (the payload may have expired meanwhile)
        self.summary["retrying"] += 1
        self.log("failed, will retry", payload_id=pid.hex(), error=error, message=message, retry_s=self.wcfg.retry_s)

    def record(self, pid: bytes, entry: dict) -> None:
        self.done[pid.hex()] = entry
        atomic_write(self.done_file, json.dumps(self.done, indent=1), what=f"watcher record {self.done_file}")

    def archive(self, pid: bytes, kind: str) -> None:
        for f in self.files_of.pop(pid, []):
            self._move(f, self.inbox / f".{kind}" / pid.hex())
        self.frames.forget(pid)
        self.verified.pop(pid, None)
        self.first_blocks.pop(pid, None)

    @staticmethod
    def _move(f: Path, dest: Path) -> None:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest / f.name)
        except OSError:
            pass  # left in place: harmless, it is recognised as done next time


def watch(
    inbox: str | os.PathLike,
    reference: ReferenceStore,
    trust: TrustSet,
    cfg: ReceiveConfig | None = None,
    wcfg: WatchConfig | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    slots_dir: str | os.PathLike | None = None,
) -> dict:
    """Run a :class:`Watcher` until it stops; returns its summary."""
    return Watcher(inbox, reference, trust, cfg, wcfg, state_dir=state_dir, slots_dir=slots_dir).run()
