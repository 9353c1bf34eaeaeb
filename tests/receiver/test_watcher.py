"""The watcher as one object, in this process: rollbacks, incremental scans, one verification, survival."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver import watch as watch_module
from labelcast.receiver.receive import ReceiveConfig
from labelcast.receiver.train import StudentConfig
from labelcast.receiver.watch import WatchConfig, Watcher
from tests.conftest import make_store, signed_payload

FAST = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1, checkpoint_every=5))


@pytest.fixture
def site(tmp_path: Path):
    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    priv, pub = generate_keypair(tmp_path / "keys")
    key = load_private_key(priv)

    def frames(seq: int, seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(store.n, 60, replace=False))
        data = signed_payload(store, key, idx, rng.integers(0, 3, 60), 3, sequence=seq)
        return make_frames(data, 64, 34)

    def watcher(**kw) -> Watcher:
        return Watcher(
            tmp_path / "inbox",
            store,
            TrustSet.from_files([pub]),
            FAST,
            WatchConfig(once=True, **kw),
            state_dir=tmp_path / "state",
        )

    return tmp_path, frames, watcher


def _events(tmp: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp / "state" / "events.jsonl").read_text().splitlines()]


def test_rollback_with_a_leftover_report_is_refused_not_installed(site):
    tmp, frames, watcher = site
    write_frames(frames(2, 0), tmp / "inbox")
    assert watcher().run()["promoted"] == 1
    # an older sequence arrives, and its work folder holds a report (as after a power cut): it is a rollback,
    # not a benign replay whose slot step should be finished
    old = frames(1, 1)
    w = watcher()
    w.scan()
    pid = w.frames.payload_ids()[0] if w.frames.payload_ids() else None
    assert pid is None  # the first payload's frames were archived
    write_frames(old, tmp / "inbox")
    w.scan()
    pid = w.frames.payload_ids()[0]
    report = tmp / "state" / "watch" / pid.hex() / "model" / "receive-report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"sequence": 1, "key_id": "00", "validation": {}}))
    w.one_pass()
    rec = w.done[pid.hex()]
    assert rec["outcome"] == "refused" and rec["error"] == "StaleError" and "retry_when" not in rec  # final
    assert w.slots.status()["active"]["sequence"] == 2 and len(w.slots.status()["models"]) == 1


def test_watcher_reads_only_frame_files_it_has_not_seen(site, monkeypatch):
    tmp, frames, watcher = site
    f = frames(1, 0)
    write_frames(f[:3], tmp / "inbox")
    w = watcher()
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    w.scan()
    assert len(reads) == 3
    write_frames(f[3:5], tmp / "inbox")
    w.scan()
    assert len(reads) == 5 and len(set(reads)) == 5  # the first three were not read again


def test_watcher_verifies_each_payload_once(site, monkeypatch):
    tmp, frames, watcher = site
    write_frames(frames(1, 0), tmp / "inbox")
    calls = []
    real = watch_module.verify_payload
    monkeypatch.setattr(watch_module, "verify_payload", lambda *a, **k: calls.append(1) or real(*a, **k))
    from labelcast.codec import payload as payload_module

    checks = []
    real_sig = payload_module.verify_signature
    monkeypatch.setattr(payload_module, "verify_signature", lambda *a, **k: checks.append(1) or real_sig(*a, **k))
    assert watcher().run()["promoted"] == 1
    assert len(calls) == 1 and len(checks) == 1  # one signature check from frames to installed model


def test_watcher_survives_an_unexpected_error_and_retries_the_payload_later(site, monkeypatch):
    tmp, frames, watcher = site
    write_frames(frames(1, 0), tmp / "inbox")
    write_frames(frames(2, 1), tmp / "inbox")
    real = watch_module.receive
    failed = []

    def flaky(v, *a, **k):
        if v.header.sequence == 1 and not failed:
            failed.append(1)
            raise RuntimeError("the GPU driver went away")
        return real(v, *a, **k)

    monkeypatch.setattr(watch_module, "receive", flaky)
    w = watcher(retry_s=0.0)
    res = w.run()
    assert res["retrying"] == 1 and res["promoted"] == 1  # payload 2 went on after payload 1 failed
    ev = [e for e in _events(tmp) if e["event"] == "failed, will retry"]
    assert ev and ev[0]["error"] == "RuntimeError" and "GPU driver" in ev[0]["message"]
    assert any(p.suffix == ".lcf" for p in (tmp / "inbox").iterdir())  # its frames are kept
    # payload 1 is older than the accepted 2 now: on the retry it is refused as a rollback, never trained
    w.one_pass()
    assert sorted(v["outcome"] for v in w.done.values()) == ["promoted", "refused"]


def test_watcher_keeps_frames_of_a_payload_that_failed_for_a_storage_reason(site, monkeypatch):
    from labelcast.codec.errors import StorageError

    tmp, frames, watcher = site
    write_frames(frames(1, 0), tmp / "inbox")

    def full(*a, **k):
        raise StorageError("cannot write the report: No space left on device")

    monkeypatch.setattr(watch_module, "receive", full)
    res = watcher(retry_s=3600).run()
    assert res["retrying"] == 1 and res["refused"] == 0
    assert len(list((tmp / "inbox").glob("*.lcf"))) == len(frames(1, 0))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["soft labels", "hybrid", "exemplars only"])
def test_every_payload_kind_the_planner_sends_trains_through_the_watcher(site, kind):
    """Labels are every other test's payload; soft labels, labels beside exemplars and exemplars alone (the
    planner's "distilled only" is the same payload with synthetic images) go through the watcher too."""
    import time

    from labelcast.codec.payload import build_payload
    from labelcast.codec.softlabels import soft_from_probs
    from labelcast.sender.exemplars import make_exemplars

    tmp, _, watcher = site
    store = ReferenceStore(tmp / "ref")
    rng = np.random.default_rng(3)
    idx = np.zeros(0, np.int64) if kind == "exemplars only" else np.sort(rng.choice(store.n, 60, replace=False))
    lab = rng.integers(0, 3, idx.size)
    probs = rng.dirichlet(np.ones(3), idx.size)
    probs[np.arange(idx.size), lab] += 1
    data, _ = build_payload(
        idx,
        lab,
        n_items=store.n,
        classes=3,
        root=store.root,
        key=load_private_key(tmp / "keys" / "sender.key"),
        sequence=1,
        expires_at=int(time.time()) + 600,
        segments=store.manifest.segments,
        soft=soft_from_probs(probs / probs.sum(1, keepdims=True), lab) if kind == "soft labels" else None,
        exemplars=None
        if kind == "soft labels"
        else make_exemplars(rng.integers(0, 255, (9, 8, 8, 1), dtype=np.uint8), np.arange(9) % 3, "png", 0),
    )
    write_frames(make_frames(data, 64, 34), tmp / "inbox")
    assert watcher().run()["promoted"] == 1
    reports = [json.loads(p.read_text()) for p in tmp.rglob("receive-report.json")]
    assert len(reports) == 1 and reports[0]["training"]["training_set"]["reference_items"] == idx.size
    assert reports[0]["exemplars"] == (0 if kind == "soft labels" else 9)


