"""The local and Ray Data scoring engines give the same scores, selections and payload bytes."""

from __future__ import annotations

import numpy as np
import pytest

from labelcast.codec.keys import generate_keypair
from labelcast.codec.manifest import ReferenceStore
from labelcast.sender.engines import score
from labelcast.sender.selection import SelectConfig
from labelcast.sender.send import SendConfig, send
from labelcast.sender.synth import synth_store
from labelcast.sender.teacher import TeacherConfig, train_and_export

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_engine_matches_local_engine_bit_for_bit(tmp_path):
    synth_store(tmp_path / "ref", n=6000, groups=40, size=8, seed=0)
    store = ReferenceStore(tmp_path / "ref")
    x = np.asarray(store.items[:1500])
    levels, y = np.unique((x.mean(axis=(1, 2, 3)) // 26).astype(np.int64), return_inverse=True)
    from labelcast.codec.preprocess import Preprocess

    train_and_export(
        x,
        y,
        [f"level{v}" for v in levels],
        tmp_path / "t.onnx",
        TeacherConfig(width=8, epochs=1, preprocess=Preprocess(size=8)),
    )
    local, _ = score("local", tmp_path / "t.onnx", store, tmp_path / "s-local", batch=512)
    remote, _ = score("ray", tmp_path / "t.onnx", store, tmp_path / "s-ray", batch=512, workers=2, shard=1024)
    assert np.array_equal(np.asarray(local), np.asarray(remote))

    priv, _ = generate_keypair(tmp_path / "keys")
    payloads = []
    for engine in ("local", "ray"):
        cfg = SendConfig(budget=2000, select=SelectConfig("energy", quota=True), sequence=5, engine=engine)
        send(tmp_path / "t.onnx", store, priv, tmp_path / f"out-{engine}", cfg, now=1_800_000_000)
        payloads.append((tmp_path / f"out-{engine}" / "payload.lcst").read_bytes())
    assert payloads[0] == payloads[1]
