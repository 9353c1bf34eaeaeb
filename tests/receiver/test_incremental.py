"""Incremental payloads on the device (issue #21): the chain's head, warm starts, and every refusal leaving
the device's cumulative set unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.delta import Changes, LabelledSet, Relabel
from labelcast.codec.errors import DecodeError, ParentError, ReplayError
from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver.chain import Chains
from labelcast.receiver.receive import ReceiveConfig, receive
from labelcast.receiver.train import StudentConfig
from tests.conftest import make_store, resign, signed_payload

torch = pytest.importorskip("torch")
FAST = ReceiveConfig(student=StudentConfig(train_samples=400, min_epochs=2, checkpoint_every=3), backbone="none")


@pytest.fixture
def chain(tmp_path: Path):
    store = ReferenceStore(make_store(tmp_path / "ref", n=600))
    priv, pub = generate_keypair(tmp_path / "keys")
    key = load_private_key(priv)
    trust = TrustSet.from_files([pub])
    first = np.arange(0, 600, 6)
    labels = first % 3
    parent = LabelledSet(600, 3, first, labels)

    def full(seq=1):
        data = signed_payload(store, key, first, labels, 3, n_items=600, sequence=seq)
        return data

    def delta(seq, parent_digest=None, changes=None, add=np.arange(1, 600, 12), classes=3, names=None, k_parent=None):
        changes = (
            changes
            if changes is not None
            else Changes(k_parent or first.size, Relabel(np.array([0, 5]), np.array([0, 1])))
        )
        d = {"parent": parent_digest or parent.digest, "changes": changes, "base": first}
        data = signed_payload(
            store, key, add, add % classes, classes, n_items=600, sequence=seq, delta=d, class_names=names
        )
        return data

    def recv(data, out, **kw):
        p = tmp_path / f"{out}.lcst"
        p.write_bytes(data)
        return receive(p, store, trust, tmp_path / out, FAST, state_dir=tmp_path / "state", **kw)

    return tmp_path, store, key, trust, full, delta, recv, parent


def _head(tmp: Path) -> dict | None:
    heads = list((tmp / "state" / "chains").glob("*/head.json"))
    return json.loads(heads[0].read_text()) if heads else None


@pytest.mark.slow  # end to end, 7–20 s: make test-slow
def test_a_delta_applies_to_the_head_and_trains_warm(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    r1 = recv(full(), "d1")
    assert r1["chain"]["parent"] is None and not r1["chain"]["warm_start"] and r1["chain"]["items"] == 100
    r2 = recv(delta(2), "d2")
    assert r2["chain"]["parent"] == parent.digest.hex() and r2["chain"]["warm_start"]
    assert r2["chain"]["items"] == 150 and r2["training"]["items"] == 150
    assert _head(tmp)["digest"] == r2["chain"]["head"] and _head(tmp)["sequence"] == 2


def test_a_delta_can_add_a_class_with_its_name(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    r = recv(delta(2, add=np.array([1, 7, 13]), classes=4, names=["a", "b", "c", "d"]), "d2")
    assert r["classes"] == 4 and r["chain"]["classes"] == 4


def test_a_delta_on_the_wrong_parent_is_refused_and_changes_nothing(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    before = _head(tmp)
    with pytest.raises(ParentError, match="not here, head is"):
        recv(delta(2, parent_digest=hashlib.sha256(b"other").digest()), "d2")
    assert _head(tmp) == before and not (tmp / "d2" / "student.onnx").exists()


@pytest.mark.slow  # end to end, 7–20 s: make test-slow
def test_a_forked_chain_is_refused(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    recv(delta(2), "d2")
    before = _head(tmp)
    with pytest.raises(ParentError, match="forked chain"):
        recv(delta(3), "d3")  # a second delta on the same parent
    assert _head(tmp) == before


def test_a_replayed_delta_is_refused(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    d = delta(2)
    recv(d, "d2")
    with pytest.raises(ReplayError):
        recv(d, "d2-again")


def test_removing_or_relabelling_an_item_not_in_the_set_is_refused(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    before = _head(tmp)
    for changes in (Changes(110, remove=np.array([105])), Changes(110, Relabel(np.array([104]), np.array([1])))):
        with pytest.raises(ParentError, match="made for a set of 110 items"):
            recv(delta(2, changes=changes), "d2")
        assert _head(tmp) == before


def test_a_class_index_beyond_the_declared_classes_is_refused(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    before = _head(tmp)
    good = delta(2, add=np.array([1, 7, 13, 19]), classes=5, names=None)

    def fewer_classes(body):  # the header's class count (after seq, expiry, N, k) says 3, the labels use 0..4
        b = bytearray(body)
        i = b.index(bytes([0x05]), 14)
        b[i] = 3
        return b

    with pytest.raises(DecodeError):
        recv(resign(good, key, store.root, fewer_classes), "d2")
    assert _head(tmp) == before


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_a_kill_between_delta_applied_and_training_done_resumes_to_the_same_result(chain):
    tmp, store, key, trust, full, delta, recv, parent = chain
    recv(full(), "d1")
    d = delta(2)
    steps = []

    def cut(_n):
        steps.append(1)
        if len(steps) == 5:
            raise KeyboardInterrupt  # as a power cut, after a checkpoint

    with pytest.raises(KeyboardInterrupt):
        recv(d, "cut", progress=cut)
    assert _head(tmp)["sequence"] == 1  # nothing moved
    resumed = recv(d, "cut", resume=True)
    # the same payload on a fresh device (same first payload) without the cut
    other = tmp / "fresh"
    recv_fresh = lambda data, out, **kw: receive(  # noqa: E731
        _write(tmp / f"f-{out}.lcst", data), store, trust, other / out, FAST, state_dir=other / "state", **kw
    )
    recv_fresh(full(), "d1")
    whole = recv_fresh(d, "d2")
    x = np.asarray(store.items[:200])
    from labelcast.receiver.serve import OnnxClassifier

    a = OnnxClassifier(tmp / "cut" / "student.onnx").logits(x)
    b = OnnxClassifier(whole["student"]).logits(x)
    assert resumed["chain"]["head"] == whole["chain"]["head"] and np.abs(a - b).max() < 1e-4


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_a_chain_delivered_out_of_order_through_the_watcher(chain):
    from labelcast.receiver.watch import WatchConfig, Watcher

    tmp, store, key, trust, full, delta, recv, parent = chain
    write_frames(make_frames(delta(2), 64, 34), tmp / "inbox")  # the delta comes first
    w = Watcher(tmp / "inbox", store, trust, FAST, WatchConfig(once=True, retry_s=0.0), state_dir=tmp / "state")
    res = w.run()
    assert res["waiting"] == 1 and res["processed"] == 0 and res["refused"] == 0  # its parent is not here
    assert len(list((tmp / "inbox").glob("*.lcf"))) == len(make_frames(delta(2), 64, 34))  # frames stay in the inbox
    assert res["pending"][next(iter(res["pending"]))]["state"] == "waiting for parent"
    assert Chains(tmp / "state").head_info(next(iter(trust.keys))) is None
    write_frames(make_frames(full(), 64, 34), tmp / "inbox")
    w.run()  # one pass: the full payload first (lower sequence), then the delta on the head it made
    assert sorted(v["sequence"] for v in w.done.values()) == [1, 2]
    assert _head(tmp)["sequence"] == 2
