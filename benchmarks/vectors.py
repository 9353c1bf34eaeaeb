"""Vector stores beside images: the same task sent over a store of feature vectors (issue #38).

    python benchmarks/vectors.py [--seeds 3] [--budgets 1024 4096] [--json docs/results/vectors.json]

`fashion` twice, in the same run:

- **image**: the built-in store (28×28 grey), the built-in CNN teacher, the device's default `cnn-small`.
- **vector**: the same pool as 784-D float32 vectors (pixels / 255, row-major) in an `npy:` store built with
  the default clusters, the built-in `mlp` teacher on the same target train split as vectors, the device's
  default `mlp` student (per-feature standardisation fitted on the store).

For each budget (framed bytes on Iridium SBD MT) and seed: `send` (default `auto` strategy) and `receive`
(default recipe). Accuracy on the target's test split; the student's ratio to its own teacher.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import render_into, splice_block, table, write_json  # noqa: E402


def as_vectors(x: np.ndarray) -> np.ndarray:
    return (x.reshape(len(x), -1).astype(np.float32) / 255).astype(np.float32)


def setup(work: Path) -> dict:
    """Both stores, both teachers, one key pair; returns each path's (store, teacher, test x)."""
    from labelcast import TeacherConfig, build_store, generate_keypair, train_and_export
    from labelcast.datasets.builtin import pool, target

    work.mkdir(parents=True, exist_ok=True)
    x, y, names = target("fashion", "train")
    if not (work / "image" / "ref" / "manifest.lcm").exists():
        build_store("builtin:fashion", work / "image" / "ref")
    if not (work / "image" / "teacher.onnx").exists():
        train_and_export(x, y, names, work / "image" / "teacher.onnx", TeacherConfig())
    if not (work / "vector" / "ref" / "manifest.lcm").exists():
        (work / "vector").mkdir(parents=True, exist_ok=True)
        np.save(work / "vector" / "pool.npy", as_vectors(pool("fashion")[0]))
        build_store(f"npy:{work / 'vector' / 'pool.npy'}", work / "vector" / "ref")
    if not (work / "vector" / "teacher.onnx").exists():
        train_and_export(as_vectors(x), y, names, work / "vector" / "teacher.onnx", TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    xt, yt, _ = target("fashion", "test")
    return {"image": xt, "vector": as_vectors(xt), "y": yt, "names": names}


def one(work: Path, kind: str, budget: int, seed: int) -> tuple[Path, dict]:
    """send and receive on one path; the student and the receive report."""
    from labelcast import LinkSettings, SendConfig, TrustSet, receive, send
    from labelcast.sender.recipe import Recipe
    from labelcast.sender.selection import SelectConfig

    base = work / kind
    out = base / "runs" / f"{budget}-{seed}"
    cfg = SendConfig(link=LinkSettings(budget=budget), recipe=Recipe(SelectConfig("auto", seed=seed)), force=True)
    sent = send(base / "teacher.onnx", base / "ref", work / "keys" / "sender.key", out / "outbox", cfg)
    with tempfile.TemporaryDirectory() as state:
        rep = receive(
            out / "outbox" / "frames",
            base / "ref",
            TrustSet.from_files(work / "keys" / "sender.pub"),
            out / "device",
            state_dir=state,
        )
    return out / "device" / "student.onnx", {"items": sent.labels, "train_seconds": rep["training"]["train_seconds"]}


LABELS = {"image": "image (28×28 store, `cnn-small`)", "vector": "vector (784-D float32 store, `mlp`)"}


def render(result: dict) -> str:
    """The table of docs/results.md "Vector stores", from the JSON this benchmark writes (``make docs``)."""
    lines = [
        "| path | framed bytes | labels | teacher | student | × teacher | device training (s, 2 cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {LABELS[r['path']]} | {r['budget_B']:,} | {r['items labelled']:,} | {r['teacher']:.4f} | "
            f"{r['student']} | {r['× teacher']:.3f} | {r['train s']} |"
        )
    return "\n".join(lines)


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "vectors:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/vectors")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast import evaluate

    work = Path(a.work)
    data = setup(work)
    y, names = data["y"], data["names"]
    kinds = ("image", "vector")
    teacher = {k: evaluate(work / k / "teacher.onnx", data[k], y, class_names=names).accuracy for k in kinds}
    runs = []
    for budget in a.budgets:
        for seed in range(a.seeds):
            for kind in kinds:
                t = time.time()
                student, info = one(work, kind, budget, seed)
                acc = evaluate(student, data[kind], y, class_names=names).accuracy
                runs.append(
                    {"path": kind, "budget": budget, "seed": seed, "accuracy": acc, **info}
                    | {"seconds": round(time.time() - t, 1)}
                )
                print(runs[-1], flush=True)
    rows = []
    for budget in a.budgets:
        for kind in kinds:
            rs = [r for r in runs if r["path"] == kind and r["budget"] == budget]
            acc = np.array([r["accuracy"] for r in rs])
            rows.append(
                {
                    "path": kind,
                    "budget_B": budget,
                    "items labelled": int(np.mean([r["items"] for r in rs])),
                    "teacher": round(teacher[kind], 4),
                    "student": f"{acc.mean():.4f} ± {acc.std():.4f}",
                    "× teacher": round(float(acc.mean()) / teacher[kind], 3),
                    "train s": round(float(np.mean([r["train_seconds"] for r in rs])), 1),
                }
            )
    table(rows, list(rows[0]), "fashion as images and as 784-D vectors: student accuracy per framed byte")
    write_json(a.json, {"teacher": teacher, "runs": runs, "rows": rows})


if __name__ == "__main__":
    main()
