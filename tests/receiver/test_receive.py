"""The device's order of trust, replay state, resume and storage failures, on a tiny store."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from labelcast.codec.errors import (
    ExpiredError,
    ReferenceMismatchError,
    ReplayError,
    SignatureError,
    StaleError,
    StorageError,
    UnknownKeyError,
)
from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver.receive import ReceiveConfig, receive
from labelcast.receiver.train import StudentConfig
from tests.conftest import make_store, signed_payload

FAST = StudentConfig(train_samples=600, min_epochs=2, checkpoint_every=5)


@pytest.fixture
def setup(tmp_path):
    ref = ReferenceStore(make_store(tmp_path / "ref", n=600))
    priv_path, pub_path = generate_keypair(tmp_path / "keys")
    key = load_private_key(priv_path)
    trust = TrustSet.from_files([pub_path])
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(600, 120, replace=False))
    lab = rng.integers(0, 3, 120)

    def payload(seq=1, expires=None, k=key, root=None):
        when = {"expires_at": expires} if expires else {}
        data = signed_payload(ref, k, idx, lab, 3, sequence=seq, root=root, **when)
        p = tmp_path / f"p{seq}-{hashlib.sha256(data).hexdigest()[:6]}.lcst"
        p.write_bytes(data)
        return p

    return tmp_path, ref, trust, payload


def _recv(tmp, ref, trust, p, out="out", **kw):
    return receive(p, ref, trust, tmp / out, ReceiveConfig(student=FAST), state_dir=tmp / "state", **kw)


def test_full_receive_from_frames_writes_model_and_report(setup):
    tmp, ref, trust, payload = setup
    data = payload().read_bytes()
    write_frames(make_frames(data, 64, 34), tmp / "frames")
    rep = _recv(tmp, ref, trust, tmp / "frames")
    assert (tmp / "out" / "student.onnx").exists() and (tmp / "out" / "receive-report.json").exists()
    assert rep["selected_items"] == 120 and rep["export"]["max_abs_diff_vs_torch"] < 1e-3


def test_dry_run_trains_nothing_and_does_not_advance_state(setup):
    tmp, ref, trust, payload = setup
    p = payload()
    rep = _recv(tmp, ref, trust, p, dry_run=True)
    assert rep["dry_run"] and sum(rep["class_counts"]) == 120
    assert not (tmp / "out").exists()
    _recv(tmp, ref, trust, p)  # still accepted afterwards


def test_replayed_and_older_payloads_refused(setup):
    tmp, ref, trust, payload = setup
    p2 = payload(seq=2)
    _recv(tmp, ref, trust, p2)
    with pytest.raises(ReplayError) as e:
        _recv(tmp, ref, trust, p2, out="again")
    assert not isinstance(e.value, StaleError)
    with pytest.raises(StaleError):
        _recv(tmp, ref, trust, payload(seq=1), out="old")
    assert not (tmp / "again" / "student.onnx").exists()


def test_expired_unknown_key_and_other_reference_refused(setup):
    tmp, ref, trust, payload = setup
    with pytest.raises(ExpiredError):
        _recv(tmp, ref, trust, payload(expires=int(time.time()) - 1))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    with pytest.raises(UnknownKeyError):
        _recv(tmp, ref, trust, payload(k=Ed25519PrivateKey.generate()))
    with pytest.raises(SignatureError):
        _recv(tmp, ref, trust, payload(root=hashlib.sha256(b"another set").digest()))
    assert not (tmp / "out").exists()


def test_altered_reference_item_refused_before_training(setup):
    tmp, ref, trust, payload = setup
    p = payload()
    from labelcast.codec.payload import open_payload

    sel = open_payload(p.read_bytes(), trust, ref.root, segments=ref.manifest.segments).indices
    with open(ref.path / "items.u8", "r+b") as f:
        f.seek(int(sel[3]) * 64)
        f.write(b"\xff\x00\xff")
    with pytest.raises(ReferenceMismatchError, match=f"item {int(sel[3])}"):
        _recv(tmp, ReferenceStore(ref.path), trust, p)
    assert not (tmp / "out").exists()


def test_resume_after_interruption_matches_uninterrupted(setup, tmp_path):
    tmp, ref, trust, payload = setup
    p = payload()
    full = _recv(tmp, ref, trust, p, out="a")
    # simulate a power cut: train a few steps with checkpoints, stop, then resume
    from labelcast.codec.payload import open_payload
    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import load_device
    from labelcast.receiver.train import train_student

    pl = open_payload(p.read_bytes(), trust, ref.root, segments=ref.manifest.segments)
    x = np.asarray(ref.items[pl.indices])
    pp = Preprocess(size=8, channels=1)
    ck = tmp_path / "ck.pt"
    tag = hashlib.sha256(p.read_bytes()).hexdigest()
    train_student(x, pl.labels, 3, pp, load_device("cpu-small"), FAST, checkpoint=ck, tag=tag, stop_after=7)
    m2, _ = train_student(x, pl.labels, 3, pp, load_device("cpu-small"), FAST, checkpoint=ck, tag=tag, resume=True)
    m3, _ = train_student(x, pl.labels, 3, pp, load_device("cpu-small"), FAST, tag=tag)
    for a, b in zip(m2.state_dict().values(), m3.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())
    assert full["training"]["steps"] > 7


def test_checkpoint_write_failure_is_reported_and_previous_kept(setup, tmp_path, monkeypatch):
    import os

    from labelcast.receiver import train as tr

    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"previous")

    def full_disk(fd):  # the checkpoint is serialised in memory; the disk fails when it is written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageError, match="No space left"):
        tr.save_checkpoint(ck, {"x": 1})
    monkeypatch.undo()
    assert ck.read_bytes() == b"previous"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_unwritable_output_is_a_clear_error_and_state_not_advanced(setup):
    tmp, ref, trust, payload = setup
    (tmp / "blocked").write_text("a file where the output folder should go")
    p = payload()
    with pytest.raises(StorageError, match="cannot create output folder"):
        _recv(tmp, ref, trust, p, out="blocked/out")
    _recv(tmp, ref, trust, p)  # the same payload is still accepted once there is room


def test_power_cut_between_report_and_accept_resumes_instead_of_losing_the_payload(setup, monkeypatch):
    from labelcast.receiver.state import ReplayState

    tmp, ref, trust, payload = setup
    p = payload()

    class Cut(Exception):
        pass

    def cut(self, kid, seq):  # the power goes right after the model and its report are on disk
        raise Cut

    with monkeypatch.context() as m:
        m.setattr(ReplayState, "accept", cut)
        with pytest.raises(Cut):
            _recv(tmp, ref, trust, p)
    assert (tmp / "out" / "receive-report.json").exists()  # durable before the sequence counts
    rep = _recv(tmp, ref, trust, p, resume=True)  # not a replay: the begun payload finishes
    assert rep["sequence"] == 1 and (tmp / "out" / "student.onnx").exists()
    with pytest.raises(ReplayError):  # and now it is accepted
        _recv(tmp, ref, trust, p)
