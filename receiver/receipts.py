"""The device's side of the return link: events become signed receipts, one file per return message.

:class:`Reporter` keeps what is not yet sent in ``STATE/receipts.json`` (the counter, the pending events,
what went out in the last hour), so a power cut loses no event and never reuses a counter. ``add`` coalesces
(a newer state of a payload, a chain or the store supersedes the pending one); ``flush`` packs the pending
events into receipts that each fit the link's return message and writes them, atomically, as
``DIR/receipt-<counter>.lcr`` — whatever talks to the modem sends them — within the hour's byte cap
(``[return] bytes_per_hour``); what does not fit the cap stays pending for the next flush.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..codec.errors import BudgetError, LabelcastError
from ..codec.keys import key_id, load_private_key
from ..codec.receipts import (
    Event,
    coalesce,
    encode_receipt,
    encode_sealed_receipt,
    event_bytes,
    event_from_bytes,
    pack_events,
)
from ..codec.storage import atomic_write
from ..profiles import ReturnLink

__all__ = ["Reporter", "RECEIPT_SUFFIX", "partial_event", "payload_events", "refused_event", "status_events"]

RECEIPT_SUFFIX = ".lcr"
MIN_SIGNED = 120  # a signed status receipt (accepted, head and store: 115 B) must fit one return message
MIN_SEALED = 48  # a sealed receipt of one head event (47 B) must fit: a LoRaWAN DR0 uplink carries 51 B


class Reporter:
    """Receipts for one device: ``add`` events, ``flush`` them into ``out`` as return messages allow."""

    def __init__(
        self,
        out: str | os.PathLike,
        key: str | os.PathLike,
        state_dir: str | os.PathLike,
        link: ReturnLink | None = None,
        *,
        bytes_per_hour: int | None = None,
        seal_to: Ed25519PublicKey | None = None,
    ) -> None:
        self.out = Path(out)
        self.key = load_private_key(key)
        self.device = key_id(self.key.public_key())
        self.link = link or ReturnLink()
        self.cap = bytes_per_hour if bytes_per_hour is not None else self.link.bytes_per_hour
        self.seal_to = seal_to  # the ground's key: receipts sealed to it (a 16-byte tag; docs/security.md)
        if seal_to is not None and self.link.message_bytes < MIN_SEALED:
            raise BudgetError(
                f"a sealed status receipt needs {MIN_SEALED} B; this return link carries {self.link.message_bytes} B"
            )
        if seal_to is None and self.link.message_bytes < MIN_SIGNED:
            raise BudgetError(
                f"a signed receipt needs about {MIN_SIGNED} B; this return link carries {self.link.message_bytes} B "
                "a message: seal the receipts to the ground's key (--seal-receipts; 48 B will do)"
            )
        self.file = Path(state_dir) / "receipts.json"
        st = self._read()
        self.counter: int = int(st.get("counter", 0))
        self.pending: list[Event] = [event_from_bytes(bytes.fromhex(h)) for h in st.get("pending", [])]
        self.sent: list[list[float]] = [s for s in st.get("sent", []) if isinstance(s, list) and len(s) == 2]
        self.naks: dict[str, float] = dict(st.get("naks", {}))

    def _read(self) -> dict:
        try:
            st = json.loads(self.file.read_text()) if self.file.exists() else {}
            return st if isinstance(st, dict) and st.get("device") in (None, self.device.hex()) else {}
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        st = {
            "device": self.device.hex(),
            "counter": self.counter,
            "pending": [event_bytes(e).hex() for e in self.pending],
            "sent": self.sent,
            "naks": self.naks,
        }
        atomic_write(self.file, json.dumps(st), what=f"receipt state {self.file}")

    def add(self, events: list[Event]) -> None:
        """Queue events (a newer state of the same payload, chain or store replaces a pending one)."""
        if events:
            self.pending = coalesce(self.pending, events)
            self._save()

    def room(self, now: float) -> int:
        """Receipt bytes the hour's cap still allows."""
        self.sent = [s for s in self.sent if now - s[0] < 3600.0]
        return self.cap - int(sum(s[1] for s in self.sent))

    def flush(self, now: float | None = None, status: list[Event] | None = None) -> list[Path]:
        """Write the pending events as receipts (one file each) while the hour's cap allows; returns the files.

        ``status`` (the chain heads and the store the device holds) rides along whenever anything else goes:
        a receipt lost on the return link is made good by the next one, whatever it reports."""
        now = time.time() if now is None else now
        if self.pending and status:
            self.pending = coalesce(self.pending, status)
        written: list[Path] = []
        sealed = self.seal_to is not None
        top = self.counter + len(self.pending)  # the widest counter these receipts can have
        groups = pack_events(self.pending, self.link.message_bytes, sealed, top) if self.pending else []
        for group in groups:
            self.counter += 1  # recorded before the file exists: a counter is never used twice
            if sealed:
                data = encode_sealed_receipt(self.key, self.seal_to, self.counter, int(now), group)
            else:
                data = encode_receipt(self.key, self.counter, int(now), group)
            if len(data) > self.room(now):
                self.counter -= 1
                break
            self._save()
            path = atomic_write(self.out / f"receipt-{self.counter:08d}{RECEIPT_SUFFIX}", data, what="receipt")
            self.sent.append([now, len(data)])
            sent = {id(e) for e in group}
            self.pending = [e for e in self.pending if id(e) not in sent]
            written.append(path)
        if written:
            self._save()
        return written

    def nak_due(self, pid: bytes, first_seen: float, now: float) -> bool:
        """Whether a partial receipt for ``pid`` is due: incomplete for ``nak_after_s``, and none sent since."""
        after = self.link.nak_after_s
        return now - first_seen >= after and now - self.naks.get(pid.hex(), -1e18) >= after

    def naked(self, pid: bytes, now: float) -> None:
        self.naks[pid.hex()] = now
        self._save()


