"""Shared fixtures: keys, small synthetic reference stores, an adversarial payload helper."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("LABELCAST_PROGRESS", "0")


@pytest.fixture
def keys(tmp_path: Path):
    from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key

    priv, pub = generate_keypair(tmp_path / "keys")
    return load_private_key(priv), TrustSet.from_files([pub]), priv, pub


def make_store(path: Path, n: int = 600, groups: int = 3, seed: int = 0, shape=(8, 8, 1)) -> Path:
    """A tiny reference store of random uint8 items in contiguous groups, written by the real writer."""
    from labelcast.codec.manifest import hash_items, write_manifest

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    items = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    items.tofile(path / "items.u8")
    g = np.sort(rng.integers(0, groups, size=n)).astype(np.uint32)
    write_manifest(path / "manifest.lcm", hash_items(items), g, [f"g{i}" for i in range(groups)], shape)
    return path


@pytest.fixture
def store(tmp_path: Path):
    from labelcast.codec.manifest import ReferenceStore

    return ReferenceStore(make_store(tmp_path / "ref"))


def signed_payload(
    store,
    key,
    indices,
    labels,
    classes: int | None = None,
    *,
    sequence: int = 1,
    expires_in: int = 3600,
    root: bytes | None = None,
    **kw,
) -> bytes:
    """The one way tests make a signed payload: ``indices``/``labels`` over ``store`` (its size, root and
    groups), signed with ``key``, expiring ``expires_in`` seconds from now. ``root`` signs for another
    store; ``kw`` goes to ``build_payload`` (hints, soft, exemplars, delta, class_names, expires_at …)."""
    import time

    from labelcast.codec.payload import build_payload

    labels = np.asarray(labels)
    args = {
        "n_items": store.n,
        "classes": classes if classes is not None else int(labels.max()) + 1,
        "root": root or store.root,
        "key": key,
        "sequence": sequence,
        "expires_at": int(time.time()) + expires_in,
        "segments": store.manifest.segments,
    }
    data, _ = build_payload(np.asarray(indices), labels, **{**args, **kw})
    return data


def mutations(good: bytes, n: int, seed: int):
    """``n`` damaged copies of ``good`` for fuzzing: every third truncated, the rest with 1–4 bytes overwritten."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        b = bytearray(good)
        if i % 3 == 0:
            b = b[: rng.integers(0, len(b))]
        else:
            for _ in range(rng.integers(1, 5)):
                b[rng.integers(0, len(b))] = int(rng.integers(0, 256))
        yield bytes(b)


def resign(payload: bytes, key, root: bytes, edit) -> bytes:
    """Adversarial helper: edit the body of a payload and sign it again with ``key``."""
    from labelcast.codec.payload import DOMAIN, SIG_LEN

    body = bytearray(payload[:-SIG_LEN])
    body = bytes(edit(body))
    return body + key.sign(DOMAIN + root + body)


def run_cli(*args, cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``labelcast ARGS`` in this process (much faster than a subprocess): (exit code, stdout, stderr)."""
    import contextlib
    import io

    from labelcast.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


def lc(*args, ok: bool = True) -> tuple[int, str, str]:
    """``run_cli`` that fails the test on a non-zero exit unless ``ok`` is False."""
    code, out, err = run_cli(*args)
    if ok and code:
        raise AssertionError(f"labelcast {' '.join(map(str, args))} failed ({code}):\n{out}\n{err}")
    return code, out, err


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 2 MiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)
