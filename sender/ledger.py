"""The fleet ledger: what the ground knows of every device, kept in one SQLite file.

Devices are registered by their receipt key (``keygen --role device``) with the store root, link and
device profile they run. ``send --to`` records every payload it makes for them; ``ingest`` reads their
receipts (verified against the registered key; a counter seen before is a replay) and moves each
device's state: the chain head it holds, what it accepted, refused, trained and promoted, and what it
still needs of a payload (a NAK), which ``repair`` answers with fresh erasure-code blocks.

The file is SQLite in WAL mode (readers never wait for the writer); every change is one ``BEGIN
IMMEDIATE`` transaction, so two writers serialise (the second waits up to ``busy_s``) and a crash
mid-batch leaves every receipt either applied whole or not at all. ``PRAGMA user_version`` is the
schema version; :data:`MIGRATIONS` bring an older file up to date when it is opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..codec.errors import DecodeError, LabelcastError, ReplayError, UnknownKeyError
from ..codec.keys import key_id, load_public_key
from ..codec.receipts import Event, Receipt, decode_receipt, missing_frames, verify_receipt

__all__ = [
    "Ledger",
    "LedgerError",
    "Device",
    "default_ledger_path",
    "SCHEMA_VERSION",
    "STATES",
]

SCHEMA_VERSION = 2
# a delivery only moves forward; an older receipt arriving late never takes a device back
STATES = {"sent": 0, "partial": 1, "accepted": 2, "refused": 2, "trained": 3, "promoted": 4, "kept aside": 4}
STATES["rolled back"] = 5

MIGRATIONS = {
    1: [
        """CREATE TABLE devices (
            name TEXT PRIMARY KEY, key_id TEXT UNIQUE NOT NULL, public_key TEXT NOT NULL, root TEXT NOT NULL,
            reference TEXT, link TEXT NOT NULL, device_profile TEXT NOT NULL, added_at REAL NOT NULL,
            last_seen REAL, last_counter INTEGER, reported_root TEXT,
            head_sender TEXT, head_sequence INTEGER, head_digest TEXT, last_accuracy REAL)""",
        """CREATE TABLE payloads (
            pid TEXT PRIMARY KEY, sha256 TEXT NOT NULL, sequence INTEGER NOT NULL, sender TEXT NOT NULL,
            root TEXT NOT NULL, parent TEXT, set_digest TEXT NOT NULL, outbox TEXT NOT NULL, link TEXT NOT NULL,
            frame_bytes INTEGER NOT NULL, parity INTEGER NOT NULL, frames INTEGER NOT NULL, bytes INTEGER NOT NULL,
            created_at REAL NOT NULL)""",
        """CREATE TABLE deliveries (
            device TEXT NOT NULL REFERENCES devices(name) ON DELETE CASCADE, pid TEXT NOT NULL REFERENCES payloads(pid),
            state TEXT NOT NULL, code INTEGER, retryable INTEGER, needed TEXT, held TEXT, held_frames INTEGER,
            nak_time INTEGER, repaired_nak INTEGER, repair_frames INTEGER NOT NULL DEFAULT 0, accuracy REAL,
            student TEXT, updated_at REAL NOT NULL, PRIMARY KEY (device, pid))""",
        """CREATE TABLE receipts (
            device TEXT NOT NULL, counter INTEGER NOT NULL, time INTEGER NOT NULL, received_at REAL NOT NULL,
            bytes INTEGER NOT NULL, events TEXT NOT NULL, PRIMARY KEY (device, counter))""",
        """CREATE TABLE repairs (
            pid TEXT NOT NULL, stripe INTEGER NOT NULL, next_fresh INTEGER NOT NULL, PRIMARY KEY (pid, stripe))""",
    ],
    # the device's field sketch (receipt event 8): what its captures look like, and how far it moved
    2: [
        "ALTER TABLE devices ADD COLUMN field_sketch BLOB",
        "ALTER TABLE devices ADD COLUMN field_drift REAL",
        "ALTER TABLE devices ADD COLUMN field_time INTEGER",
    ],
}


class LedgerError(LabelcastError):
    """The fleet ledger refused an operation: an unknown or duplicate device, a store that does not match,
    a newer schema than this version knows, or a file that cannot be opened."""

    exit_code = 23


def default_ledger_path() -> Path:
    """``$LABELCAST_LEDGER``, else ``ledger.sqlite`` in the user's data folder."""
    env = os.environ.get("LABELCAST_LEDGER")
    if env:
        return Path(env)
    try:
        from platformdirs import user_data_dir

        return Path(user_data_dir("labelcast")) / "ledger.sqlite"
    except ImportError:
        return Path.home() / ".local" / "share" / "labelcast" / "ledger.sqlite"


