"""Field sketches: teaching for what the device sees (issue #36).

    python benchmarks/field.py [--seeds 3] [--budgets 270 1024 4096] [--json docs/results/field.json]
    python benchmarks/field.py --scenario digits --work out/bench/field-digits --seeds 1 --budgets 270 1024
        --json docs/results/field-digits.json
    python benchmarks/field.py --floors 0.25 0.1 0.05 --budgets 270 --json docs/results/field-floor.json
    python benchmarks/field.py --merge A.json B.json --json docs/results/field-floor.json   # runs made apart
    python benchmarks/field.py --choose-semi --budgets 270 --json docs/results/field-semi.json
    python benchmarks/field.py --scenario text --work out/bench/text-semi --budgets 1080 4050
        --json docs/results/field-text.json

The last form chooses ``FIELD_FLOOR`` on validation data: the shifted device at 270 B, scored on the train
split's images of its four classes that its field folder does not hold (never the test split).

`fashion`, the default send path (auto: random-keyed with the quota) on Iridium SBD MT. Two devices:

- **shifted**: it only ever sees Sandal, Sneaker, Bag and Ankle boot. Its field folder is 2,000 unlabelled
  images of those classes from the target's *train* split (never tested on); accuracy is measured on the
  test images of those four classes.
- **no shift**: its field is 2,000 images of the whole target train split; accuracy on the whole test split.

For each budget and seed: `send` without a sketch and `receive` (the baseline), and `send --field SKETCH` with
`receive --field` (the quota follows the field's class mix, the student's outputs are corrected to it).
Prints a table and writes JSON; compares with and without in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import render_into, splice_block, table, write_json  # noqa: E402

SHIFT_CLASSES = (5, 7, 8, 9)  # fashion: sandal, sneaker, bag, ankle boot; digits: 5, 7, 8, 9; text: four lexnames
SCENARIO = ["fashion"]  # set by --scenario: fashion (the pool near the task), digits (a far pool) or text (wordnet)


def data(split: str):
    """The scenario's labelled target split: (items, labels, class names)."""
    if SCENARIO[0] == "text":
        from labelcast.datasets.sources import load_labelled

        return load_labelled(f"builtin:wordnet:{split}")
    from labelcast.datasets.builtin import target

    return target(SCENARIO[0], split)


