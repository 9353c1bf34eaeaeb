"""The training recipes' defaults, on validation data: the teacher's schedule and the device student's.

    python benchmarks/recipes.py [--json docs/results/recipes.json]
    python benchmarks/recipes.py --render docs/results/recipes.json   # only rewrite docs/results.md's tables

**Teacher** (``TeacherConfig``): on ``fashion``'s train split, 20 % of every class held back (seed 1) and
scored on the exported ONNX teacher (``train_and_export(..., validation=0.2)``), one seed per schedule:
the default (12 epochs, batch 128, peak lr 3e-3, width 32) against cheaper schedules and a narrower net.

**Device student** (``StudentConfig``): on ``digits`` (the far pool) at 4,096 framed bytes (Iridium SBD
MT), the set ``send --strategy auto`` sends there — energy-high + quota with soft labels (4 runner-ups,
T = 2) on the 32-cluster store — trained with each recipe (``benchmarks/selection.py``'s ``run_one``, the
same items for every recipe of a seed) and scored on the validation slice (the 3,000 images of the
target's train split, which the student never sees); the test split is reported beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_blocks, table, write_json  # noqa: E402

TEACHERS = {  # name: TeacherConfig fields other than the defaults
    "12 epochs, batch 128, lr 3e-3, width 32 (the default)": {},
    "8 epochs, batch 128, lr 6e-3": {"epochs": 8, "lr": 6e-3},
    "8 epochs, batch 64, lr 3e-3": {"epochs": 8, "batch": 64},
    "6 epochs, batch 64, lr 6e-3": {"epochs": 6, "batch": 64, "lr": 6e-3},
    "12 epochs, width 24": {"width": 24},
}
STUDENTS = {  # name: StudentConfig fields other than the defaults
    "100,000 images (the default)": {},
    "60,000 images": {"train_samples": 60_000},
    "150,000 images": {"train_samples": 150_000},
    "150,000 images, lr 6e-3": {"train_samples": 150_000, "lr": 6e-3},
    "100,000, `resnet8` student": {"arch": "resnet8"},
    "100,000, crops ± 3 px": {"shift": 3},
    "100,000, weight decay 5e-3": {"weight_decay": 5e-3},
}
STUDENT_STRATEGY, STUDENT_BUDGET = "energy-high+quota+soft4-T2", 4096


def teachers() -> list[dict]:
    import tempfile

    from labelcast.datasets.builtin import target
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    x, y, names = target("fashion", "train")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, fields in TEACHERS.items():
            t = time.time()
            res = train_and_export(x, y, names, Path(d) / "t.onnx", TeacherConfig(seed=1, **fields), validation=0.2)
            rows.append(
                {
                    "schedule": name,
                    "fields": fields,
                    "validation_accuracy": res["validation"]["accuracy"],
                    "validation_items": res["validation"]["items"],
                    "seconds": round(time.time() - t, 1),
                }
            )
            print(rows[-1], flush=True)
    return rows


def students(seeds: int, work: Path) -> list[dict]:
    from selection import run_one, setup

    from labelcast.profiles import load_link

    env = setup("digits", work, clusters=32, val=5000)
    link = load_link("iridium-sbd-mt")
    rows = []
    for name, fields in STUDENTS.items():
        for seed in range(seeds):
            r = run_one(env, STUDENT_STRATEGY, STUDENT_BUDGET, seed, link, fields.get("train_samples", 100_000), fields)
            rows.append({"recipe": name, "fields": fields, **r})
            print({k: r[k] for k in ("k", "val_accuracy", "accuracy", "train_s")}, name, seed, flush=True)
    return rows


def render(result: dict) -> dict[str, str]:
    """docs/results.md's two tables of "How choices are made" from a JSON this wrote."""
    t = result["teacher"]
    best = max(t, key=lambda r: r["validation_accuracy"])
    teacher = md_grid(
        t,
        [
            ("teacher schedule", "schedule"),
            (
                "validation accuracy",
                lambda r: f"**{r['validation_accuracy']:.4f}**" if r is best else f"{r['validation_accuracy']:.4f}",
            ),
            ("seconds", lambda r: f"{r['seconds']:.1f}"),
        ],
    )
    rows = []
    for name in dict.fromkeys(r["recipe"] for r in result["student"]):
        rs = [r for r in result["student"] if r["recipe"] == name]
        val, test = np.array([r["val_accuracy"] for r in rs]), np.array([r["accuracy"] for r in rs])
        rows.append(
            {"recipe": name, "val": val, "test": test, "k": rs[0]["k"], "s": np.mean([r["train_s"] for r in rs])}
        )
    top = max(rows, key=lambda r: r["val"].mean())
    tacc = result["student_teacher_accuracy"]
    student = md_grid(
        rows,
        [
            ("student recipe", "recipe"),
            (
                "validation",
                lambda r: (
                    (f"**{r['val'].mean():.3f}**" if r is top else f"{r['val'].mean():.3f}")
                    + f" ± {r['val'].std():.3f}"
                ),
            ),
            ("test", lambda r: f"{r['test'].mean():.3f} ± {r['test'].std():.3f}"),
            ("× teacher (test)", lambda r: f"{r['test'].mean() / tacc:.2f}×"),
            ("items", "k"),
            ("train s", lambda r: f"{r['s']:.0f}"),
        ],
    )
    return {"recipes:teacher": teacher, "recipes:student": student}


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="student seeds (the teacher sweep is one seed)")
    ap.add_argument("--work", default="out/bench/selection/digits", help="selection.py's digits work folder")
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/results.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast.datasets.builtin import target
    from labelcast.sender.teacher import Teacher

    t0 = time.time()
    result = {"command": " ".join(sys.argv)}
    result["machine"] = machine()
    result["teacher"] = teachers()
    table(result["teacher"], ["schedule", "validation_accuracy", "seconds"], "teacher schedules (fashion)")
    result["student"] = students(a.seeds, Path(a.work))
    xte, yte, _ = target("digits", "test")
    result["student_teacher_accuracy"] = float(
        (Teacher(Path(a.work) / "teacher.onnx").logits(xte).argmax(1) == yte).mean()
    )
    table(result["student"], ["recipe", "seed", "k", "val_accuracy", "accuracy", "train_s"], "student recipes")
    result["seconds"] = round(time.time() - t0, 1)
    write_json(a.json, result)


if __name__ == "__main__":
    main()