@dataclass(frozen=True)
class Device:
    name: str
    key_id: str
    root: str
    link: str
    device_profile: str
    reference: str | None = None
    last_seen: float | None = None
    head_digest: str | None = None
    head_sequence: int | None = None
    head_sender: str | None = None
    last_accuracy: float | None = None
    reported_root: str | None = None
    field_sketch: bytes | None = None
    field_drift: float | None = None
    field_time: int | None = None

    @property
    def drifting(self) -> bool:
        """The device's last field sketch moved at least ``codec.field.DRIFT_THRESHOLD`` from the one before."""
        from ..codec.field import DRIFT_THRESHOLD

        return self.field_drift is not None and self.field_drift >= DRIFT_THRESHOLD


class Ledger:
    """One ledger file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike | None = None, *, busy_s: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_ledger_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=busy_s, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"cannot open the ledger {self.path}: {e}") from e
        except OSError as e:
            raise LedgerError(f"cannot open the ledger {self.path}: {e.strerror}") from e

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Fold the write-ahead log into the file (a closed ledger is one file) and close."""
        with contextlib.suppress(sqlite3.DatabaseError):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction, the only writer while it runs (others wait up to ``busy_s``)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise LedgerError(f"the ledger {self.path} is busy (another writer holds it): {e}") from e
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        have = self.db.execute("PRAGMA user_version").fetchone()[0]
        if have > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} has schema {have}; this version knows up to {SCHEMA_VERSION}: "
                "upgrade labelcast"
            )
        for v in range(have + 1, SCHEMA_VERSION + 1):
            with self.write() as db:
                for stmt in MIGRATIONS[v]:
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version = {v}")

    # -- devices ----------------------------------------------------------------------------------
    def add_device(
        self, name: str, key: str | os.PathLike, reference: str | os.PathLike, link: str, device_profile: str
    ) -> Device:
        """Register a device by its receipt key; the store root is read from the reference store's manifest."""
        from ..codec.manifest import ReferenceStore
        from ..profiles import load_device, load_link

        if not name or any(c in name for c in "/\\ \t\n"):
            raise LedgerError(f"a device name is one word without slashes, not {name!r}")
        pub = load_public_key(key)
        load_link(link)
        load_device(device_profile)
        root = ReferenceStore(reference).root.hex()
        pem = Path(key).read_text()
        try:
            with self.write() as db:
                db.execute(
                    "INSERT INTO devices (name, key_id, public_key, root, reference, link, device_profile, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, key_id(pub).hex(), pem, root, str(Path(reference).resolve()), link, device_profile,
                     time.time()),
                )  # fmt: skip
        except sqlite3.IntegrityError as e:
            raise LedgerError(f"a device named {name!r} or with key {key_id(pub).hex()} is registered already") from e
        return self.device(name)

    def remove_device(self, name: str) -> None:
        self.device(name)
        with self.write() as db:
            db.execute("DELETE FROM deliveries WHERE device = ?", (name,))
            db.execute("DELETE FROM receipts WHERE device = ?", (name,))
            db.execute("DELETE FROM devices WHERE name = ?", (name,))

    def device(self, name: str) -> Device:
        row = self.db.execute("SELECT * FROM devices WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(d.name for d in self.devices()) or "none yet (labelcast fleet add)"
            raise LedgerError(f"no device named {name!r} in {self.path}; registered: {known}")
        return _device(row)

    def devices(self) -> list[Device]:
        return [_device(r) for r in self.db.execute("SELECT * FROM devices ORDER BY name")]

    def deliveries(self, name: str | None = None) -> list[dict]:
        q = "SELECT d.*, p.sequence, p.frames, p.bytes FROM deliveries d JOIN payloads p USING (pid)"
        args: tuple = ()
        if name is not None:
            q, args = q + " WHERE d.device = ?", (name,)
        rows = self.db.execute(q + " ORDER BY p.created_at, d.device", args).fetchall()
        return [{k: r[k] for k in r.keys()} for r in rows]

    def payload(self, pid: str) -> dict | None:
        row = self.db.execute("SELECT * FROM payloads WHERE pid = ?", (pid,)).fetchone()
        return {k: row[k] for k in row.keys()} if row else None

    def payload_with_set(self, digest: str) -> dict | None:
        """The newest payload this ground sent whose labelled set is ``digest`` (a delta's parent; a receipt
        names the set by the first 8 bytes of its digest)."""
        row = self.db.execute(
            "SELECT * FROM payloads WHERE substr(set_digest, 1, ?) = ? ORDER BY created_at DESC LIMIT 1",
            (len(digest), digest),
        ).fetchone()
        return {k: row[k] for k in row.keys()} if row else None

    # -- payloads ---------------------------------------------------------------------------------
    def record_payload(self, names: list[str], report: dict, outbox: str | os.PathLike, set_digest: str) -> None:
        """A payload ``send --to`` made for these devices (one payload, one row per device)."""
        pid = report["payload_id"]
        parent = (report.get("delta") or {}).get("parent")
        with self.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO payloads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, report["payload_sha256"], report["sequence"], report["key_id"], report["reference_root"],
                 parent, set_digest, str(Path(outbox).resolve()), report["link"], report["frame_bytes"],
                 report["parity_frames"], report["frames"], report["framed_bytes"], time.time()),
            )  # fmt: skip
            for n in names:
                db.execute(
                    "INSERT OR REPLACE INTO deliveries (device, pid, state, updated_at) VALUES (?, ?, 'sent', ?)",
                    (n, pid, time.time()),
                )

    # -- receipts ---------------------------------------------------------------------------------
    def ingest(self, data: bytes, ground_key=None) -> dict:
        """Verify one receipt and apply its events (one transaction). Raises ``DecodeError`` (malformed),
        ``UnknownKeyError`` (no device has its key), ``SignatureError`` / ``SealError`` (forged, or sealed
        and no ``ground_key`` to open it), ``ReplayError`` (seen before). ``ground_key``: the sender's private
        key, which opens receipts sealed to it."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from ..codec.receipts import MODE_SEALED, open_sealed_receipt, sealed_receipt_device

        if len(data) > 1 and data[1] == MODE_SEALED:
            r, row = self._open_sealed(data, ground_key, sealed_receipt_device(data), open_sealed_receipt)
        else:
            r = decode_receipt(data)
            row = self.db.execute("SELECT * FROM devices WHERE key_id = ?", (r.device.hex(),)).fetchone()
            if row is None:
                raise UnknownKeyError(f"receipt {r.counter} comes from device key {r.device.hex()}, not in this ledger")
            verify_receipt(r, load_pem_public_key(row["public_key"].encode()))
        name = row["name"]
        with self.write() as db:
            seen = db.execute("SELECT 1 FROM receipts WHERE device = ? AND counter = ?", (name, r.counter)).fetchone()
            if seen:
                raise ReplayError(f"receipt {r.counter} of {name} was ingested before; ignored")
            events = json.dumps([e.to_dict() for e in r.events])
            db.execute(
                "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?)",
                (name, r.counter, r.time, time.time(), len(data), events),
            )
            for e in r.events:
                self._apply(db, name, r, e)
            db.execute(
                "UPDATE devices SET last_seen = max(coalesce(last_seen, 0), ?),"
                " last_counter = max(coalesce(last_counter, 0), ?) WHERE name = ?",
                (float(r.time), r.counter, name),
            )  # fmt: skip
        return {"device": name, "counter": r.counter, "events": [e.kind for e in r.events]}

    def _open_sealed(self, data: bytes, ground_key, prefix: bytes, opener):
        """A sealed receipt: the devices registered under its 4-byte id prefix, each tried with the pair key."""
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from ..codec.errors import SealError

        if ground_key is None:
            raise SealError("a sealed receipt: ingest it with the ground's key (--key sender.key)")
        rows = self.db.execute("SELECT * FROM devices WHERE substr(key_id, 1, 8) = ?", (prefix.hex(),)).fetchall()
        if not rows:
            raise UnknownKeyError(f"a sealed receipt from device {prefix.hex()}…, not in this ledger")
        err: Exception | None = None
        for row in rows:
            try:
                return opener(data, ground_key, load_pem_public_key(row["public_key"].encode())), row
            except SealError as e:
                err = e
        raise err

    def _apply(self, db: sqlite3.Connection, name: str, r: Receipt, e: Event) -> None:
        if e.kind == "store":
            db.execute("UPDATE devices SET reported_root = ? WHERE name = ?", (e.digest.hex(), name))
        elif e.kind == "field":  # the newest sketch wins; an older receipt arriving late never replaces it
            db.execute(
                "UPDATE devices SET field_sketch = ?, field_drift = ?, field_time = ? WHERE name = ? AND"
                " (field_time IS NULL OR field_time <= ?)",
                (e.sketch, e.drift, r.time, name, r.time),
            )
        elif e.kind == "head":
            db.execute(
                "UPDATE devices SET head_sender = ?, head_sequence = ?, head_digest = ? WHERE name = ? AND"
                " (head_sequence IS NULL OR head_sender != ? OR head_sequence <= ?)",
                (e.sender.hex(), e.sequence, e.digest.hex(), name, e.sender.hex(), e.sequence),
            )
        elif e.pid:
            self._delivery(db, name, r, e)

    def _delivery(self, db: sqlite3.Connection, name: str, r: Receipt, e: Event) -> None:
        pid = e.pid.hex()
        if db.execute("SELECT 1 FROM payloads WHERE pid = ?", (pid,)).fetchone() is None:
            return  # a payload this ledger did not send (sent by hand): the receipt is kept, no state moves
        cur = db.execute("SELECT * FROM deliveries WHERE device = ? AND pid = ?", (name, pid)).fetchone()
        state = {"model": e.action}.get(e.kind, e.kind)
        if cur is not None and STATES[state] < STATES[cur["state"]]:
            return  # older news
        if cur is not None and e.kind == "partial" and (cur["nak_time"] or 0) > r.time:
            return
        now = time.time()
        if cur is None:
            db.execute(
                "INSERT INTO deliveries (device, pid, state, updated_at) VALUES (?, ?, ?, ?)", (name, pid, state, now)
            )
        cols: dict = {"state": state, "updated_at": now}
        if e.kind == "refused":
            cols.update(code=e.code, retryable=int(e.retryable))
        elif e.kind == "partial":
            cols.update(needed=json.dumps(list(e.needed)), nak_time=r.time)
            cols.update(held=e.held.hex() if e.held is not None else None, held_frames=e.frames)
        elif e.kind == "trained":
            cols.update(accuracy=e.accuracy, student=e.digest.hex())
            if e.accuracy is not None:
                db.execute("UPDATE devices SET last_accuracy = ? WHERE name = ?", (e.accuracy, name))
        sets = ", ".join(f"{k} = ?" for k in cols)
        db.execute(f"UPDATE deliveries SET {sets} WHERE device = ? AND pid = ?", (*cols.values(), name, pid))

    # -- repair -----------------------------------------------------------------------------------
    def repair_plan(self, names: list[str]) -> dict[str, dict[int, list[int]]]:
        """For each payload these devices reported partial: the blocks to send per stripe. A stripe gets as
        many as the neediest device asked for: fresh blocks (numbers the payload never used, shared by every
        device of the group), then, when a stripe's code has none left, the frames a device said it lacks."""
        from ..codec.framing import CODE_BLOCKS

        plan: dict[str, dict[int, list[int]]] = {}
        q = (
            "SELECT * FROM deliveries WHERE state = 'partial' AND (repaired_nak IS NULL OR repaired_nak < nak_time)"
            f" AND device IN ({','.join('?' * len(names))})"
        )
        for d in self.db.execute(q, names).fetchall():
            p = self.payload(d["pid"])
            lay = _layout(p)
            needed = json.loads(d["needed"] or "[]")
            want = plan.setdefault(d["pid"], {})
            lacking = _lacking(d, lay)
            for s, n in enumerate(needed):
                if n > len(want.get(s, [])):
                    want[s] = self._blocks(d["pid"], s, n, lay.stripe_m(s), CODE_BLOCKS, lacking.get(s, []))
        return plan

    def _blocks(self, pid: str, s: int, n: int, m: int, limit: int, lacking: list[int]) -> list[int]:
        row = self.db.execute("SELECT next_fresh FROM repairs WHERE pid = ? AND stripe = ?", (pid, s)).fetchone()
        start = row[0] if row else m
        fresh = list(range(start, min(limit, start + n)))
        return fresh + [j for j in lacking if j not in fresh][: n - len(fresh)]

    def record_repair(self, names: list[str], plan: dict[str, dict[int, list[int]]]) -> None:
        """The blocks sent (the next repair of a stripe starts after them) and the NAKs they answered (a
        second repair before a newer NAK sends nothing)."""
        with self.write() as db:
            for pid, stripes in plan.items():
                for s, nums in stripes.items():
                    top = max(nums, default=-1) + 1
                    db.execute(
                        "INSERT INTO repairs VALUES (?, ?, ?) ON CONFLICT (pid, stripe) DO UPDATE SET"
                        " next_fresh = max(next_fresh, excluded.next_fresh)",
                        (pid, s, top),
                    )
                n = sum(len(v) for v in stripes.values())
                for name in names:
                    db.execute(
                        "UPDATE deliveries SET repair_frames = repair_frames + ?, repaired_nak = nak_time"
                        " WHERE device = ? AND pid = ? AND state = 'partial'",
                        (n, name, pid),
                    )

    # -- what to send next ------------------------------------------------------------------------
    def parent_for(self, names: list[str]) -> dict | None:
        """The payload whose labelled set every one of these devices reported holding (a delta's parent), or
        None: a device that never reported, devices on different heads, or a head this ground did not send
        all mean a full payload."""
        heads = {self.device(n).head_digest for n in names}
        if len(heads) != 1 or None in heads:
            return None
        p = self.payload_with_set(heads.pop())
        return p if p is not None and Path(p["outbox"]).is_dir() else None

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.parent.glob(self.path.name + "*") if f.is_file())