def setup(work: Path) -> dict:
    """The store, the teacher (the demo's recipe), keys and the two field folders."""
    from labelcast import TeacherConfig, build_store, generate_keypair, train_and_export

    x, y, names = data("train")
    if SCENARIO[0] == "text":
        from text import setup as text_setup

        text_setup(work)
        return _fields(x, y)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "ref" / "manifest.lcm").exists():
        build_store(f"builtin:{SCENARIO[0]}", work / "ref")
    if not (work / "teacher.onnx").exists():
        train_and_export(x, y, names, work / "teacher.onnx", TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    return _fields(x, y)


def _fields(x: np.ndarray, y: np.ndarray) -> dict:
    shifted = np.flatnonzero(np.isin(y, SHIFT_CLASSES))[:2000]
    return {"shifted": x[shifted], "no shift": x[np.linspace(0, len(x) - 1, 2000).astype(np.int64)]}


def one(
    work: Path,
    budget: int,
    seed: int,
    field: np.ndarray | None,
    tag: str,
    floor: float | None = None,
    receive: dict | None = None,
) -> Path:
    """send (with the field's sketch when given) and receive (with the field when given); the student."""
    from labelcast import LinkSettings, ReceiveConfig, SendConfig, TrustSet, send
    from labelcast import receive as receive_payload
    from labelcast.codec.field import encode_sketch
    from labelcast.receiver.field import field_sketch
    from labelcast.sender.recipe import Recipe
    from labelcast.sender.selection import SelectConfig

    out = work / "runs" / f"{tag}-{budget}-{seed}"
    sketch = encode_sketch(field_sketch(field, work / "ref")) if field is not None else None
    cfg = SendConfig(
        link=LinkSettings(budget=budget), recipe=Recipe(SelectConfig("auto", seed=seed)), field=sketch, force=True
    )
    if floor is not None:
        cfg = replace(cfg, field_floor=floor)
    if receive is None or not (out / "outbox" / "send-report.json").exists():  # variants share one send
        send(
            work / "teacher.onnx", work / "ref", work / "keys" / "sender.key", out / "outbox", cfg, logits=logits(work)
        )
    with tempfile.TemporaryDirectory() as state:
        receive_payload(
            out / "outbox" / "frames",
            work / "ref",
            TrustSet.from_files(work / "keys" / "sender.pub"),
            out / "device",
            ReceiveConfig(field=field, **(receive or {})),
            state_dir=state,
        )
    return out / "device" / "student.onnx"


def logits(work: Path) -> np.ndarray:
    """The teacher's logits over the store, scored once per work folder (what every ``send`` would score)."""
    path = work / "logits.npy"
    if not path.exists():
        from labelcast.codec.manifest import ReferenceStore
        from labelcast.sender.scoring import score_store
        from labelcast.sender.teacher import Teacher

        np.save(path, score_store(Teacher(work / "teacher.onnx"), ReferenceStore(work / "ref")))
    return np.load(path)


def choose_floor(work: Path, floors: list[float], seeds: int, budget: int) -> dict:
    """The floor, chosen on validation data: the shifted device at ``budget``, scored on the train split's images
    of its four classes that its field folder does not hold (the test split is not read)."""
    from labelcast import evaluate

    fields = setup(work)
    x, y, names = data("train")
    four = np.flatnonzero(np.isin(y, SHIFT_CLASSES))
    val = four[2000:]  # the field folder is the first 2,000
    runs = []
    for seed in range(seeds):
        base = evaluate(one(work, budget, seed, None, "none"), x[val], y[val], class_names=names).accuracy
        for floor in floors:
            student = one(work, budget, seed, fields["shifted"], f"floor{floor}", floor)
            acc = evaluate(student, x[val], y[val], class_names=names).accuracy
            runs.append({"floor": floor, "seed": seed, "without": base, "with": acc})
            print(runs[-1], flush=True)
    return floor_rows({"budget": budget, "validation_items": int(val.size), "runs": runs})


SEMI_VARIANTS = {  # name → ReceiveConfig fields, for the shifted device with its sketch (semi: auto, on at 270 B)
    "store pool": {"semi_field": False},
    "+ captures": {"semi_field": True, "field_pool": False},
    "+ captures, pool by sketch": {"semi_field": True, "field_pool": True},
}


def choose_semi(work: Path, seeds: int, budget: int) -> dict:
    """How the semi-supervised round uses the field, chosen on validation data: the shifted device at ``budget``
    with its sketch, scored on the train split's images of its four classes its field folder does not hold."""
    from labelcast import SemiConfig, evaluate

    fields = setup(work)
    x, y, names = data("train")
    val = np.flatnonzero(np.isin(y, SHIFT_CLASSES))[2000:]
    runs = []
    for seed in range(seeds):
        base = evaluate(one(work, budget, seed, None, "none"), x[val], y[val], class_names=names).accuracy
        for name, v in SEMI_VARIANTS.items():
            rc = {"semi_field": v["semi_field"], "semi_recipe": SemiConfig(field_pool=v.get("field_pool", False))}
            student = one(work, budget, seed, fields["shifted"], "shifted", receive=rc)
            acc = evaluate(student, x[val], y[val], class_names=names).accuracy
            runs.append({"variant": name, "seed": seed, "without": base, "with": acc})
            print(runs[-1], flush=True)
    rows = []
    for name in SEMI_VARIANTS:
        rs = [r for r in runs if r["variant"] == name]
        gain = np.array([r["with"] - r["without"] for r in rs]) * 100
        rows.append({"variant": name, "gain_points": round(float(gain.mean()), 2), "sd": round(float(gain.std()), 2)})
    table(rows, ["variant", "gain_points", "sd"], f"validation: the shifted device's gain at {budget} B, semi round")
    return {"budget": budget, "validation_items": int(val.size), "runs": runs, "rows": rows}


def render_semi(result: dict) -> str:
    """The semi-round variants table of docs/field.md (``make docs``)."""
    lines = ["| the semi round's pool | gain on validation (points) | sd |", "|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['gain_points']:+.2f} | {r['sd']:.2f} |")
    return "\n".join(lines)


def floor_rows(result: dict) -> dict:
    """The per-floor gains (mean and sd over seeds, in points) of a floor run's ``runs``."""
    rows = []
    for floor in sorted({r["floor"] for r in result["runs"]}):
        rs = [r for r in result["runs"] if r["floor"] == floor]
        gain = np.array([r["with"] - r["without"] for r in rs]) * 100
        rows.append(
            {
                "floor": floor,
                "gain_points": round(float(gain.mean()), 2),
                "sd": round(float(gain.std()), 2),
                "seeds": len(rs),
            }
        )
    table(rows, ["floor", "gain_points", "sd", "seeds"], f"validation: the sketch's gain at {result['budget']} B")
    return {**result, "rows": rows}


def merge_floors(paths: list[str]) -> dict:
    """Floor runs made separately (``--floors`` more than once) as one result: their runs, rows recomputed."""
    import json

    parts = [json.loads(Path(p).read_text()) for p in paths]
    if len({(p["budget"], p["validation_items"]) for p in parts}) != 1:
        raise SystemExit("the floor runs differ in budget or validation items: they do not merge")
    return floor_rows({**parts[0], "runs": [r for p in parts for r in p["runs"]]})


def render_floor(result: dict) -> str:
    """The floor table of docs/field.md (``make docs``)."""
    lines = ["| floor | gain on validation (points) | sd | seeds |", "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['floor']:g} | {r['gain_points']:+.2f} | {r['sd']:.2f} | {r['seeds']} |")
    return "\n".join(lines)


def splice_floor(doc: str, table_md: str) -> str:
    return splice_block(doc, "field:floor", table_md)


def told_teacher(work: Path, x: np.ndarray, y: np.ndarray) -> float:
    """The teacher's accuracy on ``x`` when it is told which classes occur there (its logits of the others
    masked): the ceiling a student taught by its labels, with a perfect prior, would meet."""
    from labelcast.sender.teacher import Teacher

    logits = Teacher(work / "teacher.onnx").logits(x)
    mask = np.full(logits.shape[1], -np.inf)
    mask[np.unique(y)] = 0.0
    return float(((logits + mask).argmax(1) == y).mean())


def render(result: dict) -> str:
    """The results table of docs/field.md, from the JSON this benchmark writes (``make docs``); a run that
    recorded the teacher told the field's classes (``teacher_told``) gets that column."""
    told = all("teacher_told" in r for r in result["rows"])
    head = "| device | budget (framed B) | teacher |" + (" teacher told the classes |" if told else "")
    lines = [
        head + " without the sketch | with sketch + prior | gain (points) |",
        "|---|---|---|" + ("---|" if told else "") + "---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['device']} | {r['budget_B']:,} | {r['teacher']:.4f} |"
            + (f" {r['teacher_told']:.4f} |" if told else "")
            + f" {r['without']} | {r['with sketch + prior']} | {r['gain_points']:+.2f} |"
        )
    return "\n".join(lines)


def splice(doc: str, table_md: str, tag: str = "field:table") -> str:
    return splice_block(doc, tag, table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/field")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=[270, 1024, 4096])
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/field.md")
    ap.add_argument("--tag", default="field:table", help="with --render: the block it rewrites (field:digits)")
    ap.add_argument("--floors", type=float, nargs="+", default=None, help="choose the floor on validation data")
    ap.add_argument("--floor", type=float, default=None, help="the floor the sends use (default: FIELD_FLOOR)")
    ap.add_argument("--scenario", choices=["fashion", "digits", "text"], default="fashion")
    ap.add_argument("--merge", nargs="+", default=None, help="floor runs' JSON files: write them as one to --json")
    ap.add_argument("--choose-semi", action="store_true", help="choose how the semi round uses the field")
    ap.add_argument("--render-semi", default=None, help="a --choose-semi JSON: only rewrite --doc's table from it")
    ap.add_argument(
        "--keep",
        default=None,
        help="a JSON this wrote: keep its runs at the budgets not run here (the JSON records which were kept)",
    )
    ap.add_argument("--render-floor", default=None, help="a floor JSON: only rewrite --doc's floor table from it")
    a = ap.parse_args()
    SCENARIO[0] = a.scenario
    if a.merge:
        write_json(a.json, merge_floors(a.merge))
        return
    if a.render_floor:
        render_into(a.doc, a.render_floor, render_floor, splice_floor)
        return
    if a.choose_semi:
        write_json(a.json, choose_semi(Path(a.work), a.seeds, a.budgets[0]))
        return
    if a.render_semi:
        render_into(a.doc, a.render_semi, render_semi, lambda doc, t: splice_block(doc, "field:semi", t))
        return
    if a.floors:
        write_json(a.json, choose_floor(Path(a.work), a.floors, a.seeds, a.budgets[0]))
        return
    if a.render:
        render_into(a.doc, a.render, render, lambda doc, t: splice(doc, t, a.tag))
        return
    from labelcast import evaluate

    work = Path(a.work)
    fields = setup(work)
    xt, yt, names = data("test")
    four = np.isin(yt, SHIFT_CLASSES)
    tests = {"shifted": (xt[four], yt[four]), "no shift": (xt, yt)}
    teacher = {k: evaluate(work / "teacher.onnx", x, y, class_names=names).accuracy for k, (x, y) in tests.items()}
    told = {k: told_teacher(work, x, y) for k, (x, y) in tests.items()}
    runs = []
    for budget in a.budgets:
        for seed in range(a.seeds):
            t = time.time()
            base = one(work, budget, seed, None, "none")
            for device, fx in fields.items():
                x, y = tests[device]
                with_sketch = one(work, budget, seed, fx, device.replace(" ", "-"), a.floor)
                runs.append(
                    {
                        "device": device,
                        "budget": budget,
                        "seed": seed,
                        "without": evaluate(base, x, y, class_names=names).accuracy,
                        "with": evaluate(with_sketch, x, y, class_names=names).accuracy,
                        "seconds": round(time.time() - t, 1),
                    }
                )
                print(runs[-1], flush=True)
    budgets, kept = list(a.budgets), None
    if a.keep:
        import json

        old = json.loads(Path(a.keep).read_text())
        kept_runs = [r for r in old["runs"] if r["budget"] not in a.budgets]
        kept = {"from": a.keep, "budgets": sorted({r["budget"] for r in kept_runs})}
        runs = kept_runs + runs
        budgets = sorted({r["budget"] for r in runs})
    rows = []
    for device in fields:
        for budget in budgets:
            rs = [r for r in runs if r["device"] == device and r["budget"] == budget]
            w0, w1 = np.array([r["without"] for r in rs]), np.array([r["with"] for r in rs])
            rows.append(
                {
                    "device": device,
                    "budget_B": budget,
                    "teacher": round(teacher[device], 4),
                    "teacher_told": round(told[device], 4),
                    "without": f"{w0.mean():.4f} ± {w0.std():.4f}",
                    "with sketch + prior": f"{w1.mean():.4f} ± {w1.std():.4f}",
                    "gain_points": round(100 * (w1.mean() - w0.mean()), 2),
                }
            )
    table(rows, list(rows[0]), f"{SCENARIO[0]}: accuracy on what the device sees, with and without its field sketch")
    out = {"scenario": SCENARIO[0], "teacher": teacher, "teacher_told": told, "runs": runs, "rows": rows}
    out["classes"] = list(SHIFT_CLASSES)
    if kept:
        out["kept"] = kept
    write_json(a.json, out)


if __name__ == "__main__":
    main()
