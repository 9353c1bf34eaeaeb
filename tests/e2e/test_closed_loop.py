"""The closed loop through the CLI (docs/receipts.md): a device key, the fleet ledger, a lossy send with no
parity, a NAK, repair frames, the device's receipts, a delta on the head the device reported, the HTML page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import lc

pytest.importorskip("torch")


def pool(d: Path) -> None:
    """Noisy 8×8 templates of 10 classes: a pool of 3,000 and 300 labelled items for the teacher."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, 8, 8))
    y = rng.integers(0, 10, 3300)
    x = np.clip(templates[y] + rng.normal(0, 90, (3300, 8, 8)), 0, 255).astype(np.uint8)
    np.save(d / "pool.npy", x[:3000])
    np.save(d / "train.npy", x[3000:])
    np.save(d / "train-labels.npy", y[3000:])


@pytest.mark.slow  # an end-to-end run through the CLI or the watcher (make test-slow)
def test_a_closed_loop_round(tmp_path: Path):
    d = tmp_path
    pool(d)
    led = ["--ledger", d / "ledger.sqlite"]
    lc("keygen", "--out", d / "ground")
    _, out, _ = lc("keygen", "--role", "device", "--out", d / "dev", "--json")
    assert (
        json.loads(out)["public_key"].endswith("device.pub") and (d / "dev" / "device.key").stat().st_mode & 0o77 == 0
    )
    lc("reference", "build", "npy:" + str(d / "pool.npy"), "--out", d / "ref")
    lc("teacher", "train", "--data", f"npy:{d / 'train.npy'}", "--labels", d / "train-labels.npy",
       "--out", d / "t.onnx", "--epochs", "10", "--width", "8")  # fmt: skip
    lc("fleet", "add", "buoy1", "--key", d / "dev" / "device.pub", "--reference", d / "ref",
       "--link", "lora-eu868-dr5", *led)  # fmt: skip
    send = ["send", "--teacher", d / "t.onnx", "--reference", d / "ref", "--key", d / "ground" / "sender.key",
            "--to", "buoy1", *led, "--strategy", "margin", "--overhead", "0", "--json"]  # fmt: skip
    _, out, _ = lc(*send, "--budget", "900", "--out", d / "o1")
    rep = json.loads(out)
    assert rep["link"] == "lora-eu868-dr5" and "delta" not in rep  # the ledger's link for buoy1
    frames = sorted((d / "o1" / "frames").iterdir())
    inbox = d / "inbox"
    inbox.mkdir()
    assert rep["parity_frames"] == 0 and rep["frames"] >= 3  # --overhead 0: the loop repairs, no parity up front
    lost = 1
    for f in frames[lost:]:
        shutil.copy(f, inbox / f.name)
    device = ["receive", "--watch", inbox, "--once", "--reference", d / "ref", "--trust", d / "ground" / "sender.pub",
              "--state", d / "state", "--train-samples", "500", "--receipts", d / "rx",
              "--device-key", d / "dev" / "device.key", "--link", "lora-eu868-dr5", "--nak-after", "0"]  # fmt: skip
    lc(*device)
    _, out, _ = lc("ingest", d / "rx", *led, "--json")
    assert json.loads(out)["ingested"] >= 1
    _, out, _ = lc("fleet", "show", "buoy1", *led)
    assert "partial, needs 1 blocks" in out
    _, out, _ = lc("repair", "--to", "buoy1", "--out", d / "fix", *led, "--json")
    fix = json.loads(out)["payloads"]
    assert fix[0]["frames"] == 1 and fix[0]["bytes"] == rep["frame_bytes"]  # one frame, not the payload again
    for f in (d / "fix").iterdir():
        shutil.copy(f, inbox / f.name)
    lc(*device)
    # a forged receipt in the batch is refused, the rest goes in
    forged = bytearray(sorted((d / "rx").iterdir())[-1].read_bytes())
    forged[15] ^= 1
    (d / "rx" / "zz-forged.lcr").write_bytes(bytes(forged))
    code, out, _ = lc("ingest", d / "rx", *led, "--json", ok=False)
    res = json.loads(out.splitlines()[-1]) if out.strip().startswith("{") else json.loads(out)
    assert code == 1 and [r["file"].endswith("zz-forged.lcr") for r in res["refused"]] == [True]
    assert res["ingested"] >= 1 and res["replays"] >= 1
    _, out, _ = lc("fleet", "list", *led, "--json")
    dev = json.loads(out)["devices"][0]
    assert dev["head_sequence"] == rep["sequence"] and dev["last_seen"] is not None
    # the next payload is a delta on the head the device reported
    _, out, _ = lc(*send, "--budget", "1400", "--out", d / "o2")
    rep2 = json.loads(out)
    assert rep2["fleet"]["parent"] == str((d / "o1").resolve()) and rep2["delta"]["parent"]
    lc("fleet", "report", "--html", d / "fleet.html", *led)
    page = (d / "fleet.html").read_text()
    assert (
        "buoy1" in page
        and "<svg" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


@pytest.mark.slow  # an end-to-end run through the CLI or the watcher (make test-slow)
def test_a_sealed_payload_opens_on_its_device_only(tmp_path: Path):
    d = tmp_path
    pool(d)
    lc("keygen", "--out", d / "ground")
    lc("keygen", "--role", "device", "--out", d / "dev")
    lc("keygen", "--role", "device", "--out", d / "other")
    lc("reference", "build", "npy:" + str(d / "pool.npy"), "--out", d / "ref", "--clusters", "0")
    lc("teacher", "train", "--data", f"npy:{d / 'train.npy'}", "--labels", d / "train-labels.npy",
       "--out", d / "t.onnx", "--epochs", "10", "--width", "8")  # fmt: skip
    send = ["send", "--teacher", d / "t.onnx", "--reference", d / "ref", "--key", d / "ground" / "sender.key",
            "--link", "iridium-sbd-mt", "--budget", "270", "--strategy", "margin", "--json"]  # fmt: skip
    _, out, _ = lc(*send, "--out", d / "signed")
    _, out2, _ = lc(*send, "--seal-to", d / "dev" / "device.pub", "--out", d / "sealed")
    signed, sealed = json.loads(out), json.loads(out2)
    assert signed["mode"] == "signed" and signed["auth_bytes"] == 64
    assert sealed["mode"].startswith("sealed to device") and sealed["auth_bytes"] == 16
    assert sealed["selected_items"] > signed["selected_items"]  # the bytes saved carry labels
    rx = ["receive", d / "sealed" / "frames", "--reference", d / "ref", "--trust", d / "ground" / "sender.pub",
          "--train-samples", "300"]  # fmt: skip
    code, _, err = lc(*rx, "--out", d / "m0", "--state", d / "s0", ok=False)
    assert code == 24 and "--device-key" in err  # SealError: no key to open it
    code, _, err = lc(*rx, "--out", d / "m1", "--state", d / "s1", "--device-key", d / "other" / "device.key", ok=False)
    assert code == 24 and "sealed to device" in err
    _, out, _ = lc(*rx, "--out", d / "m2", "--state", d / "s2", "--device-key", d / "dev" / "device.key", "--json")
    assert json.loads(out)["selected_items"] == sealed["selected_items"]
    code, _, err = lc(*rx, "--out", d / "m3", "--state", d / "s2", "--device-key", d / "dev" / "device.key", ok=False)
    assert code == 5  # the same sequence again: a replay, as for a signed payload
    _, out, _ = lc("link", "plan", d / "sealed" / "payload.lcst", "--link", "iridium-sbd-mt")
    assert out.startswith("sealed (16-B tag): ")
