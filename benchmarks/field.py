"""Field sketches: teaching for what the device sees (issue #36).

    python benchmarks/field.py [--seeds 3] [--budgets 270 1024 4096] [--json docs/results/field.json]

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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, write_json  # noqa: E402

SHIFT_CLASSES = (5, 7, 8, 9)  # sandal, sneaker, bag, ankle boot


def setup(work: Path) -> dict:
    """The store, the teacher (the demo's recipe), keys and the two field folders."""
    from labelcast import TeacherConfig, build_store, generate_keypair, train_and_export
    from labelcast.datasets.builtin import target

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "ref" / "manifest.lcm").exists():
        build_store("builtin:fashion", work / "ref")
    x, y, names = target("fashion", "train")
    if not (work / "teacher.onnx").exists():
        train_and_export(x, y, names, work / "teacher.onnx", TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    shifted = np.flatnonzero(np.isin(y, SHIFT_CLASSES))[:2000]
    return {"shifted": x[shifted], "no shift": x[np.linspace(0, len(x) - 1, 2000).astype(np.int64)]}


def one(work: Path, budget: int, seed: int, field: np.ndarray | None, tag: str) -> Path:
    """send (with the field's sketch when given) and receive (with the field when given); the student."""
    from labelcast import LinkSettings, ReceiveConfig, SendConfig, TrustSet, receive, send
    from labelcast.codec.field import encode_sketch
    from labelcast.receiver.field import field_sketch
    from labelcast.sender.recipe import Recipe
    from labelcast.sender.selection import SelectConfig

    out = work / "runs" / f"{tag}-{budget}-{seed}"
    sketch = encode_sketch(field_sketch(field, work / "ref")) if field is not None else None
    cfg = SendConfig(
        link=LinkSettings(budget=budget), recipe=Recipe(SelectConfig("auto", seed=seed)), field=sketch, force=True
    )
    send(work / "teacher.onnx", work / "ref", work / "keys" / "sender.key", out / "outbox", cfg)
    with tempfile.TemporaryDirectory() as state:
        receive(
            out / "outbox" / "frames",
            work / "ref",
            TrustSet.from_files(work / "keys" / "sender.pub"),
            out / "device",
            ReceiveConfig(field=field),
            state_dir=state,
        )
    return out / "device" / "student.onnx"


def render(result: dict) -> str:
    """The results table of docs/field.md, from the JSON this benchmark writes (``make docs``)."""
    lines = [
        "| device | budget (framed B) | teacher | without the sketch | with sketch + prior | gain (points) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['device']} | {r['budget_B']:,} | {r['teacher']:.4f} | {r['without']} | {r['with sketch + prior']} "
            f"| {r['gain_points']:+.2f} |"
        )
    return "\n".join(lines)


def splice(doc: str, table_md: str) -> str:
    import re

    pat = re.compile(r"(<!-- field:table -->\n).*?(\n<!-- /field:table -->)", re.S)
    if not pat.search(doc):
        raise SystemExit("docs/field.md has no <!-- field:table --> block")
    return pat.sub(lambda m: m.group(1) + table_md + m.group(2), doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/field")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=[270, 1024, 4096])
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/field.md")
    a = ap.parse_args()
    if a.render:
        import json

        doc = Path(a.doc)
        doc.write_text(splice(doc.read_text(), render(json.loads(Path(a.render).read_text()))))
        return
    from labelcast import evaluate
    from labelcast.datasets.builtin import target

    work = Path(a.work)
    fields = setup(work)
    xt, yt, names = target("fashion", "test")
    four = np.isin(yt, SHIFT_CLASSES)
    tests = {"shifted": (xt[four], yt[four]), "no shift": (xt, yt)}
    teacher = {k: evaluate(work / "teacher.onnx", x, y, class_names=names).accuracy for k, (x, y) in tests.items()}
    runs = []
    for budget in a.budgets:
        for seed in range(a.seeds):
            t = time.time()
            base = one(work, budget, seed, None, "none")
            for device, fx in fields.items():
                x, y = tests[device]
                with_sketch = one(work, budget, seed, fx, device.replace(" ", "-"))
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
    rows = []
    for device in fields:
        for budget in a.budgets:
            rs = [r for r in runs if r["device"] == device and r["budget"] == budget]
            w0, w1 = np.array([r["without"] for r in rs]), np.array([r["with"] for r in rs])
            rows.append(
                {
                    "device": device,
                    "budget_B": budget,
                    "teacher": round(teacher[device], 4),
                    "without": f"{w0.mean():.4f} ± {w0.std():.4f}",
                    "with sketch + prior": f"{w1.mean():.4f} ± {w1.std():.4f}",
                    "gain_points": round(100 * (w1.mean() - w0.mean()), 2),
                }
            )
    table(rows, list(rows[0]), "fashion: accuracy on what the device sees, with and without its field sketch")
    write_json(a.json, {"teacher": teacher, "runs": runs, "rows": rows, "classes": list(SHIFT_CLASSES)})


if __name__ == "__main__":
    main()
