"""``receive --watch INBOX``: an unattended receiver for frames that trickle in from a modem.

Whatever talks to the modem drops one file per frame into INBOX (written
atomically by rename). The watcher keeps no state in memory that it cannot
rebuild: the frames on disk, the device-wide replay state, the per-payload work
folders (with training checkpoints) and ``watch-done.json`` are everything.

Each pass: read every frame file (junk is logged once and moved to ``.junk/``),
rebuild every payload that has enough frames, verify each (signature first),
and process them in (key id, sequence) order — waiting, up to ``wait_lower_s``,
for a payload of the same key whose *first frame* announces a lower sequence
(a hint read without trusting it: the worst a forger can do is delay). For each:
the full order of trust, training (resumable), export, then the A/B decision:
the new model becomes *active* if there is none yet or it beats the active one
on the payload's held-back validation slice; otherwise it is kept aside as
*candidate*. Frames of a finished payload move to ``.done/``. A payload is never
trained twice (its hash is recorded, and the replay state refuses it anyway).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..codec.errors import LabelcastError, ReplayError, StorageError
from ..codec.framing import FRAME_MAGIC, Reassembler, parse_frame
from ..codec.keys import TrustSet
from ..codec.payload import open_payload
from .receive import ReceiveConfig, receive
from .slots import Slots
from .state import default_state_dir

__all__ = ["WatchConfig", "EventLog", "watch"]


class _Stop(Exception):
    pass


@dataclass
class WatchConfig:
    poll_s: float = 2.0  # seconds between inbox scans
    wait_lower_s: float = 600.0  # how long to wait for an announced lower sequence number
    once: bool = False  # one pass, then return (cron jobs, tests)
    max_seconds: float | None = None  # stop after this long (tests)


class EventLog:
    """JSON-lines event log, one fsync'd line per event."""

    def __init__(self, path: Path) -> None:
        self.path = path

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


def _announced_sequence(first_block: bytes) -> tuple[bytes, int] | None:
    """(key id, sequence) from the start of a payload, unverified; None if unreadable."""
    if len(first_block) < 16 or first_block[:4] != b"LCST":
        return None
    kid, v, shift = first_block[6:14], 0, 0
    for b in first_block[14:24]:
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return kid, v
    return None


def watch(
    inbox: str | os.PathLike,
    reference,
    trust: TrustSet,
    cfg: ReceiveConfig | None = None,
    wcfg: WatchConfig | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    slots_dir: str | os.PathLike | None = None,
) -> dict:
    cfg = cfg or ReceiveConfig()
    wcfg = wcfg or WatchConfig()
    inbox = Path(inbox)
    state = Path(state_dir) if state_dir else default_state_dir()
    slots = Slots(slots_dir or state / "slots")
    log = EventLog(state / "events.jsonl")
    done_file = state / "watch-done.json"
    done: dict = json.loads(done_file.read_text()) if done_file.exists() else {}
    stop = {"flag": False}

    def on_term(*_):
        stop["flag"] = True

    old = signal.signal(signal.SIGTERM, on_term)
    t_start = time.time()
    junk_seen: set[str] = set()
    waiting_since: dict[str, float] = {}
    log("watch started", inbox=str(inbox), pid=os.getpid())
    try:
        while not stop["flag"]:
            _one_pass(
                inbox, reference, trust, cfg, wcfg, state, slots, log, done, done_file, junk_seen, waiting_since, stop
            )
            if wcfg.once or (wcfg.max_seconds and time.time() - t_start > wcfg.max_seconds):
                break
            for _ in range(int(wcfg.poll_s * 10)):
                if stop["flag"]:
                    break
                time.sleep(0.1)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        log("watch stopped", reason="SIGTERM" if stop["flag"] else "done")
    return {"done": done, "slots": slots.status()}


def _save_done(done_file: Path, done: dict) -> None:
    tmp = done_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(done, indent=1))
    os.replace(tmp, done_file)


