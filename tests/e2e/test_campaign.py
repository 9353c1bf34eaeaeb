"""One campaign through the CLI, as a field engineer runs it (docs/field.md describes what it checks):

1. a payload signed by a key the device does not trust yet is refused, listed by ``status`` with its
   reason, and goes through once the key is trusted — frames never re-sent;
2. a better payload sent with every default is promoted (every payload holds back items by default);
3. a delta whose parent has not arrived waits in the inbox and applies once the parent comes;
4. a second watcher on the same state folder exits at once, naming the holder;
5. a full device disk gives ``StorageError`` before training, leaves no temp file, and the payload goes
   through once space is freed;
6. on the ground: ``send`` on a full disk writes no outbox and records the sequence it used;
   ``teacher train`` into a read-only folder fails before training; ``link simulate`` twice into one
   folder keeps both payloads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import lc

pytest.importorskip("torch")


def events(state: Path, name: str) -> list[dict]:
    return [e for e in map(json.loads, (state / "events.jsonl").read_text().splitlines()) if e["event"] == name]


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    """Noisy 8×8 templates of 4 classes: a pool, the sender's labelled data, two sender keys, and two
    teachers: a first one from 60 items (weak) and a later, better one — the campaign improves."""
    d = tmp_path_factory.mktemp("campaign")
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (4, 8, 8))

    def draw(n):
        y = rng.integers(0, 4, n)
        return np.clip(templates[y] + rng.normal(0, 80, (n, 8, 8)), 0, 255).astype(np.uint8), y

    pool, _ = draw(3000)
    x, y = draw(1500)
    np.save(d / "pool.npy", pool)
    np.save(d / "train.npy", x)
    np.save(d / "train-labels.npy", y)
    np.save(d / "few.npy", x[:60])
    np.save(d / "few-labels.npy", y[:60])
    lc("keygen", "--out", d / "keys")
    lc("keygen", "--out", d / "keys2")
    lc("reference", "build", "npy:" + str(d / "pool.npy"), "--out", d / "ref")
    _, out, _ = lc(
        "teacher", "train", "--data", f"npy:{d / 'train.npy'}", "--labels", d / "train-labels.npy",
        "--out", d / "t.onnx", "--epochs", "6", "--width", "8",
    )  # fmt: skip
    assert "validation accuracy" in out and "held-back items" in out
    lc("teacher", "train", "--data", f"npy:{d / 'few.npy'}", "--labels", d / "few-labels.npy",
       "--out", d / "t0.onnx", "--epochs", "2", "--width", "4")  # fmt: skip
    return d


def send(d: Path, out: Path, budget: int, *extra, key: str = "keys2", teacher: str = "t.onnx", ok: bool = True):
    args = ["send", "--teacher", d / teacher, "--reference", d / "ref", "--key", d / key / "sender.key"]
    return lc(*args, "--budget", budget, "--out", out, "--overhead", "0", *extra, ok=ok)


def deliver(outbox: Path, inbox: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for f in sorted((outbox / "frames").iterdir()):
        shutil.copy(f, inbox / f"{outbox.name}-{f.name}")


def watch_once(d: Path, inbox: Path, state: Path, ok: bool = True) -> tuple[int, dict]:
    args = ["receive", "--watch", inbox, "--once", "--reference", d / "ref", "--trust", d / "trusted"]
    code, out, err = lc(*args, "--state", state, "--train-samples", "3000", "--json", ok=ok)
    return code, (json.loads(out.splitlines()[-1]) if code == 0 else {"error": err})


@pytest.mark.slow  # 40 s end to end: make test-slow
def test_a_field_campaign(ground, tmp_path, tiny_disk):
    d, dev = ground, tmp_path
    (d / "trusted").mkdir()  # the device trusts the first key only
    shutil.copy(d / "keys" / "sender.pub", d / "trusted" / "first.pub")
    state, inbox = dev / "state", dev / "inbox"

    # 1. refused (a key not trusted yet), listed with its reason; retried after the fix, frames not re-sent
    send(d, dev / "o1", 270, teacher="t0.onnx")  # the first teacher, still weak
    deliver(dev / "o1", inbox)
    _, res = watch_once(d, inbox, state)
    assert res["refused"] == 1 and res["processed"] == 0
    _, out, _ = lc("status", "--state", state)
    assert "refused: 1" in out and "UnknownKeyError" in out and "retried when the trust changes" in out
    shutil.copy(d / "keys2" / "sender.pub", d / "trusted" / "second.pub")
    _, res = watch_once(d, inbox, state)
    assert res["promoted"] == 1, res
    assert events(state, "retrying refused payload")[0]["reason"] == "the trust changed"

    # 2. a better payload (a better teacher), every default: it holds back items, so the device compares and
    # promotes it
    _, out, _ = send(d, dev / "o2", 4096)
    assert "warning" not in out
    deliver(dev / "o2", inbox)
    _, res = watch_once(d, inbox, state)
    assert res["promoted"] == 1 and res["kept_aside"] == 0, res
    (ev,) = events(state, "promoted")[-1:]
    assert ev["validation"]["accuracy"] > ev["validation"]["compare_accuracy"] and ev["validation"]["items"] >= 20
    _, out, _ = lc("status", "--state", state)
    assert "teacher agreement" in out and "held-back items (vs" in out

    # 3. a delta whose parent has not arrived waits in the inbox, then applies after its parent
    send(d, dev / "o3", 270)
    _, out, _ = send(d, dev / "o4", 540, "--parent", dev / "o3", "--json")
    assert json.loads(out.splitlines()[-1])["delta"]["sent"] == "delta"
    deliver(dev / "o4", inbox)
    _, res = watch_once(d, inbox, state)
    assert res["waiting"] == 1 and res["refused"] == 0 and res["processed"] == 0, res
    assert any(f.name.startswith("o4-") for f in inbox.iterdir())  # its frames stay in the inbox
    assert "waiting for parent" in lc("status", "--state", state)[1]
    deliver(dev / "o3", inbox)
    _, res = watch_once(d, inbox, state)
    assert res["processed"] == 2 and res["refused"] == 0, res
    heads = [json.loads(p.read_text()) for p in (state / "chains").glob("*/head.json")]
    assert [h["sequence"] for h in heads] == [4] and heads[0]["parent"]

    # 4. a second watcher on the same state folder exits at once, naming the holder
    env = {**os.environ, "LABELCAST_PROGRESS": "0"}
    args = ["receive", "--watch", inbox, "--reference", d / "ref", "--trust", d / "trusted", "--state", state]
    first = subprocess.Popen([sys.executable, "-m", "labelcast", *map(str, args)], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and str(first.pid) not in ((state / "lock").read_text() or ""):
            time.sleep(0.2)
        code, res = watch_once(d, inbox, state, ok=False)
        assert code == 21 and f"in use by watcher (pid {first.pid}" in res["error"]
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)

    # 5. a full device disk: StorageError before training, no temp file left, then through once space is freed
    small = tiny_disk / "device"
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (3 << 19))  # 1.5 MiB of 2: the student's checkpoint does not fit
    deliver(dev / "o2", dev / "inbox2")
    _, res = watch_once(d, dev / "inbox2", small)
    assert res["retrying"] == 1 and res["processed"] == 0
    (ev,) = events(small, "failed, will retry")
    assert ev["error"] == "StorageError" and "not enough space for the training checkpoint" in ev["message"]
    assert not [p for p in tiny_disk.rglob("*") if p.name.endswith(".tmp") or ".labelcast-probe" in p.name]
    filler.unlink()
    _, res = watch_once(d, dev / "inbox2", small)
    assert res["promoted"] == 1, res

    # 6. the ground: a full disk writes no outbox but records the sequence; a read-only folder fails first
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last block
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    seq_before = int((d / "keys2" / "sender.seq").read_text())
    code, out, err = send(d, tiny_disk / "outbox", 4096, ok=False)
    assert code == 12 and f"Sequence {seq_before + 1} is recorded as used" in err
    assert not (tiny_disk / "outbox").exists() or not list((tiny_disk / "outbox").iterdir())
    assert int((d / "keys2" / "sender.seq").read_text()) == seq_before + 1
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    t = time.time()
    code, out, err = lc("teacher", "train", "--data", f"npy:{d / 'train.npy'}", "--labels", d / "train-labels.npy",
                        "--out", tiny_disk / "t.onnx", "--epochs", "50", ok=False)  # fmt: skip
    assert code == 12 and "cannot write the teacher" in err and time.time() - t < 10  # before 50 epochs

    # link simulate twice into one folder keeps both payloads
    for o in ("o1", "o2"):
        lc("link", "simulate", dev / o / "frames", "--out", dev / "sim", "--loss", "0", "--runs", "0")
    names = {p.name.split("-")[1] for p in (dev / "sim").iterdir()}
    assert len(names) == 2  # arrived-<payload id>-NNNNNN.lcf: the second run did not overwrite the first
    for pid in names:
        lc("reassemble", dev / "sim", "--payload-id", pid, "--out", dev / f"{pid}.lcst")
    got = sorted((dev / f"{pid}.lcst").read_bytes() for pid in names)
    assert got == sorted((dev / o / "payload.lcst").read_bytes() for o in ("o1", "o2"))
    code, _, err = lc("reassemble", dev / "sim", "--out", dev / "x.lcst", ok=False)
    assert code and "--payload-id" in err
