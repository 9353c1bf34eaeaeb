"""The local and Ray scoring engines give the same scores, selections and payload bytes — the Ray one on a
real two-node cluster (two ``ray start`` processes), with its shards spread over both nodes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.keys import generate_keypair
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.preprocess import Preprocess
from labelcast.sender.engines import RayRun, score
from labelcast.sender.selection import SelectConfig
from labelcast.sender.send import EngineSettings, LinkSettings, Recipe, SendConfig, send
from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from synth import synth_store  # noqa: E402  (a benchmark helper: synthetic stores)

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_engine_on_two_nodes_matches_local_engine_bit_for_bit(tmp_path):
    from raynodes import LocalRayCluster

    synth_store(tmp_path / "ref", n=6000, groups=40, size=8, seed=0, channels=3)
    store = ReferenceStore(tmp_path / "ref")
    x = np.asarray(store.items[:1500])
    levels, y = np.unique((x.mean(axis=(1, 2, 3)) // 26).astype(np.int64), return_inverse=True)
    cfg = TeacherConfig(width=8, epochs=1, preprocess=Preprocess(size=8, channels=3))
    train_and_export(x, y, [f"level{v}" for v in levels], tmp_path / "t.onnx", cfg)
    # a spec given at run time (not the stored one) must reach every Ray actor
    other = Teacher(tmp_path / "t.onnx", Preprocess(size=8, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3))
    local, _ = score("local", tmp_path / "t.onnx", store, tmp_path / "s-local", batch=512)
    local_other, _ = score("local", other, store, tmp_path / "s-local-other", batch=512)
    assert not np.array_equal(np.asarray(local), np.asarray(local_other))

    priv, _ = generate_keypair(tmp_path / "keys")
    select = SelectConfig("energy", quota=True)
    with LocalRayCluster(nodes=2, cpus_per_node=1) as cluster:
        run = RayRun()
        kw = {"address": cluster.address, "shard": 1024, "run": run}
        remote, _ = score("ray", tmp_path / "t.onnx", store, tmp_path / "s-ray", batch=512, **kw)
        assert np.array_equal(np.asarray(local), np.asarray(remote))
        assert run["shards"] == math.ceil(store.n / 1024) and sum(run["nodes"].values()) == run["shards"]
        assert len(run["nodes"]) == 2, run  # tasks really ran on both nodes
        remote_other, _ = score("ray", other, store, tmp_path / "s-ray-other", batch=512, address=cluster.address)
        assert np.array_equal(np.asarray(local_other), np.asarray(remote_other))
        gpu = RayRun()  # no GPU in this cluster: CPU actors, and the report says so
        on_gpu, _ = score(
            "ray", other, store, tmp_path / "s-gpu", batch=512, address=cluster.address, provider="cuda", run=gpu
        )
        assert "no GPU" in gpu["note"] and np.array_equal(np.asarray(local_other), np.asarray(on_gpu))

        payloads = []
        for engine in ("local", "ray"):
            cfg = SendConfig(
                LinkSettings(budget=2000),
                Recipe(select),
                EngineSettings(engine, ray_address=cluster.address),
                sequence=5,
            )
            rep = send(tmp_path / "t.onnx", store, priv, tmp_path / f"out-{engine}", cfg, now=1_800_000_000)
            payloads.append((tmp_path / f"out-{engine}" / "payload.lcst").read_bytes())
        assert rep["scoring"]["engine"] == "ray" and rep["scoring"]["shards"] == 1  # 6,000 items: one shard
    assert payloads[0] == payloads[1]
