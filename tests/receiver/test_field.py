"""Field defects of the device, each guarded by a test named after it: refusals that are retried once their
cause is gone, a second process on one state folder, a parentless delta that waits, failures that back off
or are quarantined, a full disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.errors import LockedError, MissingParentError, ParentError, StorageError
from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, key_id, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver import watch as watch_module
from labelcast.receiver.receive import ReceiveConfig, receive
from labelcast.receiver.train import StudentConfig
from labelcast.receiver.watch import WatchConfig, Watcher
from tests.conftest import make_store, run_cli, signed_payload

FAST = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1, checkpoint_every=5))


@pytest.fixture
def site(tmp_path: Path):
    """A store, two sender keys (a and b), a trusted-keys folder holding only a's, and payload frames."""
    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    keys = {}
    for name in ("a", "b"):
        priv, pub = generate_keypair(tmp_path / f"keys-{name}")
        keys[name] = (load_private_key(priv), pub)
    (tmp_path / "trusted").mkdir()
    shutil.copy(keys["a"][1], tmp_path / "trusted" / "a.pub")

    def frames(seq: int, key: str = "a", root: bytes | None = None, seed: int = 0) -> list[bytes]:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(store.n, 60, replace=False))
        data = signed_payload(store, keys[key][0], idx, rng.integers(0, 3, 60), 3, sequence=seq, root=root)
        return make_frames(data, 64, 34)

    def watcher(**kw) -> Watcher:
        trust = TrustSet.from_files(tmp_path / "trusted")
        return Watcher(tmp_path / "inbox", store, trust, FAST, WatchConfig(once=True, **kw), state_dir=tmp_path / "st")

    return tmp_path, keys, frames, watcher


def _events(tmp: Path, name: str | None = None) -> list[dict]:
    lines = (tmp / "st" / "events.jsonl").read_text().splitlines()
    ev = [json.loads(line) for line in lines]
    return [e for e in ev if name is None or e["event"] == name]


def test_a_payload_refused_for_an_unknown_key_is_retried_once_the_key_is_trusted(site):
    tmp, keys, frames, watcher = site
    write_frames(frames(1, key="b"), tmp / "inbox")
    w = watcher()
    res = w.run()
    assert res["refused"] == 1
    (pid,) = w.done
    assert w.done[pid]["error"] == "UnknownKeyError" and w.done[pid]["retry_when"] == "trust"
    assert list((tmp / "inbox" / ".refused" / pid).glob("*.lcf"))
    shutil.copy(keys["b"][1], tmp / "trusted" / "b.pub")  # the operator fixes the cause
    res = w.run()  # the same, still running watcher notices the new key
    assert res["promoted"] == 1 and w.done[pid]["outcome"] == "promoted"
    (ev,) = _events(tmp, "retrying refused payload")
    assert ev["payload_id"] == pid and ev["reason"] == "the trust changed"


def test_a_refusal_fixed_while_the_watcher_was_down_is_retried_at_restart(site):
    tmp, keys, frames, watcher = site
    write_frames(frames(1, key="b"), tmp / "inbox")
    assert watcher().run()["refused"] == 1
    shutil.copy(keys["b"][1], tmp / "trusted" / "b.pub")
    assert watcher().run()["promoted"] == 1  # a new process: the record says which keys it failed against


def test_frames_of_a_refused_payload_delivered_again_bring_it_back(site):
    tmp, keys, frames, watcher = site
    fr = frames(1, key="b")
    write_frames(fr, tmp / "inbox")
    w = watcher()
    w.run()
    write_frames(fr[:3], tmp / "inbox")  # the modem delivers some of its frames again
    w.run()
    ev = _events(tmp, "retrying refused payload")
    assert ev and ev[0]["reason"] == "frames delivered again"
    assert len(_events(tmp, "refused")) == 2  # tried again (and, the key still unknown, refused again)
    assert not list((tmp / "inbox" / ".done").glob("*/*.lcf"))  # never silently filed as done