def refused_event(pid: bytes, e: LabelcastError | Exception, retryable: bool) -> Event:
    return Event("refused", pid, code=int(getattr(e, "exit_code", 1)), retryable=retryable)


def status_events(state_dir: str | os.PathLike, root: bytes) -> list[Event]:
    """What the device holds: one head event per chain, and its store."""
    from .chain import Chains

    chains = Chains(state_dir)
    events = [Event("store", digest=root[:8])]
    for d in sorted(chains.root.iterdir()) if chains.root.is_dir() else []:
        try:
            kid = bytes.fromhex(d.name)
            head = chains.head_info(kid)
        except (ValueError, OSError):
            continue
        if head and head.get("digest"):
            events.append(
                Event("head", sender=kid, sequence=int(head["sequence"]), digest=bytes.fromhex(head["digest"]))
            )
    return events


def field_event(state_dir: str | os.PathLike, store, source) -> Event | None:
    """The field sketch of the device's captures ``source`` as a receipt event, with its drift from the last
    sketch reported (``codec.field.divergence``; the ground flags ≥ ``DRIFT_THRESHOLD``); None when the sketch
    has not changed since. The group centroids are computed once per store and kept in ``STATE/field``."""
    import numpy as np

    from ..codec.field import decode_sketch, divergence, encode_sketch, group_centroids, make_sketch
    from ..codec.storage import atomic_write
    from .field import field_images

    d = Path(state_dir) / "field"
    cache = d / f"centroids-{store.root[:8].hex()}.npy"
    if cache.is_file():
        cent = np.load(cache)
    else:
        cent = group_centroids(store)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, lambda f: np.save(f, cent), what=f"field centroids {cache}")
    sketch = make_sketch(field_images(source, store), store, cent)
    data, last = encode_sketch(sketch), d / "last.lcfs"
    before = last.read_bytes() if last.is_file() else None
    if before == data:
        return None
    drift = None
    if before is not None:
        prev = decode_sketch(before)
        drift = divergence(prev, sketch) if prev.levels.size == sketch.levels.size else 1.0
    atomic_write(last, data, what=f"field sketch {last}")
    return Event("field", sketch=data, drift=drift)


def partial_event(pid: bytes, needed: list[int], held: tuple[int, bytes] | None) -> Event:
    frames, bits = held if held is not None else (0, None)
    return Event("partial", pid, needed=tuple(needed), frames=frames, held=bits)


def payload_events(pid: bytes, rep: dict, action: str | None, head: dict | None, kid: bytes) -> list[Event]:
    """What a trained payload tells the ground: accepted, trained, the model step, the chain head."""
    onnx = Path(rep.get("export", {}).get("onnx", ""))
    digest = hashlib.sha256(onnx.read_bytes()).digest()[:8] if onnx.is_file() else b"\0" * 8
    val = rep.get("validation") or {}
    tr = rep.get("training") or {}
    events = [
        Event("accepted", pid, sequence=int(rep.get("sequence", 0))),
        Event(
            "trained",
            pid,
            digest=digest,
            accuracy=val.get("accuracy"),
            seconds=int(round(tr.get("train_seconds", 0))),
            peak_mb=int(round((tr.get("peak_training_bytes") or 0) / (1 << 20))),
        ),
    ]
    if action:
        events.append(Event("model", pid, action=action))
    if head and head.get("digest"):
        events.append(Event("head", sender=kid, sequence=int(head["sequence"]), digest=bytes.fromhex(head["digest"])))
    return events