@pytest.mark.slow  # trains: make test-slow
def test_the_watcher_with_a_field_adapts_the_student_and_reports_its_sketch(site, monkeypatch):
    """`receive --watch --field`: the student is corrected to the field's class mix, the report says so, and the
    sketch of the captures leaves in a receipt (with no drift on its first report)."""
    from labelcast.codec.keys import generate_keypair as keypair
    from labelcast.codec.receipts import decode_receipt
    from labelcast.receiver.receipts import Reporter

    tmp, frames, _ = site
    monkeypatch.setattr("labelcast.receiver.field.PRIOR_MIN_CONFIDENCE", 0.0)  # random labels: a student unsure
    store = ReferenceStore(tmp / "ref")
    keypair(tmp / "dk", role="device")
    field = store.read(np.flatnonzero(np.asarray(store.manifest.groups) == 0)[:80])
    w = Watcher(
        tmp / "inbox",
        store,
        TrustSet.from_files([tmp / "keys" / "sender.pub"]),
        ReceiveConfig(student=FAST.student, field=field),
        WatchConfig(once=True),
        state_dir=tmp / "state",
        reporter=Reporter(tmp / "rx", tmp / "dk" / "device.key", tmp / "state"),
    )
    write_frames(frames(1, 0), tmp / "inbox")
    assert w.run()["promoted"] == 1
    (report,) = [json.loads(p.read_text()) for p in tmp.rglob("receive-report.json")]
    f = report["field"]
    assert f["prior_adapt"] and f["images"] == 80 and len(f["logit_bias"]) == 3 and f["em_steps"] >= 1
    events = [e for p in sorted((tmp / "rx").glob("*")) for e in decode_receipt(p.read_bytes()).events]
    (fe,) = [e for e in events if e.kind == "field"]
    assert fe.drift is None and 0 < len(fe.sketch) <= 64
    assert "field sketch" in {e["event"] for e in _events(tmp)}