def test_labelcast_retry_brings_back_a_refused_payload_by_id_prefix(site):
    tmp, keys, frames, watcher = site
    write_frames(frames(1, key="b"), tmp / "inbox")
    w = watcher()
    w.run()
    (pid,) = w.done
    code, out, err = run_cli("status", "--state", tmp / "st")
    assert code == 0 and f"{pid[:16]}  refused UnknownKeyError" in out and "retried when the trust changes" in out
    code, out, err = run_cli("retry", pid[:10], "--state", tmp / "st")
    assert code == 0 and "requested" in out
    w.run()
    (ev,) = _events(tmp, "retrying refused payload")
    assert ev["reason"] == "asked to (labelcast retry)"
    code, out, err = run_cli("retry", "ffff", "--state", tmp / "st")
    assert code == 2 and "no refused payload with id ffff" in err


def test_a_signature_that_fails_against_this_store_is_retried_when_the_store_changes(site):
    tmp, keys, frames, watcher = site
    other = ReferenceStore(make_store(tmp / "ref-other", n=300, seed=5))
    write_frames(frames(1, root=other.root), tmp / "inbox")  # made for another store
    w = watcher()
    assert w.run()["refused"] == 1
    assert next(iter(w.done.values()))["retry_when"] == "store"
    for f in ("items.u8", "manifest.lcm"):  # the operator installs the right store in place
        shutil.copy(tmp / "ref-other" / f, tmp / "ref" / f)
    res = w.run()
    assert res["promoted"] == 1 and _events(tmp, "retrying refused payload")[0]["reason"] == "the store changed"


def test_a_forged_payload_stays_refused_for_good(site):
    tmp, keys, frames, watcher = site
    fr = frames(2)
    write_frames(fr, tmp / "inbox")
    w = watcher()
    w.run()
    write_frames(frames(1), tmp / "inbox")  # a rollback to sequence 1: refused for good, not retried
    w.run()
    rec = [r for r in w.done.values() if r["outcome"] == "refused"]
    assert rec and rec[0]["error"] == "StaleError" and "retry_when" not in rec[0]


