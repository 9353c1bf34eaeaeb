"""Scoring throughput: `score_store` end to end over a memory-mapped reference store vs. a bare
ONNX Runtime loop over the same model and preloaded, preprocessed batches — in the same run.

    python benchmarks/scoring.py [--items 60000] [--rgb-items 8000] [--json out/bench/scoring.json]

Grey 28×28 stores with the built-in teacher at widths 16 and 32, then RGB stores at 64×64×3 and
128×128×3 (Openclipart drawings when installed, else random pixels) with an RGB teacher whose input
is the store's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_grid, render_into, splice_block, table, write_json  # noqa: E402


def compare(t, store, x, batch: int) -> tuple[float, float]:
    """(score_store items/s, bare ONNX Runtime items/s), best of three each."""
    from labelcast.sender.scoring import score_store

    batches = [t.preprocess.apply(np.asarray(x[s : s + batch])) for s in range(0, len(x), batch)]
    best_bare = best_ours = 0.0
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.perf_counter()
        for b in batches:
            t.session.run(None, {t.input_name: b})
        best_bare = max(best_bare, len(x) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        score_store(t, store, batch=batch)
        best_ours = max(best_ours, len(x) / (time.perf_counter() - t0))
    return best_ours, best_bare


def rgb_rows(d: Path, n: int, batch: int) -> list[dict]:
    from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    rows = []
    try:
        from labelcast.datasets.builtin import clipart_all

        base, _, _ = clipart_all()
        src = "Openclipart"
    except Exception:  # not installed: random pixels measure the same throughput
        base = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        src = "random"
    for size in (64, 128):
        from labelcast.datasets.sources import fit_array

        x = np.concatenate([fit_array(base[s : s + 512], (size, size), 3) for s in range(0, len(base), 512)])
        x = np.resize(x, (n, size, size, 3)) if len(x) < n else x[:n]
        sd = d / f"rgb{size}"
        sd.mkdir()
        x.tofile(sd / "items.u8")
        write_manifest(sd / "manifest.lcm", hash_items(x), np.zeros(len(x), np.uint32), ["all"], (size, size, 3))
        store = ReferenceStore(sd)
        y = np.arange(500) % 4
        train_and_export(x[:500], y, list("abcd"), sd / "t.onnx", TeacherConfig(width=16, epochs=1))
        ours, bare = compare(Teacher(sd / "t.onnx"), store, x, min(batch, 256))
        rows.append(
            {
                "teacher": f"RGB CNN width 16, {size}×{size}×3 ({src})",
                "items": len(x),
                "batch": min(batch, 256),
                "score_store_items_s": round(ours),
                "bare_ort_items_s": round(bare),
                "ratio": round(ours / bare, 3),
            }
        )
    return rows


def render(rows: list[dict]) -> str:
    """docs/results.md's scoring table from a JSON this wrote."""
    return md_grid(
        rows,
        [
            ("teacher", "teacher"),
            ("items", "items"),
            ("batch", "batch"),
            ("score_store items/s", "score_store_items_s"),
            ("bare ORT items/s", "bare_ort_items_s"),
            ("ratio", lambda r: f"{r['ratio']:.3f}"),
        ],
    )


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "scoring:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=60_000)
    ap.add_argument("--rgb-items", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest
    from labelcast.datasets.builtin import fashion, target
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        x, _ = fashion("train")
        x = x[: a.items]
        x.tofile(d / "items.u8")
        write_manifest(d / "manifest.lcm", hash_items(x), np.zeros(len(x), np.uint32), ["all"], (28, 28, 1))
        store = ReferenceStore(d)
        xt, yt, names = target("fashion", "train")
        for width in (16, 32):
            path = d / f"teacher{width}.onnx"
            train_and_export(xt[:2000], yt[:2000], names, path, TeacherConfig(width=width, epochs=1))
            best_ours, best_bare = compare(Teacher(path), store, x, a.batch)
            rows.append(
                {
                    "teacher": f"CNN width {width}, 28×28 grey",
                    "items": len(x),
                    "batch": a.batch,
                    "score_store_items_s": round(best_ours),
                    "bare_ort_items_s": round(best_bare),
                    "ratio": round(best_ours / best_bare, 3),
                }
            )
        rows += rgb_rows(d, a.rgb_items, a.batch)
    table(
        rows, list(rows[0]), "scoring throughput (end to end over the store vs. bare ONNX Runtime on preloaded batches)"
    )
    write_json(a.json, rows)


if __name__ == "__main__":
    main()
