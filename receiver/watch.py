"""``receive --watch INBOX``: an unattended receiver for frames that trickle in from a modem.

Whatever talks to the modem drops one file per frame into INBOX (written atomically by
rename). The :class:`Watcher` keeps nothing in memory that it cannot rebuild: the frames on
disk, the device's replay state, the per-payload work folders (with training checkpoints),
``watch-done.json`` and ``watch-pending.json`` are everything. It owns the state folder while it
runs (:class:`~labelcast.receiver.state.StateLock`): a second watcher or ``receive`` on it exits
at once with ``LockedError``.

Each pass reads only the frame files it has not seen (junk is logged once and moved to
``.junk/``), adds them to one long-lived reassembler (linear in frames), verifies each
payload that has enough frames — once, signature first — and processes them in (key id,
sequence) order, waiting up to ``wait_lower_s`` for a payload of the same key whose *first
frame* announces a lower sequence (a hint read without trusting it: the worst a forger can do
is delay). For each: the order of trust, training (resumable), export, then the A/B decision:
the new model becomes *active* if there is none yet or it agrees better with the teacher's labels
on the payload's held-back items; otherwise it is kept aside as *candidate*.

What a failure means decides what happens next:

* **refused for good** — forged or malformed bytes, a rollback, a fork, a student that cannot fit
  or export: recorded, frames to ``.refused/ID/``; frames of it delivered again are logged and
  set aside;
* **refused until its cause changes** (:data:`RETRY_WHEN`) — a signature that fails against this
  store or an item that differs (``store``), an unknown or revoked key (``trust``), an expiry
  (``time``): recorded with its cause, frames to ``.refused/ID/``; retried when that cause may
  be gone (the store's manifest or the trusted key files changed), when its frames are delivered
  again, or when an operator asks (``labelcast retry ID``);
* **waiting for its parent** — a delta whose parent has not been applied: its frames stay in the
  inbox and it is tried again whenever a chain's head moves;
* **the environment** — a full or read-only disk: retried with exponential backoff from
  ``retry_s`` up to ``max_backoff_s``, never at full speed;
* **anything else** (an unexpected error): retried with the same backoff, and after ``max_tries``
  tries quarantined (recorded, frames to ``.quarantine/ID/``, retried only on request).

A benign replay is recorded as done. The watcher itself never stops on a payload's error.
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
    ExpiredError,
    LabelcastError,
    MissingParentError,
    ReferenceMismatchError,
    ReplayError,
    RevokedKeyError,
    SignatureError,
    StorageError,
    TrustError,
    UnknownKeyError,
)
from ..codec.framing import MAX_FRAME, Reassembler, parse_frame
from ..codec.keys import TrustSet
from ..codec.manifest import ReferenceStore
from ..codec.payload import Verified, peek, verify_payload
from ..codec.storage import atomic_write
from .chain import Chains
from .errors import ExportError, HintError, ModelError
from .receipts import Reporter, partial_event, payload_events, refused_event, status_events
from .receive import ReceiveConfig, receive
from .slots import Slots
from .state import EventLog, StateLock, default_state_dir

__all__ = ["WatchConfig", "Watcher", "WatchStopped", "watch", "request_retry", "RETRY_WHEN"]

# refused for good (ReplayError aside): the same bytes fail the same way again
PERMANENT = (TrustError, DecodeError, BudgetError, ModelError, ExportError, HintError)
# refusals whose cause can change, and what has to change before they are tried again by themselves
RETRY_WHEN: dict[type, str] = {
    SignatureError: "store",  # the signature covers the local store's root: another store fails here
    ReferenceMismatchError: "store",
    UnknownKeyError: "trust",
    RevokedKeyError: "trust",
    ExpiredError: "time",  # a device clock set right again; only on redelivery or request
}


RETRYABLE = ("refused", "quarantined")  # outcomes `labelcast retry` can undo


class WatchStopped(Exception):
    """Raised inside training when the watcher was asked to stop (SIGTERM); the checkpoint resumes it."""


@dataclass
class WatchConfig:
    poll_s: float = 2.0  # seconds between inbox scans
    wait_lower_s: float = 600.0  # how long to wait for an announced lower sequence number
    retry_s: float = 60.0  # first wait before a payload that failed for an environmental reason is tried again
    max_backoff_s: float = 3600.0  # the wait doubles per failure up to this
    max_tries: int = 5  # an unexpected (not environmental) failure this many times: quarantined
    once: bool = False  # one pass, then return (cron jobs, tests)
    max_seconds: float | None = None  # stop after this long (tests)
    field_every: float = 3600.0  # with a field source: seconds between sketches of the captures


def request_retry(state_dir: str | os.PathLike, payload_id: str) -> Path:
    """Ask the device's watcher to try a refused or quarantined payload again (picked up on its next pass)."""
    if not payload_id or any(c not in "0123456789abcdef" for c in payload_id.lower()):
        raise ValueError(f"{payload_id!r} is not a payload id (hex, as `labelcast status` lists it)")
    return atomic_write(Path(state_dir) / "retry" / payload_id.lower(), b"", what="retry request")


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
        reporter: Reporter | None = None,
    ) -> None:
        self.inbox = Path(inbox)
        self.reporter = reporter  # receipts over the return link (None: the device stays silent)
        self._field_at = float("-inf")  # when the field sketch was last made
        self.arrived_at: dict[bytes, float] = {}
        self.store = reference
        self.state = Path(state_dir) if state_dir else default_state_dir()
        self.trust = trust.with_folder(self.state / "trust")  # and the sender keys announced by payloads
        self.cfg = cfg or ReceiveConfig()
        self.wcfg = wcfg or WatchConfig()
        self.slots = Slots(slots_dir or self.state / "slots")
        self.log = EventLog(self.state / "events.jsonl")
        self.done_file = self.state / "watch-done.json"
        self.pending_file = self.state / "watch-pending.json"
        self.done: dict = self._read_json(self.done_file)
        self.pending: dict = {}  # payload id hex -> why it is not done yet (written for `labelcast status`)
        self.frames = Reassembler()
        self.files_of: dict[bytes, list[Path]] = {}
        self.first_blocks: dict[bytes, bytes] = {}
        self.seen: set[str] = set()
        self.verified: dict[bytes, Verified] = {}
        self.waiting_since: dict[str, float] = {}
        self.retry_at: dict[bytes, float] = {}
        self.tries: dict[bytes, int] = {}
        self.parent_wait: dict[bytes, tuple] = {}  # payload -> the chain heads it last failed against
        self.mark = self._store_mark()
        self.world = self._world()
        self.stopping = False
        self.summary = {"processed": 0, "promoted": 0, "kept_aside": 0, "refused": 0, "retrying": 0, "waiting": 0}

    @staticmethod
    def _read_json(f: Path) -> dict:
        try:
            return json.loads(f.read_text()) if f.exists() else {}
        except (OSError, ValueError):
            return {}

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        """Pass over the inbox until stopped (SIGTERM), ``once``, or ``max_seconds``; returns a summary."""
        with StateLock(self.state, "watcher"):
            return self._run()

    def _run(self) -> dict:
        old = signal.signal(signal.SIGTERM, lambda *_: self.stop())
        t_start = time.time()
        self.log("watch started", inbox=str(self.inbox), pid=os.getpid())
        self.report(status_events(self.state, self.store.root))  # on each start: what this device holds
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
        summary = {**self.summary, "stopped": reason, "slots": self.slots.status(), "done": self.done}
        return {**summary, "pending": self.pending}

    def stop(self) -> None:
        self.stopping = True

    def one_pass(self) -> None:
        self.requeue_on_change()
        self.requeue_requested()
        self.scan()
        ready = self.ready()
        self.note_missing()
        for kid, seq, pid, v in sorted(ready, key=lambda r: (r[0], r[1], r[2])):
            if self.stopping:
                raise WatchStopped
            if self.waits_for_lower(pid, kid, seq) or self.parent_still_missing(pid):
                continue
            self.process(pid, v)
        self.write_pending()
        if self.reporter is not None:
            self.report_field()
            for f in self.reporter.flush(status=status_events(self.state, self.store.root)):
                self.log("receipt written", file=f.name, bytes=f.stat().st_size)

    def report_field(self, now: float | None = None) -> None:
        """With --field: the sketch of the captures, re-made at most every ``WatchConfig.field_every`` seconds,
        reported when it changed (with its drift from the last one reported)."""
        now = time.time() if now is None else now
        if self.cfg.field is None or now - self._field_at < self.wcfg.field_every:
            return
        self._field_at = now
        from .receipts import field_event

        e = field_event(self.state, self.store, self.cfg.field)
        if e is not None:
            self.report([e])
            self.log("field sketch", bytes=len(e.sketch), drift=e.drift)

    def report(self, events: list) -> None:
        if self.reporter is not None:
            self.reporter.add(events)

    # -- what changed since a payload was refused -------------------------------------------------
    def parent_still_missing(self, pid: bytes) -> bool:
        """A delta that waits for its parent and no chain head has moved since (heads read only then)."""
        return pid in self.parent_wait and self.parent_wait[pid] == self._heads()

    def _heads(self) -> tuple:
        chains = Chains(self.state)
        keys = sorted(p.name for p in chains.root.iterdir()) if chains.root.is_dir() else []
        return tuple((k, (chains.head_info(bytes.fromhex(k)) or {}).get("digest")) for k in keys)

    def _store_mark(self) -> tuple:
        try:
            st = (self.store.path / "manifest.lcm").stat()
            return st.st_mtime_ns, st.st_size
        except OSError:
            return (None, None)

    def _world(self) -> dict:
        """What a refusal's cause depends on, as stable identifiers (recorded with it, compared each pass)."""
        keys, revoked = self.trust.fingerprint()
        return {"store": self.store.root.hex(), "trust": [k.hex() for k in keys] + [f"-{r.hex()}" for r in revoked]}

    def requeue_on_change(self) -> None:
        """Reload the store and the trusted keys when their files changed, then retry each refusal whose cause
        (store or trust) differs from what it was refused against — also across a restart."""
        if self._store_mark() != self.mark:
            self.mark = self._store_mark()
            try:
                self.store = ReferenceStore(self.store.path)
            except LabelcastError as e:
                self.log("store unreadable, keeping the old one", error=type(e).__name__, message=str(e))
        try:
            self.trust = self.trust.reload()
        except LabelcastError:
            pass  # a key file being written: read again next pass
        world = self._world()
        if world != self.world:
            self.verified.clear()  # verified against the old store or keys
        self.world = world
        for hexid, rec in list(self.done.items()):
            cause = rec.get("retry_when")
            if rec.get("outcome") == "refused" and cause in world and rec.get("world", {}).get(cause) != world[cause]:
                self.requeue(bytes.fromhex(hexid), f"the {cause} changed")

    def requeue_requested(self) -> None:
        """``labelcast retry ID``: a request file per payload id (or id prefix) in STATE/retry/."""
        folder = self.state / "retry"
        if not folder.is_dir():
            return
        for req in sorted(folder.iterdir()):
            hits = [h for h, r in self.done.items() if h.startswith(req.name) and r.get("outcome") in RETRYABLE]
            if not hits:
                self.log("retry request ignored", payload_id=req.name, message="no refused payload has this id")
            for h in hits:
                self.requeue(bytes.fromhex(h), "asked to (labelcast retry)")
            req.unlink(missing_ok=True)

    def requeue(self, pid: bytes, why: str) -> None:
        """Forget a refusal: its frames go back into the inbox and the payload is tried afresh."""
        hexid = pid.hex()
        rec = self.done.pop(hexid, {})
        for kind in ("refused", "quarantine"):
            folder = self.inbox / f".{kind}" / hexid
            for f in sorted(folder.glob("*")) if folder.is_dir() else []:
                self._move(f, self.inbox)
                self.seen.discard(f.name)
        self.retry_at.pop(pid, None)
        self.tries.pop(pid, None)
        self._save_done()
        self.log("retrying refused payload", payload_id=hexid, reason=why, error=rec.get("error"))

    # -- frames -----------------------------------------------------------------------------------
    def scan(self) -> None:
        """Add the frame files not seen before (O(new frames) per pass)."""
        if not self.inbox.exists():
            return
        for f in sorted(self.inbox.iterdir()):
            if f.name in self.seen or not f.is_file() or f.name.startswith(".") or f.suffix == ".tmp":
                continue
            try:
                size = f.stat().st_size
                data = f.read_bytes() if size <= MAX_FRAME else b""  # larger than any frame: junk, unread
            except OSError:
                continue  # being written or gone: the next pass sees it
            self.seen.add(f.name)
            pid = self.frames.add(data)
            if pid is None:
                self.log("junk ignored", file=f.name, bytes=size, message=f"not a frame: {f.name}")
                self._move(f, self.inbox / ".junk")
                continue
            if not self._still_wanted(pid, f):
                continue
            self.files_of.setdefault(pid, []).append(f)
            info = parse_frame(data)
            if info.number == 0:
                self.first_blocks[pid] = info.block

    def _still_wanted(self, pid: bytes, f: Path) -> bool:
        """A frame of a payload already done, refused or quarantined: set aside, or (refused for a cause
        that can change) the payload is tried again — its frames were delivered again."""
        rec = self.done.get(pid.hex())
        if rec is None:
            return True
        if rec.get("outcome") == "refused" and rec.get("retry_when"):
            self.requeue(pid, "frames delivered again")
            return True
        kind = {"refused": "refused", "quarantined": "quarantine"}.get(rec.get("outcome"), "done")
        if kind != "done" and not rec.get("redelivered_logged"):
            rec["redelivered_logged"] = True
            self.log("frames of a refused payload set aside", payload_id=pid.hex(), error=rec.get("error"))
        self.frames.forget(pid)
        self._move(f, self.inbox / f".{kind}" / pid.hex())
        self.seen.discard(f.name)
        return False

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
            self.pending[pid.hex()] = {"state": "frames missing", "needed_more": st["frames_needed_more"]}
            self.nak(pid)

    def nak(self, pid: bytes) -> None:
        """A partial receipt (what each stripe still needs, which frames are held) once the payload has been
        incomplete for the return link's ``nak_after_s``, and again after as long without progress."""
        now = time.time()
        first = self.arrived_at.setdefault(pid, now)
        if self.reporter is None or not self.reporter.nak_due(pid, first, now):
            return
        self.report([partial_event(pid, self.frames.needs(pid), self.frames.held(pid))])
        self.reporter.naked(pid, now)
        self.log("partial reported", payload_id=pid.hex(), needed=sum(self.frames.needs(pid)))

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
        except MissingParentError as e:
            self.wait_for_parent(pid, e)
            return
        except PERMANENT as e:
            self.refuse(pid, e)
            return
        except StorageError as e:
            self.retry(pid, e, environmental=True)
            return
        except Exception as e:  # the watcher survives anything; the payload is tried again later
            self.retry(pid, e)
            return
        self.parent_wait.pop(pid, None)
        self.tries.pop(pid, None)
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
        why = ab_reason(val, active is None)
        if better:
            self.slots.promote(slot)
            self.log("promoted", payload_id=pid.hex(), slot=slot.name, validation=val, message=why)
        else:
            self.slots.keep_aside(slot)
            self.log("kept aside", payload_id=pid.hex(), slot=slot.name, validation=val, message=why)
        self.summary["processed"] += 1
        self.summary["promoted" if better else "kept_aside"] += 1
        outcome = {"outcome": "promoted" if better else "kept aside", "slot": slot.name, "sequence": rep["sequence"]}
        kid = v.header.key_id
        head = Chains(self.state).head_info(kid)
        self.report(payload_events(pid, rep, "promoted" if better else "kept aside", head, kid))
        self.record(pid, {**outcome, "ab": why})
        self.archive(pid, "done")

    def refuse(self, pid: bytes, e: LabelcastError, outcome: str = "refused") -> None:
        """Record a refused payload and move its frames aside; a cause that can change is noted with it."""
        when = next((c for t, c in RETRY_WHEN.items() if type(e) is t), None) if outcome == "refused" else None
        extra = {"retried when": f"the {when} changes, its frames come again, or `labelcast retry`"} if when else {}
        self.log(outcome, payload_id=pid.hex(), error=type(e).__name__, message=str(e), **extra)
        self.summary["refused"] += outcome == "refused"
        entry = {"outcome": outcome, "error": type(e).__name__, "message": str(e), "at": round(time.time(), 3)}
        self.record(pid, {**entry, **({"retry_when": when, "world": self.world} if when else {})})
        if outcome == "refused":
            self.report([refused_event(pid, e, retryable=when is not None)])
        self.archive(pid, "refused" if outcome == "refused" else "done")

    def wait_for_parent(self, pid: bytes, e: MissingParentError) -> None:
        """A delta whose parent is not here: frames stay; tried again when a chain head moves."""
        heads = self._heads()
        if self.parent_wait.get(pid) != heads:
            self.log("waiting for parent", payload_id=pid.hex(), message=str(e))
            self.report([refused_event(pid, e, retryable=True)])  # the ground learns its delta missed
        self.parent_wait[pid] = heads
        self.summary["waiting"] += 1
        self.pending[pid.hex()] = {"state": "waiting for parent", "message": str(e)}

    def retry(self, pid: bytes, e: Exception, environmental: bool = False) -> None:
        """Keep the frames and try again after a growing wait; an unexpected failure repeated ``max_tries``
        times is quarantined instead of being retried forever."""
        n = self.tries[pid] = self.tries.get(pid, 0) + 1
        error, message = type(e).__name__, str(e)
        if not isinstance(e, LabelcastError):
            message = f"{e} ({traceback.format_exc(limit=2).strip().splitlines()[-1]})"
        if not environmental and n >= self.wcfg.max_tries:
            self.log("quarantined", payload_id=pid.hex(), error=error, message=message, tries=n)
            self.record(pid, {"outcome": "quarantined", "error": error, "message": message, "tries": n})
            self.report([refused_event(pid, e, retryable=False)])
            self.summary["refused"] += 1
            self.archive(pid, "quarantine")
            return
        wait = min(self.wcfg.max_backoff_s, self.wcfg.retry_s * 2 ** (n - 1))
        self.retry_at[pid] = time.time() + wait
        self.verified.pop(pid, None)  # verified again next time (the payload may have expired meanwhile)
        self.summary["retrying"] += 1
        self.log("failed, will retry", payload_id=pid.hex(), error=error, message=message, retry_s=wait, tries=n)
        self.pending[pid.hex()] = {"state": "will retry", "error": error, "message": message, "retry_in_s": wait}

    def record(self, pid: bytes, entry: dict) -> None:
        self.done[pid.hex()] = entry
        self.pending.pop(pid.hex(), None)
        self._save_done()

    def _save_done(self) -> None:
        atomic_write(self.done_file, json.dumps(self.done, indent=1), what=f"watcher record {self.done_file}")

    def write_pending(self) -> None:
        live = {h: p for h, p in self.pending.items() if h not in self.done}
        if live != self._read_json(self.pending_file):
            atomic_write(self.pending_file, json.dumps(live, indent=1), what=f"pending list {self.pending_file}")
        self.pending = live

    def archive(self, pid: bytes, kind: str) -> None:
        for f in self.files_of.pop(pid, []):
            self._move(f, self.inbox / f".{kind}" / pid.hex())
            self.seen.discard(f.name)  # gone from the inbox: a file of that name delivered again is read anew
        self.frames.forget(pid)
        self.verified.pop(pid, None)
        self.first_blocks.pop(pid, None)
        self.parent_wait.pop(pid, None)

    @staticmethod
    def _move(f: Path, dest: Path) -> None:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest / f.name)
        except OSError:
            pass  # left in place: harmless, it is recognised as done next time


def ab_reason(val: dict, first: bool) -> str:
    """The A/B decision in words: agreement with the teacher's labels on the held-back items."""
    if first:
        return "no active model yet"
    if not val:
        return "no held-back items in this payload: cannot compare, kept aside (`labelcast model promote` to use it)"
    new, old = val.get("accuracy"), val.get("compare_accuracy")
    if new is None or old is None:
        return "the active model could not be scored on the held-back items: kept aside"
    return f"agreement with the teacher on {val.get('items')} held-back items: new {new:.3f}, active {old:.3f}"


def watch(
    inbox: str | os.PathLike,
    reference: ReferenceStore,
    trust: TrustSet,
    cfg: ReceiveConfig | None = None,
    wcfg: WatchConfig | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    slots_dir: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
) -> dict:
    """Run a :class:`Watcher` until it stops; returns its summary. ``reporter``: receipts for the ground."""
    w = Watcher(inbox, reference, trust, cfg, wcfg, state_dir=state_dir, slots_dir=slots_dir, reporter=reporter)
    return w.run()