def test_a_second_watcher_on_one_state_folder_is_refused_naming_the_holder(site):
    tmp, keys, frames, watcher = site
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom labelcast.receiver.state import StateLock\n"
         f"StateLock({str(tmp / 'st')!r}, 'watcher').acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=f"in use by watcher \\(pid {holder.pid}"):
            watcher().run()
        write_frames(frames(1), tmp / "frames")
        with pytest.raises(LockedError):  # a one-shot receive too
            receive(tmp / "frames", tmp / "ref", TrustSet.from_files(tmp / "trusted"), tmp / "out", FAST,
                    state_dir=tmp / "st")  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert watcher().run()["stopped"] == "done"  # the kernel dropped the dead holder's lock


def test_a_delta_whose_parent_has_not_arrived_is_a_missing_parent_error_not_a_decode_error(site):
    from labelcast.codec.delta import LabelledSet
    from labelcast.receiver.chain import Chains

    tmp, keys, frames, watcher = site
    store = ReferenceStore(tmp / "ref")
    parent = LabelledSet(store.n, 3, np.arange(10), np.zeros(10, np.int64), None)
    data = signed_payload(
        store,
        keys["a"][0],
        np.arange(10, 20),
        np.ones(10, np.int64),
        3,
        sequence=2,
        delta={"parent": parent.digest, "base": parent.indices},
    )
    (tmp / "d.lcst").write_bytes(data)
    trust = TrustSet.from_files(tmp / "trusted")
    with pytest.raises(MissingParentError, match="holds no labelled set"):
        receive(tmp / "d.lcst", store, trust, tmp / "out", FAST, state_dir=tmp / "st")
    assert issubclass(MissingParentError, ParentError)
    assert Chains(tmp / "st").head_info(key_id(keys["a"][0].public_key())) is None  # nothing changed


def test_an_unexpected_failure_is_quarantined_after_max_tries_not_retried_forever(site, monkeypatch):
    tmp, keys, frames, watcher = site
    write_frames(frames(1), tmp / "inbox")

    def broken(*a, **k):
        raise RuntimeError("a bug that fails the same way every time")

    monkeypatch.setattr(watch_module, "receive", broken)
    w = watcher(retry_s=0.0, max_tries=3)
    for _ in range(3):
        w.one_pass()
    (pid,) = w.done
    assert w.done[pid]["outcome"] == "quarantined" and w.done[pid]["tries"] == 3
    assert list((tmp / "inbox" / ".quarantine" / pid).glob("*.lcf"))
    assert [e["tries"] for e in _events(tmp, "failed, will retry")] == [1, 2]
    monkeypatch.undo()
    run_cli("retry", pid, "--state", tmp / "st")
    assert w.run()["promoted"] == 1  # fixed, then asked for: it goes through


def test_a_full_disk_backs_off_exponentially_and_is_never_quarantined(site, monkeypatch):
    tmp, keys, frames, watcher = site
    write_frames(frames(1), tmp / "inbox")

    def full(*a, **k):
        raise StorageError("cannot write the checkpoint: the disk is full")

    monkeypatch.setattr(watch_module, "receive", full)
    w = watcher(retry_s=10.0, max_tries=2)
    for _ in range(4):
        w.retry_at.clear()  # time passes
        w.one_pass()
    assert [e["retry_s"] for e in _events(tmp, "failed, will retry")] == [10.0, 20.0, 40.0, 80.0]
    assert not w.done and json.loads((tmp / "st" / "watch-pending.json").read_text())


def test_a_checkpoint_on_a_full_disk_is_a_storage_error_naming_the_bytes_and_leaves_no_temp_file(tiny_disk):
    import torch

    from labelcast.receiver.train import save_checkpoint

    state = {"model": {"w": torch.zeros(1 << 20)}}  # 4 MiB on a 2 MiB disk
    with pytest.raises(StorageError, match="the disk is full \\(No space left on device\\); needs 4.0 MiB") as e:
        save_checkpoint(tiny_disk / "checkpoint.pt", state)
    assert e.value.needed > 4 << 20 - 1 and list(tiny_disk.iterdir()) == []


def test_training_on_a_full_disk_is_refused_before_the_first_step(tiny_disk, site):
    tmp, keys, frames, watcher = site
    write_frames(frames(1), tmp / "frames")
    (tiny_disk / "filler").write_bytes(b"\0" * (1 << 20) + b"\0" * (1 << 19))  # ~0.5 MiB left
    trust = TrustSet.from_files(tmp / "trusted")
    with pytest.raises(StorageError, match="not enough space for the training checkpoint") as e:
        receive(tmp / "frames", tmp / "ref", trust, tiny_disk / "out", FAST, state_dir=tmp / "st")
    assert e.value.needed > 1 << 20
    assert not [p for p in tiny_disk.rglob("*") if p.suffix == ".tmp" or p.name.startswith(".labelcast-probe")]
    (tiny_disk / "filler").unlink()  # space freed: the same payload goes through (it was never accepted)
    rep = receive(tmp / "frames", tmp / "ref", trust, tiny_disk / "out", FAST, state_dir=tmp / "st")
    assert rep["sequence"] == 1


def test_a_content_writer_that_fails_leaves_no_temp_file(tmp_path):
    from labelcast.codec.storage import atomic_write

    def boom(f):
        f.write(b"half")
        raise RuntimeError("serialiser bug")

    with pytest.raises(RuntimeError, match="serialiser bug"):
        atomic_write(tmp_path / "x.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_training_reports_epoch_loss_and_its_schedule_and_says_when_the_epoch_floor_raised_it():
    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import load_device
    from labelcast.receiver.train import train_student

    class Recorder:
        def __init__(self):
            self.steps, self.started, self.figures = 0, None, []

        def __call__(self, n=1):
            self.steps += n

        def start(self, steps, batch):
            self.started = (steps, batch)

        def info(self, **fields):
            self.figures.append(fields)

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 8, 8, 1), dtype=np.uint8), rng.integers(0, 3, 50)
    rec = Recorder()
    pp = Preprocess(size=(8, 8), channels=1, mean=(0.0,), std=(1.0,))
    cfg = StudentConfig(train_samples=10, min_epochs=3)
    _, info = train_student(x, y, 3, pp, load_device("cpu-small"), cfg, progress=rec)
    assert rec.started == (info["steps"], info["batch"]) and rec.steps == info["steps"]
    assert rec.figures and {"epoch", "loss"} <= set(rec.figures[0]) and rec.figures[0]["epoch"].endswith("/3")
    assert info["raised_to_floor"] and info["epochs"] == 3 and info["samples_seen"] == 150
    assert info["train_samples_requested"] == 10 and info["epoch_floor"] == 3


