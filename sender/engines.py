"""Scoring engines: ``local`` (one process, the default) and ``ray`` (Ray Data over a cluster).

The Ray engine is a Ray Data pipeline: a dataset of shard starts, ``map_batches``
with a stateful actor per worker that holds one ONNX Runtime session and the
memory-mapped store, and writes logits straight into the same memory-mapped
score file the local engine writes. Shards are aligned to the scoring batch, so
both engines run the model on exactly the same batches and produce the same
bits. ``ray`` is an optional extra (``pip install 'labelcast[scale]'``); it joins an
existing cluster with ``address`` (e.g. ``ray://head:10001`` or ``auto``) and
starts a local one otherwise. Every worker must see the store and the output
folder at the same path (a shared file system on a real cluster).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..codec.errors import EngineError
from ..codec.manifest import ReferenceStore
from .scoring import score_store
from .teacher import Teacher

__all__ = ["ENGINES", "score", "score_ray"]

ENGINES = ("local", "ray")


class _ShardScorer:
    """Ray Data actor: one ORT session, the store and the score file, opened once per worker."""

    def __init__(self, teacher: str, store: str, out: str, classes: int, batch: int, shard: int, threads: int):
        self.teacher = Teacher(teacher, threads=threads)
        self.store = ReferenceStore(store, check=False)
        self.fd = os.open(out, os.O_WRONLY)
        self.row = classes * 4
        self.batch, self.shard = batch, shard

    def __call__(self, rows: dict) -> dict:
        n = self.store.n
        done = []
        pp = self.teacher.preprocess
        for start in rows["start"].tolist():
            stop = min(n, start + self.shard)
            for s in range(start, stop, self.batch):
                e = min(stop, s + self.batch)
                z = self.teacher.run(pp.apply(self.store.read_range(s, e)))
                os.pwrite(self.fd, np.ascontiguousarray(z, dtype=np.float32).tobytes(), s * self.row)
            os.fsync(self.fd)
            done.append(stop - start)
        return {"start": rows["start"], "items": np.array(done, dtype=np.int64)}


def score_ray(
    teacher: str | os.PathLike,
    store: ReferenceStore,
    out: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int = 2,
    batch: int = 1024,
    shard: int = 1 << 16,
    threads_per_worker: int = 1,
) -> np.ndarray:
    """Score every item on Ray Data; returns the memory-mapped logits (``out/logits.f32``)."""
    try:
        import ray
    except ImportError as e:
        raise EngineError("the ray engine needs Ray: pip install 'labelcast[scale]'") from e
    shard = max(batch, shard // batch * batch)  # whole batches per shard: same batches as the local engine
    classes = int(Teacher(teacher).num_classes)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    path = outp / "logits.f32"
    with open(path, "wb") as f:
        f.truncate(store.n * classes * 4)
    started = not ray.is_initialized()
    if started:
        kw = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        try:
            ray.init(ignore_reinit_error=True, log_to_driver=False, configure_logging=False, **kw)
        except Exception as e:  # ray raises ConnectionError, RuntimeError, its own types
            raise EngineError(f"cannot start or join the Ray cluster ({address or 'local'}): {e}") from e
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        shards = [{"start": int(s)} for s in range(0, store.n, shard)]
        starts = ray.data.from_items(shards, override_num_blocks=len(shards))  # one block per shard: all actors busy
        scored = starts.map_batches(
            _ShardScorer,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            fn_constructor_kwargs={
                "teacher": str(Path(teacher).resolve()),
                "store": str(store.path.resolve()),
                "out": str(path.resolve()),
                "classes": classes,
                "batch": batch,
                "shard": shard,
                "threads": threads_per_worker,
            },
        )
        total = sum(int(b["items"].sum()) for b in scored.iter_batches(batch_format="numpy", batch_size=None))
    except Exception as e:  # a worker that failed surfaces as Ray's own exception types
        raise EngineError(f"Ray scoring failed: {type(e).__name__}: {e}") from e
    finally:
        if started:
            ray.shutdown()
    if total != store.n:
        raise EngineError(f"ray scored {total} of {store.n} items; rerun (scoring is deterministic)")
    from .scoring import ScoreFile

    return ScoreFile(path, store.n, classes)


def score(
    engine: str, teacher: str | os.PathLike | Teacher, store: ReferenceStore, out: str | os.PathLike | None = None, **kw
) -> tuple[np.ndarray, float]:
    """Score with the named engine; returns (logits, seconds)."""
    t = time.time()
    if engine == "local":
        tea = teacher if isinstance(teacher, Teacher) else Teacher(teacher, providers=kw.get("provider", "cpu"))
        logits = score_store(tea, store, out, batch=kw.get("batch", 1024), progress=kw.get("progress"))
    elif engine == "ray":
        if out is None:
            raise ValueError("the ray engine writes its scores to a folder: give out")
        path = teacher.path if isinstance(teacher, Teacher) else teacher
        logits = score_ray(
            path, store, out, address=kw.get("address"), workers=kw.get("workers", 2), batch=kw.get("batch", 1024)
        )
    else:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return logits, time.time() - t
