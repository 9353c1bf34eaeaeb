"""The receiver installs and runs with its own dependency set alone (no sender-side packages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import generate_keypair, load_private_key
from tests.conftest import make_store, signed_payload

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_lean_receiver_venv_receives_without_sender_packages(tmp_path):
    venv = tmp_path / "lean"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "LABELCAST_PROGRESS": "0"}
    env.pop("VIRTUAL_ENV", None)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, env=env)
    subprocess.run([*pip, f"{ROOT}[receiver]"], check=True, env=env, cwd=tmp_path)

    # nothing from the sender side is installed (Pillow is the device's too: exemplars, folder data)
    for mod in ("sklearn", "mlxtend", "matplotlib", "ray", "zstandard"):
        r = subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True, env=env, cwd=tmp_path)
        assert r.returncode != 0, f"{mod} is installed in the lean receiver venv"
    lc = str(venv / "bin" / "labelcast")
    r = subprocess.run([lc, "receive", "--help"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "--dry-run" in r.stdout
    probe = (
        "import sys; from labelcast.cli import main\ntry:\n    main(['receive', '--help'])\nexcept SystemExit: pass\n"
    )
    probe += "print(sorted(m for m in sys.modules if m.startswith(('labelcast.sender', 'torch', 'onnx'))))"
    r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"  # --help imports neither the sender nor heavy libraries

    # a full small receive in the lean venv
    store = make_store(tmp_path / "ref", n=400, shape=(8, 8, 1))
    from labelcast.codec.manifest import ReferenceStore

    ref = ReferenceStore(store)
    priv, pub = generate_keypair(tmp_path / "keys")
    idx = np.arange(0, 400, 4)
    data = signed_payload(ref, load_private_key(priv), idx, idx % 3, 3, n_items=400, expires_in=600)
    write_frames(make_frames(data, 64, 34), tmp_path / "frames")
    r = subprocess.run(
        [
            lc,
            "receive",
            str(tmp_path / "frames"),
            "--reference",
            str(store),
            "--trust",
            str(pub),
            "--out",
            str(tmp_path / "dev"),
            "--state",
            str(tmp_path / "state"),
            "--train-samples",
            "800",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "dev" / "student.onnx").exists()

    # evaluate on the device, from an array and from a folder of images
    items = np.fromfile(store / "items.u8", dtype=np.uint8).reshape(400, 8, 8, 1)
    np.save(tmp_path / "x.npy", items[:60])
    np.save(tmp_path / "x-labels.npy", (np.arange(60) * 4 % 3))
    from PIL import Image

    for i in range(12):
        (tmp_path / "imgs" / str(i % 3)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(items[i, :, :, 0]).save(tmp_path / "imgs" / str(i % 3) / f"{i}.png")
    for data in (f"npy:{tmp_path / 'x.npy'}", f"folder:{tmp_path / 'imgs'}"):
        r = subprocess.run(
            [lc, "evaluate", str(tmp_path / "dev" / "student.onnx"), "--data", data, "--json"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0 and '"accuracy"' in r.stdout, r.stderr
