"""The unattended watcher: interleaved slow frames, A/B slots, rollback, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.framing import make_frames
from labelcast.codec.keys import generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest
from tests.conftest import signed_payload

ENV = {**os.environ, "LABELCAST_PROGRESS": "0"}


def learnable_store(path: Path, n: int = 1200, classes: int = 4):
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (classes, 8, 8, 1))
    y = rng.integers(0, classes, n)
    x = np.clip(templates[y] + rng.normal(0, 110, (n, 8, 8, 1)), 0, 255).astype(np.uint8)
    path.mkdir(parents=True)
    x.tofile(path / "items.u8")
    write_manifest(path / "manifest.lcm", hash_items(x), np.zeros(n, np.uint32), ["all"], (8, 8, 1))
    return ReferenceStore(path), y


@pytest.fixture
def field(tmp_path):
    store, y = learnable_store(tmp_path / "ref")
    priv, pub = generate_keypair(tmp_path / "keys")
    key = load_private_key(priv)
    rng = np.random.default_rng(1)

    def payload(seq, k, val_every):
        idx = np.sort(rng.choice(store.n, k, replace=False))
        data = signed_payload(store, key, idx, y[idx], 4, segments=None, sequence=seq, hints={"val_every": val_every})
        return make_frames(data, 64, 34)

    return tmp_path, payload


def watcher(tmp: Path, *extra):
    cmd = [
        sys.executable,
        "-m",
        "labelcast",
        "receive",
        "--watch",
        str(tmp / "inbox"),
        "--reference",
        str(tmp / "ref"),
        "--trust",
        str(tmp / "keys" / "sender.pub"),
        "--state",
        str(tmp / "state"),
        "--train-samples",
        "3000",
        *extra,
    ]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events(tmp: Path) -> list[dict]:
    p = tmp / "state" / "events.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def wait_for(pred, timeout: float, proc=None) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"watcher exited {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.2)
    return False


DRIP = r"""
import os, sys, time
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for f in sorted(src.iterdir(), key=lambda p: int(p.name.split('-')[0])):
    tmp = dst / ('.' + f.name + '.tmp')
    tmp.write_bytes(f.read_bytes())
    os.replace(tmp, dst / f.name)   # atomic, as a modem handler would
    time.sleep(float(sys.argv[3]))
"""


def stage_interleaved(tmp: Path, fa: list[bytes], fb: list[bytes]) -> Path:
    """Frames of both payloads, interleaved, named by arrival order; plus one junk file."""
    src = tmp / "staged"
    src.mkdir()
    order = []
    for i in range(max(len(fa), len(fb))):
        if i < len(fa):
            order.append(("a", i, fa[i]))
        if i < len(fb):
            order.append(("b", i, fb[i]))
    order.insert(3, ("junk", 0, b"this is not a frame"))
    for n, (who, i, data) in enumerate(order):
        (src / f"{n}-{who}{i}.lcf").write_bytes(data)
    return src


@pytest.mark.slow
def test_interleaved_payloads_trained_in_order_better_promoted_worse_kept_aside(field):
    tmp, payload = field
    good, tiny = payload(1, 500, 5), payload(2, 16, 2)
    (tmp / "inbox").mkdir(exist_ok=True)
    w = watcher(tmp)
    # frames start arriving once the watcher is up, one a second — slower than its 2-second scans — so it sees
    # the payloads partly delivered (a 0.15 s drip could land every frame between two scans)
    assert wait_for(lambda: any(e["event"] == "watch started" for e in events(tmp)), 120, w), events(tmp)
    drip = subprocess.Popen(
        [sys.executable, "-c", DRIP, str(stage_interleaved(tmp, good, tiny)), str(tmp / "inbox"), "1.0"]
    )
    try:
        done = wait_for(lambda: sum(e["event"] in ("promoted", "kept aside") for e in events(tmp)) >= 2, 240, w)
        assert done, events(tmp)
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(30)
        drip.wait(30)
    ev = events(tmp)
    assert ev[-1] == {**ev[-1], "event": "watch stopped", "reason": "SIGTERM"}
    finals = [e for e in ev if e["event"] in ("promoted", "kept aside")]
    assert [e["event"] for e in finals] == ["promoted", "kept aside"]
    assert finals[0]["slot"].endswith("-s1") and finals[1]["slot"].endswith("-s2")
    assert any(e["event"] == "junk ignored" for e in ev) and any(e["event"] == "frames missing" for e in ev)
    st = json.loads(
        subprocess.run(
            [sys.executable, "-m", "labelcast", "model", "status", "--state", str(tmp / "state"), "--json"],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert st["active"]["slot"].endswith("-s1") and st["candidate"]["slot"].endswith("-s2")

    # an operator promotes the candidate, then rolls back: the previous model returns byte for byte
    slots = tmp / "state" / "slots"
    before = (slots / "active" / "student.onnx").read_bytes()
    for cmd in (["model", "promote"], ["model", "rollback"]):
        subprocess.run(
            [sys.executable, "-m", "labelcast", *cmd, "--state", str(tmp / "state")],
            env=ENV,
            check=True,
            capture_output=True,
        )
    assert (slots / "active" / "student.onnx").read_bytes() == before
    assert (slots / "previous").resolve().name.endswith("-s2")


@pytest.mark.slow
def test_sigkill_never_leaves_active_slot_broken_nor_trains_twice(field):
    tmp, payload = field
    frames = {"a": payload(1, 300, 5), "b": payload(2, 300, 5)}
    (tmp / "inbox").mkdir()
    for who, fs in frames.items():
        for i, f in enumerate(fs):
            (tmp / "inbox" / f"{who}-{i:04d}.lcf").write_bytes(f)
    rng = np.random.default_rng(3)
    import onnxruntime as ort

    for _ in range(6):
        w = watcher(tmp)
        time.sleep(float(rng.uniform(1.0, 6.0)))
        w.kill()
        w.wait()
        active = tmp / "state" / "slots" / "active"
        if active.is_symlink():  # once a model is in service it must stay loadable
            sess = ort.InferenceSession(str(active / "student.onnx"), providers=["CPUExecutionProvider"])
            assert sess.run(None, {"image": np.zeros((1, 1, 8, 8), np.float32)})[0].shape == (1, 4)
    w = watcher(tmp, "--once")
    w.wait(300)
    finals = [e for e in events(tmp) if e["event"] in ("promoted", "kept aside")]
    assert sorted(e["payload_id"] for e in finals) == sorted({e["payload_id"] for e in finals})  # once each
    assert len(finals) == 2
    assert not any(e["event"] == "refused" for e in events(tmp))
