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
from .teacher import Teacher

__all__ = ["score_store", "load_scores"]


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
        key = {"teacher": str(teacher.path), "root": store.root.hex(), "classes": c}
        done = 0
        if prog.exists() and (outp / "logits.f32").exists():
            st = json.loads(prog.read_text())
            if st.get("key") == key:
                done = int(st["done"])
        logits = np.memmap(outp / "logits.f32", dtype=np.float32, mode="r+" if done else "w+", shape=(n, c))
    pp = teacher.preprocess

    def load(s: int) -> np.ndarray:
        return pp.apply(np.asarray(store.items[s : min(n, s + batch)]))

    starts = list(range(done, n, batch))
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(load, starts[0]) if starts else None
        for i, s in enumerate(starts):
            x = fut.result()
            if i + 1 < len(starts):
                fut = pool.submit(load, starts[i + 1])
            logits[s : s + x.shape[0]] = teacher.session.run(None, {teacher.input_name: x})[0]
            if progress:
                progress(x.shape[0])
            end = s + x.shape[0]
            if prog is not None and (end % shard < batch or end == n):
                logits.flush()
                tmp = prog.with_suffix(".tmp")
                tmp.write_text(json.dumps({"key": key, "done": end}))
                os.replace(tmp, prog)
    return logits


def load_scores(path: str | os.PathLike, n: int, classes: int) -> np.ndarray:
    return np.memmap(Path(path) / "logits.f32", dtype=np.float32, mode="r", shape=(n, classes))
