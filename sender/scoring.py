"""Score a reference store with a teacher: batched ONNX Runtime over memory-mapped items.

Logits go to a memory-mapped float32 file (``N × classes``) so a 14M-item set
never sits in RAM; the next batch is read and preprocessed on a thread while
the current one runs, and scoring resumes by shard from ``scores.progress``.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..codec.manifest import ReferenceStore
from ..codec.storage import atomic_write
from .teacher import Teacher

__all__ = ["score_store", "ScoreFile", "scored_batches", "whole_batch"]


class ScoreFile:
    """A read-only N × C float32 score file read by slices (pread), so scanning it chunk by
    chunk never maps the whole file into the process."""

    def __init__(self, path: str | os.PathLike, n: int, classes: int) -> None:
        self.path = Path(path)
        self.shape = (n, classes)
        self.dtype = np.dtype(np.float32)
        self._row = classes * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        a = self[0 : self.shape[0]]
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key):
        n = self.shape[0]
        with open(self.path, "rb") as f:
            if isinstance(key, slice):
                start, stop, step = key.indices(n)
                if step != 1:
                    raise IndexError("ScoreFile supports contiguous slices and index arrays")
                b = os.pread(f.fileno(), max(0, stop - start) * self._row, start * self._row)
                return np.frombuffer(b, dtype=np.float32).reshape(-1, self.shape[1]).copy()
            idx = np.asarray(key, dtype=np.int64).reshape(-1)
            out = np.empty((idx.size, self.shape[1]), dtype=np.float32)
            for j, i in enumerate(idx.tolist()):
                out[j] = np.frombuffer(os.pread(f.fileno(), self._row, i * self._row), dtype=np.float32)
            return out


def whole_batch(teacher: Teacher, batch: int) -> int:
    """The scoring batch: a model with a static batch runs that many at a time, so batches stay whole."""
    if teacher.static_batch:
        return max(teacher.static_batch, batch // teacher.static_batch * teacher.static_batch)
    return batch


def scored_batches(teacher: Teacher, store: ReferenceStore, start: int, stop: int, batch: int):
    """Yield ``(first item, logits)`` for items ``[start, stop)`` in batches of ``batch`` (aligned to
    ``start``); the next batch is read from the store and preprocessed on a thread while this one runs.
    Both engines score through this, so they run the model on the same batches."""
    pp = teacher.preprocess

    def load(s: int) -> np.ndarray:
        return pp.apply(store.read_range(s, min(stop, s + batch)))

    starts = list(range(start, stop, batch))
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(load, starts[0]) if starts else None
        for i, s in enumerate(starts):
            x = fut.result()
            if i + 1 < len(starts):
                fut = pool.submit(load, starts[i + 1])
            yield s, teacher.run(x)


def score_store(
    teacher: Teacher,
    store: ReferenceStore,
    out: str | os.PathLike | None = None,
    batch: int = 1024,
    shard: int = 65536,
    progress=None,
) -> np.ndarray:
    """Logits for every item; with ``out`` they are kept (and resumed) in ``out/logits.f32``."""
    n = store.n
    c = int(teacher.num_classes)
    if out is None:
        logits = np.empty((n, c), dtype=np.float32)
        done = 0
        prog = None
    else:
        outp = Path(out)
        outp.mkdir(parents=True, exist_ok=True)
        prog = outp / "scores.progress"
        # a different model file, store or preprocessing spec never resumes another's scores
        key = {"teacher": str(teacher.path), "root": store.root.hex(), "classes": c}
        key["spec"] = teacher.preprocess.to_json()
        done = 0
        if prog.exists() and (outp / "logits.f32").exists():
            st = json.loads(prog.read_text())
            if st.get("key") == key:
                done = int(st["done"])
        path = outp / "logits.f32"
        if not done:
            with open(path, "wb") as f:
                f.truncate(n * c * 4)
        fh = open(path, "r+b")  # noqa: SIM115 - closed below; written with pwrite, not a memory map
    batch = whole_batch(teacher, batch)
    for s, z in scored_batches(teacher, store, done, n, batch):
        if out is None:
            logits[s : s + z.shape[0]] = z
        else:
            os.pwrite(fh.fileno(), np.ascontiguousarray(z, dtype=np.float32).tobytes(), s * c * 4)
        if progress:
            progress(z.shape[0])
        end = s + z.shape[0]
        if prog is not None and (end % shard < batch or end == n):
            os.fsync(fh.fileno())
            atomic_write(prog, json.dumps({"key": key, "done": end}), what=f"scoring progress {prog}")
    if out is None:
        return logits
    fh.close()
    return ScoreFile(path, n, c)