def _one_pass(inbox, reference, trust, cfg, wcfg, state, slots, log, done, done_file, junk_seen, waiting_since, stop):
    r = Reassembler()
    files_of: dict[bytes, list[Path]] = {}
    first_blocks: dict[bytes, bytes] = {}
    if not inbox.exists():
        return
    for f in sorted(inbox.iterdir()):
        if not f.is_file() or f.name.startswith(".") or f.suffix == ".tmp":
            continue
        try:
            data = f.read_bytes()
        except OSError:
            continue
        pid = r.add(data)
        if pid is None:
            if f.name not in junk_seen:
                junk_seen.add(f.name)
                log("junk ignored", file=f.name, bytes=len(data))
                (inbox / ".junk").mkdir(exist_ok=True)
                os.replace(f, inbox / ".junk" / f.name)
            continue
        files_of.setdefault(pid, []).append(f)
        info = parse_frame(data)
        if info.number == 0 and data[0] == FRAME_MAGIC:
            first_blocks[pid] = info.block
    ready = []
    for pid in r.payload_ids():
        if pid.hex() in done:
            _archive(inbox, pid, files_of.get(pid, []), "done")
            continue
        if not r.complete(pid):
            continue
        payload = r.payload(pid)
        try:
            store_root = reference.root
            head = open_payload(payload, trust, store_root, n_items=reference.n, decode=False)
        except LabelcastError as e:
            _refuse(log, done, done_file, inbox, pid, files_of, e)
            continue
        ready.append((head.header.key_id, head.header.sequence, pid, payload))
    incomplete = {
        pid: first_blocks.get(pid) for pid in r.payload_ids() if not r.complete(pid) and pid.hex() not in done
    }
    for pid in incomplete:
        st = r.status(pid)
        key = f"{pid.hex()}:{st['frames_received']}"
        if key not in waiting_since:  # log progress once per new frame count
            waiting_since[key] = time.time()
            log(
                "frames missing",
                payload_id=pid.hex(),
                received=st["frames_received"],
                needed_more=st["frames_needed_more"],
            )
    for kid, seq, pid, payload in sorted(ready):
        if stop["flag"]:
            raise _Stop
        lower = [
            a for a in (_announced_sequence(b) for b in incomplete.values() if b) if a and a[0] == kid and a[1] < seq
        ]
        if lower:
            since = waiting_since.setdefault(pid.hex(), time.time())
            if time.time() - since < wcfg.wait_lower_s:
                continue  # a lower sequence is on its way: process it first
        _process(inbox, reference, trust, cfg, state, slots, log, done, done_file, pid, payload, files_of, stop)


def _process(inbox, reference, trust, cfg, state, slots, log, done, done_file, pid, payload, files_of, stop):
    work = state / "watch" / pid.hex()
    work.mkdir(parents=True, exist_ok=True)
    pfile = work / "payload.lcst"
    if not pfile.exists():
        pfile.write_bytes(payload)
    log("verified, training", payload_id=pid.hex())
    active = slots.get("active")
    rc = ReceiveConfig(**{**cfg.__dict__, "compare_model": str(active / "student.onnx") if active else None})

    def progress(_n):
        if stop["flag"]:
            raise _Stop

    try:
        rep = receive(pfile, reference, trust, work / "model", rc, state_dir=state, resume=True, progress=progress)
    except ReplayError as e:
        report = work / "model" / "receive-report.json"
        if not report.exists():
            _refuse(log, done, done_file, inbox, pid, files_of, e)
            return
        rep = json.loads(report.read_text())  # trained before a power cut: finish the slot step
    except LabelcastError as e:
        _refuse(log, done, done_file, inbox, pid, files_of, e)
        return
    val = rep.get("validation") or {}
    meta = {
        "payload_id": pid.hex(),
        "sequence": rep["sequence"],
        "key_id": rep["key_id"],
        "validation": val,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    slot = slots.add(work / "model" / "student.onnx", pid.hex()[:8] + f"-s{rep['sequence']}", meta)
    active = slots.get("active")
    better = active is None or (val and val.get("accuracy", 0) > val.get("compare_accuracy", 1.0))
    if active is not None and active.resolve() == slot.resolve():
        better = False
    if better:
        slots.promote(slot)
        log("promoted", payload_id=pid.hex(), slot=slot.name, validation=val)
    else:
        slots.keep_aside(slot)
        log("kept aside", payload_id=pid.hex(), slot=slot.name, validation=val)
    done[pid.hex()] = {
        "outcome": "promoted" if better else "kept aside",
        "slot": slot.name,
        "sequence": rep["sequence"],
    }
    _save_done(done_file, done)
    _archive(inbox, pid, files_of.get(pid, []), "done")


def _refuse(log, done, done_file, inbox, pid, files_of, e: LabelcastError) -> None:
    """Record a refused payload once (it is not tried again) and move its frames aside."""
    log("refused", payload_id=pid.hex(), error=type(e).__name__, message=str(e))
    done[pid.hex()] = {"outcome": "refused", "error": type(e).__name__}
    _save_done(done_file, done)
    _archive(inbox, pid, files_of.get(pid, []), "refused")


def _archive(inbox: Path, pid: bytes, files: list[Path], kind: str) -> None:
    dest = inbox / f".{kind}" / pid.hex()
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        try:
            os.replace(f, dest / f.name)
        except OSError:
            pass
