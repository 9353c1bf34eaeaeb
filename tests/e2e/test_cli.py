"""End to end through the real CLI on a small slice of Fashion-MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelcast.datasets.builtin import FASHION_DIR
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(not FASHION_DIR.exists(), reason="Fashion-MNIST not installed (make test installs it)")


def lc(*args, cwd: Path, check: bool = True, subprocess_: bool = False) -> subprocess.CompletedProcess:
    """``labelcast ARGS`` — in this process (fast), or as ``python -m labelcast`` where the entry point matters."""
    if subprocess_:
        env = {**os.environ, "LABELCAST_PROGRESS": "0"}
        cmd = [sys.executable, "-m", "labelcast", *map(str, args)]
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    else:
        code, out, err = run_cli(*args, cwd=cwd)
        p = subprocess.CompletedProcess(list(args), code, out, err)
    if check and p.returncode:
        raise AssertionError(f"labelcast {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory):
    from labelcast.datasets.builtin import fashion

    d = tmp_path_factory.mktemp("slice")
    x, _ = fashion("train")
    np.save(d / "pool.npy", x[:4000, :, :, 0])
    xt, yt = fashion("t10k")
    np.save(d / "train.npy", xt[:3000, :, :, 0])
    np.save(d / "train-labels.npy", yt[:3000])
    np.save(d / "test.npy", xt[3000:4000, :, :, 0])
    np.save(d / "test-labels.npy", yt[3000:4000])
    return d


@pytest.mark.slow
def test_cli_end_to_end_and_tampered_payload_refused(slice_dir: Path):
    d = slice_dir
    lc("keygen", "--out", "keys", cwd=d)
    assert oct(os.stat(d / "keys" / "sender.key").st_mode & 0o777) == "0o600"
    ref = json.loads(lc("reference", "build", "npy:pool.npy", "--out", "ref", "--json", cwd=d).stdout.splitlines()[-1])
    assert ref["items"] == 4000
    v = json.loads(lc("reference", "verify", "ref", "--full", "--json", cwd=d).stdout.splitlines()[-1])
    assert v["ok"] and v["root"] == ref["root"]
    lc("teacher", "train", "--data", "npy:train.npy", "--out", "teacher.onnx", "--epochs", "3", "--width", "16", cwd=d)
    sent = lc(
        "send",
        "--teacher",
        "teacher.onnx",
        "--reference",
        "ref",
        "--key",
        "keys/sender.key",
        "--budget",
        "2700",
        "--overhead",
        "34",  # a fixed parity (the ARQ link would need none) so the 15 % loss simulated below is survivable
        "--out",
        "outbox",
        "--json",
        cwd=d,
    )
    rep = json.loads(sent.stdout.splitlines()[-1])
    assert rep["frames"] * 270 <= 2700 and rep["payload_bytes"] < 2700
    for key in (
        "strategy",
        "reference_items",
        "selected_items",
        "class_counts",
        "payload_bytes",
        "section_bytes",
        "frames",
        "link",
        "link_seconds",
    ):
        assert key in rep
    assert json.loads((d / "outbox" / "send-report.json").read_text())["selected_items"] == rep["selected_items"]
    # the default strategy is auto: a Fashion-MNIST teacher on a Fashion-MNIST pool is near its domain
    assert rep["auto"]["far"] is False and rep["strategy"] == "random-keyed" and not rep["soft_labels"]
    assert "advice" not in rep  # a near pool: no backbone advice
    assert 0 < rep["auto"]["teacher_confidence"] <= 1 and rep["auto"]["shift"] < 0.15
    # detector-guided refinement: a second teacher (other seed and width) flags and replaces items
    lc(
        "teacher",
        "train",
        "--data",
        "npy:train.npy",
        "--out",
        "detector.onnx",
        "--epochs",
        "2",
        "--width",
        "8",
        "--seed",
        "1",
        cwd=d,
    )
    refined = json.loads(
        lc(
            "send",
            "--teacher",
            "teacher.onnx",
            "--reference",
            "ref",
            "--key",
            "keys/sender.key",
            "--detector",
            "detector.onnx",
            "--budget",
            "2700",
            "--out",
            "outbox-refined",
            "--json",
            cwd=d,
        ).stdout.splitlines()[-1]
    )
    assert refined["framed_bytes"] <= 2700 and refined["refinement"]["flagged"] >= refined["refinement"]["replaced"]
    assert refined["sequence"] == rep["sequence"] + 1  # the counter beside the key moved on
    plan = json.loads(lc("link", "plan", "outbox/payload.lcst", "--link", "iridium-sbd-mt", "--json", cwd=d).stdout)
    assert plan["success_probability"] > 0.99

    # one flipped bit: refused before any training, nothing written
    bad = bytearray((d / "outbox" / "payload.lcst").read_bytes())
    bad[len(bad) // 2] ^= 0x04
    (d / "bad.lcst").write_bytes(bytes(bad))
    p = lc(
        "receive",
        "bad.lcst",
        "--reference",
        "ref",
        "--trust",
        "keys/sender.pub",
        "--out",
        "dev-bad",
        "--state",
        "state",
        cwd=d,
        check=False,
    )
    assert p.returncode == 4 and "signature check failed" in p.stderr and "Traceback" not in p.stderr
    assert not (d / "dev-bad").exists()

    # the real frames, through a lossy link
    lc("link", "simulate", "outbox/frames", "--out", "inbox", "--loss", "0.15", "--seed", "1", cwd=d)
    got = lc(
        "receive",
        "inbox",
        "--reference",
        "ref",
        "--trust",
        "keys/sender.pub",
        "--out",
        "dev",
        "--state",
        "state",
        "--train-samples",
        "6000",
        "--json",
        cwd=d,
    )
    r = json.loads(got.stdout.splitlines()[-1])
    assert r["selected_items"] == rep["selected_items"] and (d / "dev" / "student.onnx").exists()
    ev = json.loads(
        lc("evaluate", "dev/student.onnx", "--data", "npy:test.npy", "--json", cwd=d).stdout.splitlines()[-1]
    )
    tev = json.loads(lc("evaluate", "teacher.onnx", "--data", "npy:test.npy", "--json", cwd=d).stdout.splitlines()[-1])
    assert ev["items"] == 1000 and ev["accuracy"] > 0.5 and tev["accuracy"] > 0.6

    # the same payload again is a replay (its own exit code)
    again = lc(
        "receive",
        "inbox",
        "--reference",
        "ref",
        "--trust",
        "keys/sender.pub",
        "--out",
        "dev2",
        "--state",
        "state",
        cwd=d,
        check=False,
    )
    assert again.returncode == 5 and "already accepted" in again.stderr


@pytest.mark.slow
def test_clustered_store_and_keyed_selection_carry_more_labels_per_byte(slice_dir: Path):
    d = slice_dir
    if not (d / "keys" / "sender.key").exists():
        lc("keygen", "--out", "keys", cwd=d)
    lc("teacher", "train", "--data", "npy:train.npy", "--out", "t-small.onnx", "--epochs", "2", "--width", "16", cwd=d)
    ref = json.loads(
        lc(
            "reference", "build", "npy:pool.npy", "--out", "ref-k16", "--clusters", "16", "--json", cwd=d
        ).stdout.splitlines()[-1]
    )
    assert ref["groups"] == 16 and ref["clusters"] == 16
    reports = {}
    for strategy in ("random", "random-keyed"):
        out = f"outbox-{strategy}"
        args = ["send", "--teacher", "t-small.onnx", "--reference", "ref-k16", "--key", "keys/sender.key"]
        rep = json.loads(
            lc(*args, "--strategy", strategy, "--budget", "540", "--out", out, "--json", cwd=d).stdout.splitlines()[-1]
        )
        assert rep["framed_bytes"] <= 540
        reports[strategy] = rep
    keyed, plain = reports["random-keyed"], reports["random"]
    assert keyed["selected_items"] > 3 * plain["selected_items"]
    assert keyed["section_bytes"]["index"] < 0.2 * keyed["section_bytes"]["labels"]
    assert (d / "outbox-random-keyed" / "payload.lcst").read_bytes()[0:4] == b"LCST"
    got = lc(
        "receive",
        "outbox-random-keyed/payload.lcst",
        "--reference",
        "ref-k16",
        "--trust",
        "keys/sender.pub",
        "--out",
        "dev-keyed",
        "--state",
        "state-keyed",
        "--train-samples",
        "1000",
        "--json",
        cwd=d,
    )
    assert json.loads(got.stdout.splitlines()[-1])["selected_items"] == keyed["selected_items"]


@pytest.mark.slow
def test_auto_sends_soft_energy_high_labels_for_a_far_pool(slice_dir: Path):
    from labelcast.datasets.builtin import mnist5k

    d = slice_dir
    if not (d / "keys" / "sender.key").exists():
        lc("keygen", "--out", "keys", cwd=d)
    if not (d / "ref").exists():
        lc("reference", "build", "npy:pool.npy", "--out", "ref", cwd=d)
    x, y = mnist5k()
    pick = np.random.default_rng(0).permutation(len(y))[:2000]  # rows come sorted by label
    np.save(d / "digits.npy", x[pick, :, :, 0])
    np.save(d / "digits-labels.npy", y[pick])
    lc(
        "teacher",
        "train",
        "--data",
        "npy:digits.npy",
        "--out",
        "t-digits.onnx",
        "--epochs",
        "10",
        "--width",
        "16",
        cwd=d,
    )
    args = ["send", "--teacher", "t-digits.onnx", "--reference", "ref", "--key", "keys/sender.key"]
    sent = lc(*args, "--budget", "2700", "--out", "outbox-far", cwd=d)
    assert "auto: far pool" in sent.stdout
    assert "advice: far pool and no pretrained backbone" in sent.stdout  # the store has none installed
    rep = json.loads((d / "outbox-far" / "send-report.json").read_text())
    assert "student pretrain" in rep["advice"][0]
    # an MNIST teacher on a Fashion-MNIST pool: its median confidence drops well past the threshold
    assert rep["auto"]["far"] is True and rep["auto"]["shift"] > 0.15
    assert rep["strategy"] == "energy-high" and rep["soft_labels"] and rep["soft_temperature"] == 2.0
    assert rep["section_bytes"].get("soft", 0) > 0 and rep["framed_bytes"] <= 2700
    # a budget too small for 20 soft-labelled items per class: easy items with hard labels instead
    small = json.loads(
        lc(*args, "--budget", "810", "--out", "outbox-far-small", "--json", cwd=d).stdout.splitlines()[-1]
    )
    assert small["auto"]["far"] and small["auto"]["soft_items_too_few"] < 200
    assert small["strategy"] == "el2n-easy" and not small["soft_labels"] and small["framed_bytes"] <= 810
    assert "soft" not in small["section_bytes"]
    # a foreign teacher (no confidence figure) counts as near until `teacher calibrate` gives it one
    cal = json.loads(
        lc(
            "teacher", "calibrate", "t-digits.onnx", "--data", "npy:digits.npy", "--out", "t-cal.onnx", "--json", cwd=d
        ).stdout.splitlines()[-1]
    )
    shown = json.loads(lc("teacher", "inspect", "t-cal.onnx", "--json", cwd=d).stdout.splitlines()[-1])
    assert cal["images"] == 2000 and shown["train_confidence"] == pytest.approx(cal["train_confidence"], abs=1e-4)
    bad = lc("teacher", "calibrate", "t-digits.onnx", "--data", "npy:missing.npy", cwd=d, check=False)
    assert bad.returncode == 2 and "--data" in bad.stderr and "Traceback" not in bad.stderr
    # naming a strategy turns auto off
    named = json.loads(
        lc(
            *args, "--strategy", "random", "--budget", "2700", "--out", "outbox-named", "--json", cwd=d
        ).stdout.splitlines()[-1]
    )
    assert named["auto"] is None and named["strategy"] == "random" and not named["soft_labels"]


def test_the_installed_entry_point_answers_help(tmp_path):
    # every command's help is checked in tests/test_cli_help.py; here, the real `python -m labelcast`
    for args in (["--help"], ["receive", "--help"]):
        assert lc(*args, cwd=tmp_path, subprocess_=True).returncode == 0


def test_bad_arguments_are_usage_errors(tmp_path):
    p = lc("send", "--teacher", "nope.onnx", "--reference", ".", "--key", "k", "--out", "o", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = lc("profiles", "show", "no-such-link", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "iridium-sbd-mt" in p.stderr
    (tmp_path / "t.onnx").write_bytes(b"x")
    base = ["send", "--teacher", "t.onnx", "--reference", ".", "--key", "t.onnx", "--out", "o"]
    for bad, hint in (
        (["--soft-temperature", "0"], "--soft-temperature"),
        (["--soft-extra", "9"], "--soft-extra"),
        (["--strategy", "nope"], "--strategy"),
    ):
        p = lc(*base, *bad, cwd=tmp_path, check=False)
        assert p.returncode == 2 and hint in p.stderr and "Traceback" not in p.stderr
    p = lc("reference", "build", "npy:x.npy", "--out", "r", "--clusters", "-1", cwd=tmp_path, check=False)
    assert p.returncode == 2 and "--clusters" in p.stderr