def _layout(p: dict):
    from ..codec.framing import layout_for

    length = (Path(p["outbox"]) / "payload.lcst").stat().st_size
    return layout_for(length, p["frame_bytes"], parity=p["parity"])


def _lacking(d, lay) -> dict[int, list[int]]:
    """Per stripe, the block numbers of the first send a device said it lacks (from its bitmap)."""
    if not d["held"]:
        return {}
    e = Event("partial", b"\0" * 4, frames=d["held_frames"], held=bytes.fromhex(d["held"]))
    order = lay.order()
    out: dict[int, list[int]] = {}
    for f in missing_frames(e):
        if f < len(order):
            s, j = order[f]
            out.setdefault(s, []).append(j)
    return out


def _device(row: sqlite3.Row) -> Device:
    keys = set(row.keys())
    return Device(**{f: row[f] for f in Device.__dataclass_fields__ if f in keys})


def receipt_files(paths) -> list[Path]:
    """The ``.lcr`` files named, or inside the folders named, in name order (a device's counter order)."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(f for f in p.iterdir() if f.suffix == ".lcr" and f.is_file()) if p.is_dir() else [p]
    return out


def ingest_files(ledger: Ledger, paths, ground_key=None) -> dict:
    """Ingest every receipt; a refused one (unknown device, forged, malformed) is reported and the batch goes
    on; one seen before counts as a replay (ingesting a folder twice changes nothing). ``ground_key`` opens
    sealed receipts."""
    from ..codec.receipts import MAX_RECEIPT

    res: dict = {"ingested": 0, "replays": 0, "refused": [], "devices": {}}
    t = time.time()
    for f in receipt_files(paths):
        try:
            if f.stat().st_size > MAX_RECEIPT:
                raise DecodeError(f"{f.stat().st_size:,} bytes is larger than any receipt")
            got = ledger.ingest(f.read_bytes(), ground_key)
        except ReplayError:
            res["replays"] += 1
            continue
        except LabelcastError as e:
            res["refused"].append({"file": str(f), "error": type(e).__name__, "message": str(e)})
            continue
        except OSError as e:
            res["refused"].append({"file": str(f), "error": "OSError", "message": e.strerror or str(e)})
            continue
        res["ingested"] += 1
        res["devices"][got["device"]] = res["devices"].get(got["device"], 0) + 1
    res["seconds"] = round(time.time() - t, 4)
    return res


def write_repair(ledger: Ledger, names: list[str], out: Path) -> dict:
    """Repair frames for every partial delivery of these devices into ``out`` (recorded in the ledger)."""
    from ..codec.framing import make_repair_frames, write_frames

    for n in names:
        ledger.device(n)
    plan = ledger.repair_plan(names)
    res: dict = {"payloads": []}
    for pid, stripes in plan.items():
        p = ledger.payload(pid)
        data = (Path(p["outbox"]) / "payload.lcst").read_bytes()
        frames = make_repair_frames(data, p["frame_bytes"], p["parity"], stripes)
        write_frames(frames, out)
        ledger.record_repair(names, {pid: stripes})
        res["payloads"].append({"payload_id": pid, "frames": len(frames), "bytes": sum(map(len, frames))})
    return res


def send_to(
    ledger: Ledger, names: list[str], teacher, reference, key, out, cfg=None, *, seal: bool = False, progress=None
) -> dict:
    """``send`` for registered devices: the link and store come from the ledger, the parent is the head every
    device reported holding (a full payload when they never reported, hold different heads, or hold one this
    ground has no outbox for), and the payload is recorded for each. One payload, signed once, for a group;
    ``seal``: sealed to the device named with its registered key (a group: signed, the body sealed for each)."""
    from dataclasses import replace

    from ..codec.delta import LabelledSet
    from ..codec.manifest import ReferenceStore
    from .delta import SET_FILE, load_parent
    from .send import SendConfig, send

    cfg = cfg or SendConfig()
    devs = [ledger.device(n) for n in names]
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    for d in devs:
        if d.root != store.root.hex():
            raise LedgerError(f"{d.name} holds store {d.root[:16]}, not {store.root.hex()[:16]} ({store.path})")
    links = {d.link for d in devs}
    if len(links) > 1:
        raise LedgerError(f"one payload goes over one link; these devices use {', '.join(sorted(links))}")
    heads = {d.head_digest for d in devs}
    if cfg.parent is not None:
        want = load_parent(cfg.parent).digest.hex()[:16]
        if None not in heads and heads != {want}:
            raise LedgerError(
                f"the parent {cfg.parent} is set {want[:16]} but the devices reported holding "
                f"{', '.join(sorted(h[:16] for h in heads))}: a delta on it would never apply. Drop --parent"
            )
        parent, why = cfg.parent, "given"
    else:
        p = ledger.parent_for(names)
        parent = p["outbox"] if p else None
        why = f"the head every device reported (s{p['sequence']})" if p else _full_reason(heads)
    cfg = replace(cfg, link=replace(cfg.link, profile=links.pop()), parent=parent)
    sketches = [d.field_sketch for d in devs if d.field_sketch]
    if cfg.field is None and sketches:  # the devices' own field steers the labels (one sketch: the group's mix)
        cfg = replace(cfg, field=_group_sketch(sketches))
    if seal:  # one device: sealed to it; a group: signed, its body sealed for each
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        keys = [
            load_pem_public_key(
                ledger.db.execute("SELECT public_key FROM devices WHERE name = ?", (n,)).fetchone()[0].encode()
            )
            for n in names
        ]
        cfg = replace(cfg, seal_to=keys)
    rep = send(teacher, store, key, out, cfg, progress=progress)
    digest = LabelledSet.from_bytes((Path(out) / SET_FILE).read_bytes()).digest.hex()
    ledger.record_payload(names, rep, out, digest)
    rep["fleet"] = {"to": names, "parent": parent, "why": why, "ledger": str(ledger.path)}
    return rep


def _group_sketch(sketches: list[bytes]) -> bytes:
    """One sketch for a group of devices: the mean of their shares, quantised again (one device: its own)."""
    if len(sketches) == 1:
        return sketches[0]
    import numpy as np

    from ..codec.field import LEVELS, Sketch, decode_sketch, encode_sketch

    ss = [decode_sketch(s) for s in sketches]
    if len({(s.root_prefix, s.levels.size) for s in ss}) != 1:
        raise LedgerError("the devices' field sketches are for different stores")
    mean = np.mean([s.shares for s in ss], axis=0)
    levels = np.rint(LEVELS * mean / mean.max()).astype(np.uint8) if mean.max() else np.zeros(mean.size, np.uint8)
    return encode_sketch(Sketch(ss[0].root_prefix, levels, sum(s.images for s in ss)))


def _full_reason(heads: set) -> str:
    if None in heads:
        return "full payload: a device has not reported a head yet"
    if len(heads) > 1:
        return "full payload: the devices hold different heads"
    return "full payload: no outbox of this ground holds the head the devices reported"
