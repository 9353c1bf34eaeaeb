"""Scoring engines: ``local`` (one process, the default) and ``ray`` (a Ray cluster of any size).

The Ray engine starts one actor per worker slot, spread over the cluster's nodes
(``SPREAD`` scheduling). Each actor opens, once, its own ONNX Runtime session
(with as many intra-op threads as the CPUs it holds, or one GPU with
``provider=cuda|tensorrt``) and its own memory map of the store: no pixels go
through Ray's object store, and the driver only hands out shard starts and
collects ``(shard, items, node)`` receipts. An actor scores a shard with the same
prefetching batch loop as the local engine and writes the logits with ``pwrite``
into its rows of the one preallocated ``logits.f32`` (rows are disjoint, so no
two actors touch the same bytes); shards are whole batches, so both engines run
the model on exactly the same batches and produce the same bits. Every node must
see the store and the output folder at the same path (a shared file system on a
real cluster). ``ray`` is an optional extra (``pip install 'labelcast[scale]'``);
it joins an existing cluster with ``address`` (``auto``, ``HOST:6379``,
``ray://head:10001``) and starts a local one otherwise.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.errors import LabelcastError
from ..codec.manifest import ReferenceStore
from .scoring import ScoreFile, score_store, scored_batches, whole_batch
from .teacher import Teacher

__all__ = ["ENGINES", "EngineSettings", "EngineError", "RayRun", "score", "score_ray"]


class EngineError(LabelcastError):
    """A scoring engine (Ray, an ONNX Runtime provider) failed or is not available."""

    exit_code = 18


ENGINES = ("local", "ray")


@dataclass
class EngineSettings:
    """How the reference set is scored: the engine and where it runs.

    Attributes:
        name: local | ray
        ray_address: existing Ray cluster (None: start a local one)
        workers: Ray actors (None: one per CPU of the cluster)
        provider: ONNX Runtime execution provider for scoring: cpu | cuda | tensorrt | auto
    """

    name: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    provider: str = "cpu"

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown scoring engine {self.name!r}; known: {', '.join(ENGINES)}")


class _ShardScorer:
    """A Ray actor: one ORT session and one memory map of the store, opened once, scoring whole shards."""

    def __init__(self, teacher: dict, store: str, out: str, batch: int, threads: int) -> None:
        from ..receiver.serve import resolve_spec

        pp = resolve_spec(teacher.pop("preprocess"))
        self.teacher = Teacher(teacher.pop("path"), pp, threads=threads, **teacher)
        self.store = ReferenceStore(store, check=False)
        self.fd = os.open(out, os.O_WRONLY)
        self.row = int(self.teacher.num_classes) * 4
        self.batch = batch
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def score(self, start: int, stop: int) -> tuple[int, int, str, float]:
        t = time.time()
        for s, z in scored_batches(self.teacher, self.store, start, stop, self.batch):
            os.pwrite(self.fd, np.ascontiguousarray(z, dtype=np.float32).tobytes(), s * self.row)
        os.fsync(self.fd)
        return start, stop - start, self.node, time.time() - t


class RayRun(dict):
    """What a Ray scoring run did: ``workers``, ``nodes`` (node id → shards scored there), ``shards``."""


def _init(ray, address: str | None, workers: int) -> bool:
    if ray.is_initialized():
        return False
    kw = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
    try:
        ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False, **kw)
    except Exception as e:  # ray raises ConnectionError, RuntimeError, its own types
        raise EngineError(f"cannot start or join the Ray cluster ({address or 'local'}): {e}") from e
    return True


def score_ray(
    teacher: str | os.PathLike | Teacher,
    store: ReferenceStore,
    out: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int | None = None,
    batch: int = 1024,
    shard: int = 1 << 16,
    cpus_per_worker: int = 1,
    provider: str = "cpu",
    progress=None,
    run: RayRun | None = None,
) -> ScoreFile:
    """Score every item on a Ray cluster; returns the logits (``out/logits.f32``, read by slices).

    ``workers``: actors to start (default: the cluster's CPUs // ``cpus_per_worker``, or its GPUs with
    a GPU provider); each runs ONNX Runtime with ``cpus_per_worker`` threads. ``shard``: items per task,
    rounded to whole batches. ``run``: filled with the per-node shard counts."""
    try:
        import ray
    except ImportError as e:
        raise EngineError("the ray engine needs Ray: pip install 'labelcast[scale]'") from e
    tea = teacher if isinstance(teacher, Teacher) else Teacher(teacher)
    batch = whole_batch(tea, batch)
    shard = max(batch, shard // batch * batch)  # whole batches per shard: the same batches as the local engine
    classes = int(tea.num_classes)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    path = outp / "logits.f32"
    with open(path, "wb") as f:
        f.truncate(store.n * classes * 4)
    gpu = provider in ("cuda", "tensorrt")
    started = _init(ray, address, workers or os.cpu_count() or 2)
    run = run if run is not None else RayRun()
    try:
        have = ray.cluster_resources()
        if gpu and int(have.get("GPU", 0)) == 0:  # as the local engine does: the CPU, with a note
            run["note"] = f"provider {provider}: the Ray cluster has no GPU; scored on CPU actors"
            gpu, provider = False, "cpu"
        slots = int(have.get("GPU", 0)) if gpu else max(1, int(have.get("CPU", 1)) // cpus_per_worker)
        n_act = max(1, min(workers or slots, slots, -(-store.n // shard)))
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=1 if gpu else 0)(_ShardScorer)
        spec = {
            "path": str(Path(tea.path).resolve()),
            "preprocess": tea.preprocess.to_json(),
            "input_name": tea.input_name,
            "output_name": tea.output_name,
            "providers": provider,  # one GPU per actor (Ray resources) with cuda / tensorrt
        }
        actors = [
            actor.options(scheduling_strategy="SPREAD").remote(
                dict(spec), str(store.path.resolve()), str(path.resolve()), batch, cpus_per_worker
            )
            for _ in range(n_act)
        ]
        pool = ray.util.ActorPool(actors)
        tasks = [(s, min(store.n, s + shard)) for s in range(0, store.n, shard)]
        total, nodes = 0, Counter()
        for _, items, node, _secs in pool.map_unordered(lambda a, t: a.score.remote(*t), tasks):
            total += items
            nodes[node] += 1
            if progress:
                progress(items)
        run.update(workers=n_act, shards=len(tasks), nodes=dict(nodes), shard=shard, batch=batch)
    except Exception as e:  # a worker that failed surfaces as Ray's own exception types
        raise EngineError(f"Ray scoring failed: {type(e).__name__}: {e}") from e
    finally:
        if started:
            ray.shutdown()
    if total != store.n:
        raise EngineError(f"ray scored {total} of {store.n} items; rerun (scoring is deterministic)")
    return ScoreFile(path, store.n, classes)


def score(
    engine: str, teacher: str | os.PathLike | Teacher, store: ReferenceStore, out: str | os.PathLike | None = None, **kw
) -> tuple[np.ndarray, float]:
    """Score with the named engine; returns (logits, seconds). Keywords: ``batch``, ``progress``,
    ``provider``; for ray also ``address``, ``workers``, ``shard``, ``cpus_per_worker``, ``run``."""
    t = time.time()
    provider = kw.get("provider", "cpu")
    if engine == "local":
        tea = teacher if isinstance(teacher, Teacher) else Teacher(teacher, providers=provider)
        logits = score_store(tea, store, out, batch=kw.get("batch", 1024), progress=kw.get("progress"))
    elif engine == "ray":
        if out is None:
            raise ValueError("the ray engine writes its scores to a folder: give out")
        ray_kw = {k: kw[k] for k in ("address", "workers", "shard", "cpus_per_worker", "run", "progress") if k in kw}
        logits = score_ray(teacher, store, out, batch=kw.get("batch", 1024), provider=provider, **ray_kw)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return logits, time.time() - t
