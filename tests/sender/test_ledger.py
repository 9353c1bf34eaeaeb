"""The fleet ledger: registration, receipts (forged, replayed, unknown), a crash mid-batch, two writers, and a
NAK → repair → complete round trip through the watcher."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.delta import LabelledSet
from labelcast.codec.errors import ReplayError, SignatureError, UnknownKeyError
from labelcast.codec.framing import layout_for, make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.receipts import Event, encode_receipt
from labelcast.profiles import ReturnLink
from labelcast.receiver.receipts import Reporter
from labelcast.sender.delta import SET_FILE
from labelcast.sender.ledger import Ledger, LedgerError, ingest_files, write_repair
from tests.conftest import make_store, signed_payload

FRAME = 64


@pytest.fixture
def fleet(tmp_path: Path):
    ref = make_store(tmp_path / "ref", n=300)
    store = ReferenceStore(ref)
    generate_keypair(tmp_path / "ground")
    for n in ("dev1", "dev2"):
        generate_keypair(tmp_path / n, role="device")
    lg = Ledger(tmp_path / "ledger.sqlite")
    for n in ("dev1", "dev2"):
        lg.add_device(n, tmp_path / n / "device.pub", ref, "lora-eu868-dr5", "cpu-small")
    yield tmp_path, store, lg
    lg.close()


def outbox(tmp: Path, store, lg: Ledger, names: list[str], seq: int = 1, parity: int = 0) -> tuple[Path, bytes]:
    """A payload as ``send --to`` leaves it: outbox files and a ledger record."""
    key = load_private_key(tmp / "ground" / "sender.key")
    rng = np.random.default_rng(seq)
    idx = np.sort(rng.choice(store.n, 60, replace=False))
    lab = rng.integers(0, 3, 60)
    data = signed_payload(store, key, idx, lab, 3, sequence=seq)
    out = tmp / f"outbox{seq}"
    (out / "frames").mkdir(parents=True)
    (out / "payload.lcst").write_bytes(data)
    frames = make_frames(data, FRAME, parity=parity)
    write_frames(frames, out / "frames")
    labelled = LabelledSet(store.n, 3, idx, lab)
    (out / SET_FILE).write_bytes(labelled.to_bytes())
    rep = {
        "payload_id": hashlib.sha256(data).hexdigest()[:8],
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "sequence": seq,
        "key_id": "00" * 8,
        "reference_root": store.root.hex(),
        "link": "lora-eu868-dr5",
        "frame_bytes": FRAME,
        "parity_frames": parity,
        "frames": len(frames),
        "framed_bytes": len(frames) * FRAME,
    }
    lg.record_payload(names, rep, out, labelled.digest.hex())
    return out, data


def receipt(tmp: Path, name: str, counter: int, events: list[Event], t: int = 1000) -> bytes:
    return encode_receipt(load_private_key(tmp / name / "device.key"), counter, t, events)


def test_devices_register_once_by_key_and_store(fleet):
    tmp, store, lg = fleet
    assert [d.name for d in lg.devices()] == ["dev1", "dev2"] and lg.device("dev1").root == store.root.hex()
    with pytest.raises(LedgerError, match="registered already"):
        lg.add_device("dev1", tmp / "dev2" / "device.pub", tmp / "ref", "lora-eu868-dr5", "cpu-small")
    with pytest.raises(LedgerError, match="no device named"):
        lg.device("dev9")
    lg.remove_device("dev2")
    assert [d.name for d in lg.devices()] == ["dev1"]


def test_ingest_moves_state_forward_and_refuses_forged_replayed_and_unknown_receipts(fleet):
    tmp, store, lg = fleet
    out, data = outbox(tmp, store, lg, ["dev1"])
    pid = hashlib.sha256(data).digest()[:4]
    head = Event("head", sender=b"\0" * 8, sequence=1, digest=bytes.fromhex(lg.payload(pid.hex())["set_digest"]))
    good = receipt(tmp, "dev1", 1, [Event("accepted", pid, sequence=1), head])
    assert lg.ingest(good)["events"] == ["accepted", "head"]
    assert lg.deliveries("dev1")[0]["state"] == "accepted" and lg.device("dev1").head_sequence == 1
    with pytest.raises(ReplayError):
        lg.ingest(good)
    forged = bytearray(receipt(tmp, "dev1", 2, [Event("refused", pid, code=4)]))
    forged[-70] ^= 1
    with pytest.raises(SignatureError):
        lg.ingest(bytes(forged))
    generate_keypair(tmp / "stranger", role="device")
    with pytest.raises(UnknownKeyError):
        lg.ingest(receipt(tmp, "stranger", 1, [Event("accepted", pid, sequence=1)]))
    # a late, older receipt never takes a delivery back
    lg.ingest(receipt(tmp, "dev1", 3, [Event("model", pid, action="promoted")]))
    lg.ingest(receipt(tmp, "dev1", 0, [Event("partial", pid, needed=(4,))], t=10))
    assert lg.deliveries("dev1")[0]["state"] == "promoted"


def test_a_batch_goes_on_past_bad_receipts_and_twice_changes_nothing(fleet):
    tmp, store, lg = fleet
    _, data = outbox(tmp, store, lg, ["dev1", "dev2"])
    pid = hashlib.sha256(data).digest()[:4]
    d = tmp / "receipts"
    d.mkdir()
    (d / "a.lcr").write_bytes(receipt(tmp, "dev1", 1, [Event("accepted", pid, sequence=1)]))
    (d / "b.lcr").write_bytes(b"\xb1junk")
    (d / "c.lcr").write_bytes(receipt(tmp, "dev2", 1, [Event("refused", pid, code=15, retryable=True)]))
    res = ingest_files(lg, [d])
    assert res["ingested"] == 2 and [r["error"] for r in res["refused"]] == ["DecodeError"]
    again = ingest_files(lg, [d])
    assert again["ingested"] == 0 and again["replays"] == 2
    states = {x["device"]: (x["state"], x["code"]) for x in lg.deliveries()}
    assert states == {"dev1": ("accepted", None), "dev2": ("refused", 15)}


def test_a_crash_mid_batch_leaves_the_ledger_consistent(fleet, monkeypatch):
    tmp, store, lg = fleet
    _, data = outbox(tmp, store, lg, ["dev1"])
    pid = hashlib.sha256(data).digest()[:4]
    files = []
    for c, ev in enumerate([Event("accepted", pid, sequence=1), Event("model", pid, action="promoted")], 1):
        files.append(tmp / f"r{c}.lcr")
        files[-1].write_bytes(receipt(tmp, "dev1", c, [ev, Event("store", digest=store.root[:8])]))
    real = Ledger._apply
    calls = []

    def dies_on_the_second_receipt(self, db, name, r, e):
        calls.append(r.counter)
        if r.counter == 2 and e.kind == "store":  # after the receipt's first event was applied
            raise KeyboardInterrupt("power cut")
        return real(self, db, name, r, e)

    monkeypatch.setattr(Ledger, "_apply", dies_on_the_second_receipt)
    with pytest.raises(KeyboardInterrupt):
        ingest_files(lg, files)
    monkeypatch.undo()
    lg2 = Ledger(lg.path)  # as after a restart
    assert [x["state"] for x in lg2.deliveries("dev1")] == ["accepted"]  # receipt 2 not half-applied
    assert lg2.db.execute("SELECT count(*) FROM receipts").fetchone()[0] == 1
    res = ingest_files(lg2, files)
    assert res["ingested"] == 1 and res["replays"] == 1 and lg2.deliveries("dev1")[0]["state"] == "promoted"
    lg2.close()


def test_two_writers_serialise(fleet):
    tmp, _, lg = fleet
    other = Ledger(lg.path, busy_s=10)
    order = []

    def hold():  # a second connection (another process, or a thread: SQLite connections are per thread)
        with Ledger(lg.path) as mine, mine.write():
            order.append("first in")
            time.sleep(0.5)
            order.append("first out")

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.1)
    with other.write():
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]
    impatient = Ledger(lg.path, busy_s=0.05)
    with lg.write():
        with pytest.raises(LedgerError, match="busy"):
            with impatient.write():
                pass
    other.close()
    impatient.close()


def test_a_ledger_from_a_newer_version_is_refused(fleet):
    tmp, _, lg = fleet
    lg.db.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="schema 99"):
        Ledger(lg.path)


def test_nak_repair_complete_round_trip_through_the_watcher(fleet):
    from labelcast.receiver.receive import ReceiveConfig
    from labelcast.receiver.train import StudentConfig
    from labelcast.receiver.watch import WatchConfig, Watcher

    tmp, store, lg = fleet
    out, data = outbox(tmp, store, lg, ["dev1"])  # no parity: the loop pays for losses after the fact
    frames = sorted((out / "frames").iterdir())
    inbox = tmp / "inbox"
    inbox.mkdir()
    for i, f in enumerate(frames):
        if i % 4:  # a quarter lost on the way
            shutil.copy(f, inbox / f.name)
    rx = tmp / "receipts"
    ret = ReturnLink(message_bytes=222, bytes_per_hour=20_000, nak_after_s=0)

    def watcher() -> Watcher:
        fast = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1))
        rep = Reporter(rx, tmp / "dev1" / "device.key", tmp / "state", ret)
        trust = TrustSet.from_files([tmp / "ground" / "sender.pub"])
        return Watcher(inbox, store, trust, fast, WatchConfig(once=True), state_dir=tmp / "state", reporter=rep)

    assert watcher().run()["processed"] == 0
    res = ingest_files(lg, [rx])
    assert res["ingested"] >= 1 and not res["refused"]
    dl = lg.deliveries("dev1")[0]
    lost = len(frames) - len(list(inbox.iterdir()))
    assert dl["state"] == "partial" and sum(json.loads(dl["needed"])) == lost
    fixed = write_repair(lg, ["dev1"], tmp / "repair")
    assert fixed["payloads"][0]["frames"] == lost  # exactly what was missing, not the whole payload
    assert write_repair(lg, ["dev1"], tmp / "repair2")["payloads"] == []  # the NAK is answered once
    for f in (tmp / "repair").iterdir():
        shutil.copy(f, inbox / f.name)
    assert watcher().run()["promoted"] == 1
    ingest_files(lg, [rx])
    d = lg.device("dev1")
    assert lg.deliveries("dev1")[0]["state"] == "promoted" and d.head_digest == lg.payload(dl["pid"])["set_digest"][:16]
    assert d.reported_root == store.root[:8].hex() and d.last_accuracy is None or 0 <= d.last_accuracy <= 1
    assert lg.parent_for(["dev1"])["outbox"] == str(out.resolve())  # the next send may be a delta on it
    assert lg.parent_for(["dev1", "dev2"]) is None  # dev2 never reported: a full payload for the group
    lay = layout_for(len(data), FRAME, parity=0)
    assert lay.total_frames == len(frames)


def test_sealed_receipts_open_with_the_ground_key_only(fleet):
    from labelcast.codec.errors import SealError
    from labelcast.codec.keys import load_public_key
    from labelcast.codec.receipts import encode_sealed_receipt

    tmp, store, lg = fleet
    _, data = outbox(tmp, store, lg, ["dev1"])
    pid = hashlib.sha256(data).digest()[:4]
    ground_pub = load_public_key(tmp / "ground" / "sender.pub")
    dev = load_private_key(tmp / "dev1" / "device.key")
    sealed = encode_sealed_receipt(dev, ground_pub, 1, 1000, [Event("accepted", pid, sequence=1)])
    with pytest.raises(SealError, match="--key"):
        lg.ingest(sealed)
    (tmp / "rx").mkdir()
    (tmp / "rx" / "r.lcr").write_bytes(sealed)
    assert [r["error"] for r in ingest_files(lg, [tmp / "rx"])["refused"]] == ["SealError"]
    ground = load_private_key(tmp / "ground" / "sender.key")
    assert ingest_files(lg, [tmp / "rx"], ground)["ingested"] == 1
    assert lg.deliveries("dev1")[0]["state"] == "accepted"
    assert ingest_files(lg, [tmp / "rx"], ground)["replays"] == 1  # a counter seen before, sealed or not


def test_a_field_sketch_reaches_the_ledger_flags_drift_and_steers_send_to(fleet, monkeypatch):
    from labelcast.codec.field import Sketch, encode_sketch
    from labelcast.sender import send as send_module
    from labelcast.sender.cli.fleet import _dev, _device_lines
    from labelcast.sender.ledger import send_to

    tmp, store, lg = fleet
    sketch = encode_sketch(Sketch(store.root[:8], np.array([15, 0, 3], np.uint8), 500))
    lg.ingest(receipt(tmp, "dev1", 1, [Event("field", sketch=sketch, drift=None)], t=100))
    assert lg.device("dev1").field_sketch == sketch and not lg.device("dev1").drifting
    lg.ingest(receipt(tmp, "dev1", 2, [Event("field", sketch=sketch, drift=0.4)], t=200))
    lg.ingest(receipt(tmp, "dev1", 3, [Event("field", sketch=b"FS-older", drift=0.0)], t=150))  # late: ignored
    d = lg.device("dev1")
    assert d.field_sketch == sketch and d.drifting and "DRIFTING (0.40 bits)" in _device_lines(_dev(d))[0]
    seen = {}

    def fake_send(teacher, st, key, out, cfg, progress=None):
        seen["field"] = cfg.field
        raise RuntimeError("stop here")

    monkeypatch.setattr(send_module, "send", fake_send)
    with pytest.raises(RuntimeError, match="stop here"):
        send_to(lg, ["dev1"], "t.onnx", store, tmp / "ground" / "sender.key", tmp / "o")
    assert seen["field"] == sketch  # the device's own field steers its labels