def test_status_names_the_file_a_junk_line_is_about(site):
    tmp, keys, frames, watcher = site
    (tmp / "inbox").mkdir()
    (tmp / "inbox" / "modem-garbage.bin").write_bytes(b"not a frame at all")
    watcher().run()
    code, out, err = run_cli("status", "--state", tmp / "st")
    assert code == 0 and "modem-garbage.bin (18 B) moved to .junk/" in out


def test_receive_help_says_input_is_not_given_with_watch():
    code, out, err = run_cli("receive", "--help")
    assert code == 0 and "[INPUT]" in out and "With --watch INBOX there is no INPUT" in out
    assert "floor of 7 passes" in out


def test_an_oversized_input_is_refused_by_its_size_before_it_is_read(tmp_path, monkeypatch):
    from pathlib import Path as _Path

    from labelcast.codec.errors import LimitError
    from labelcast.codec.framing import read_frames_dir
    from labelcast.receiver.receive import read_input

    big = tmp_path / "huge.lcst"
    with open(big, "wb") as f:
        f.truncate(100 << 20)  # sparse: 100 MiB that cost nothing on disk
    (tmp_path / "frames").mkdir()
    with open(tmp_path / "frames" / "x.lcf", "wb") as f:
        f.truncate(2 << 20)
    monkeypatch.setattr(_Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(LimitError, match="not read"):
        read_input(big)
    with pytest.raises(LimitError, match="larger than any frame"):
        read_frames_dir(tmp_path / "frames")


@pytest.mark.slow  # end to end, 7–20 s: make test-slow
def test_the_serving_example_predicts_with_the_active_model_and_reloads_on_promotion(site):
    import importlib.util

    from labelcast.receiver.serve import OnnxClassifier
    from labelcast.receiver.slots import Slots

    tmp, keys, frames, watcher = site
    write_frames(frames(1), tmp / "inbox")
    watcher().run()
    path = Path(__file__).resolve().parents[2] / "receiver" / "scripts" / "infer_active.py"
    spec = importlib.util.spec_from_file_location("infer_active", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    slots = tmp / "st" / "slots"
    served = script.ActiveModel(slots)
    x = ReferenceStore(tmp / "ref").read(np.arange(40))
    direct = OnnxClassifier(slots / "active" / "student.onnx").predict(x)
    assert np.array_equal(served.predict(x), direct) and not served.reload()
    write_frames(frames(2, seed=1), tmp / "inbox")
    watcher().run()
    s = Slots(slots)
    if s.get("candidate") is not None:
        s.promote_candidate()
    assert served.reload() and served.target == os.readlink(slots / "active")


def test_reference_build_on_a_disk_too_small_is_refused_before_it_starts(tiny_disk, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pool.npy", rng.integers(0, 256, (4000, 28, 28), dtype=np.uint8))  # 3 MiB of items
    code, out, err = run_cli("reference", "build", f"npy:{tmp_path / 'pool.npy'}", "--out", tiny_disk / "ref")
    assert code == 12 and "not enough space for the reference store" in err and "needs 3.4 MiB" in err
    assert not (tiny_disk / "ref" / "items.u8").exists()
