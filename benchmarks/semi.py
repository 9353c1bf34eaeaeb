"""The device's semi-supervised round (`receive --semi`): the student with and without it, per framed byte.

    python benchmarks/semi.py [--scenarios fashion digits text] [--seeds 3] [--json docs/results/semi.json]
    python benchmarks/semi.py --render docs/results/semi.json      # only rewrite docs/results.md's table
    python benchmarks/semi.py --scenarios fashion --budgets 270 --recipe erase=0.5 --json r.json  # one recipe
    python benchmarks/semi.py --scenarios fashion --budgets 270 --recipes r.json … --json docs/results/semi-recipes.json

For each scenario, framed budget (Iridium SBD MT) and seed: the real ``send`` (default ``auto``), then the
real ``receive`` twice on the same frames — ``--semi off`` (the round-1 student alone) and ``--semi on``
(round 1, label propagation over 20,000 unlabelled store items, round 2) — with the device's default
recipe on the ``cpu-small`` profile. Each student is scored on a **validation** slice (the first 10,000
items of the target's train split: what ``AUTO_MAX_PER_CLASS`` and ``SemiConfig.min_agreement`` are chosen
on) and on the test split (reported only). Device cost: training seconds with the round over without it, in
the same run. ``--rescore JSON`` scores the students a run left behind again on today's slice.

Work folders (store, teacher, keys) are reused: ``out/bench/field`` (fashion), ``out/bench/field-digits``
(digits), ``out/bench/text-semi`` (wordnet).
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

BUDGETS = {"fashion": [270, 1024, 4096], "digits": [270, 1024], "text": [1080, 4050]}
WORK = {"fashion": "out/bench/field", "digits": "out/bench/field-digits", "text": "out/bench/text-semi"}


def setup(name: str, work: Path) -> dict:
    """Store, teacher and keys of a scenario; its validation and test data."""
    from labelcast import TeacherConfig, build_store, generate_keypair, train_and_export
    from labelcast.datasets.builtin import target
    from labelcast.datasets.sources import load_labelled

    if name == "text":
        from text import setup as text_setup

        text_setup(work)
        xv, yv, names = load_labelled("builtin:wordnet:train")
        xt, yt, _ = load_labelled("builtin:wordnet:test")
    else:
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "ref" / "manifest.lcm").exists():
            build_store(f"builtin:{name}", work / "ref")
        xv, yv, names = target(name, "train")
        if not (work / "teacher.onnx").exists():
            train_and_export(xv, yv, names, work / "teacher.onnx", TeacherConfig())
        if not (work / "keys" / "sender.key").exists():
            generate_keypair(work / "keys")
        xt, yt, _ = target(name, "test")
    return {"val": (xv[:VAL_ITEMS], yv[:VAL_ITEMS]), "test": (xt, yt), "names": names}


# the validation slice: the target's train split's first 10,000 items (all 3,000 of digits'); the student never
# trains on target items. A 2,000-item slice (the split's last) said the round gained on digits at 270 B where
# the whole split and the test split say it loses: too few items and too few writers
VAL_ITEMS = 10_000
VAL_NOTE = f"the train split's first {VAL_ITEMS:,} items (fewer when it holds fewer)"


def one(work: Path, budget: int, seed: int, mode: str, recipe: dict | None = None) -> tuple[Path, dict]:
    """send (cached per budget and seed) and receive with ``--semi mode`` (``recipe``: SemiConfig fields other than
    the defaults, and under ``"student"`` StudentConfig fields); the student (a recipe's in its own folder, so the
    default's students stay for ``--rescore``) and its report."""
    from labelcast import LinkSettings, ReceiveConfig, SendConfig, StudentConfig, TrustSet, receive, send
    from labelcast.receiver.semi import SemiConfig
    from labelcast.sender.recipe import Recipe
    from labelcast.sender.selection import SelectConfig

    out = work / "semi-runs" / f"{budget}-{seed}"
    if not (out / "outbox" / "send-report.json").exists():
        cfg = SendConfig(link=LinkSettings(budget=budget), recipe=Recipe(SelectConfig("auto", seed=seed)), force=True)
        send(work / "teacher.onnx", work / "ref", work / "keys" / "sender.key", out / "outbox", cfg)
    recipe = recipe or {}
    student = recipe.get("student", {})
    semi_fields = {k: v for k, v in recipe.items() if k != "student"}
    with tempfile.TemporaryDirectory() as state:
        rep = receive(
            out / "outbox" / "frames",
            work / "ref",
            TrustSet.from_files(work / "keys" / "sender.pub"),
            out / (mode + recipe_slug(recipe)),
            ReceiveConfig(
                semi=mode,
                semi_recipe=SemiConfig(**semi_fields) if semi_fields else None,
                student=StudentConfig(**student) if student else None,
            ),
            state_dir=state,
        )
    return out / (mode + recipe_slug(recipe)) / "student.onnx", dict(rep)


def recipe_slug(recipe: dict | None) -> str:
    """A recipe's folder suffix: "" for the defaults, else ``-field=value-…``."""
    flat = {
        **{k: v for k, v in (recipe or {}).items() if k != "student"},
        **{f"student.{k}": v for k, v in (recipe or {}).get("student", {}).items()},
    }
    return "".join(f"-{k}={v}" for k, v in sorted(flat.items()))


def run(name: str, budgets: list[int], seeds: int, recipe: dict | None = None) -> dict:
    from labelcast import evaluate

    work = Path(WORK[name])
    data = setup(name, work)
    names = data["names"]
    teacher = {s: evaluate(work / "teacher.onnx", *data[s], class_names=names).accuracy for s in ("val", "test")}
    runs = []
    for budget in budgets:
        for seed in range(seeds):
            row: dict = {"scenario": name, "budget": budget, "seed": seed, **({"recipe": recipe} if recipe else {})}
            for mode in ("off", "on"):
                t = time.time()
                student, rep = one(work, budget, seed, mode, recipe)
                for split in ("val", "test"):
                    row[f"{mode}_{split}"] = evaluate(student, *data[split], class_names=names).accuracy
                semi = rep.get("semi", {})
                row[f"{mode}_train_s"] = rep["stage_seconds"]["train"]
                row.update(items=rep["training"]["items"], classes=rep["classes"])
                if mode == "on":
                    row.update(pool=semi.get("pool_items"), kept=semi.get("kept"), semi_s=semi.get("seconds"))
                    row["agreement"] = semi.get("propagation_agrees_with_student")
                row[f"{mode}_s"] = round(time.time() - t, 1)
            runs.append(row)
            print(row, flush=True)
    return {"teacher": teacher, "runs": runs}


def rescore(result: dict) -> dict:
    """Score the students a run left in its work folders again on today's validation slice (``VAL_ITEMS``): each
    must score what the JSON recorded on the test split, or the folder holds another run's student (refused)."""
    import json

    from labelcast import evaluate

    data = {}
    for r in result["runs"]:
        sc = r["scenario"]
        if sc not in data:
            data[sc] = setup(sc, Path(WORK[sc]))
        d, student = data[sc], Path(WORK[sc]) / "semi-runs" / f"{r['budget']}-{r['seed']}"
        for mode in ("off", "on"):
            got = evaluate(student / mode / "student.onnx", *d["test"], class_names=d["names"]).accuracy
            if round(got, 4) != round(r[f"{mode}_test"], 4):
                raise SystemExit(f"{student / mode} scores {got} on test, the JSON {r[f'{mode}_test']}: another run's")
            r[f"{mode}_val"] = evaluate(student / mode / "student.onnx", *d["val"], class_names=d["names"]).accuracy
        rep = json.loads((student / "on" / "receive-report.json").read_text())
        r["agreement"] = rep["semi"].get("propagation_agrees_with_student")
        print(r, flush=True)
    for sc, d in data.items():
        result["teachers"][sc]["val"] = _teacher_val(sc, d)
    result["validation"] = VAL_NOTE
    return result


def _teacher_val(sc: str, d: dict) -> float:
    from labelcast import evaluate

    return evaluate(Path(WORK[sc]) / "teacher.onnx", *d["val"], class_names=d["names"]).accuracy


def rows(result: dict) -> list[dict]:
    from labelcast.receiver.semi import AUTO_MAX_PER_CLASS, SemiConfig

    out = []
    for sc, tea in result["teachers"].items():
        rs = [r for r in result["runs"] if r["scenario"] == sc]
        for budget in sorted({r["budget"] for r in rs}):
            b = [r for r in rs if r["budget"] == budget]

            def m(key: str, b: list = b) -> np.ndarray:
                return np.array([r[key] for r in b], dtype=float)

            gain_v, gain_t = (m("on_val") - m("off_val")) * 100, (m("on_test") - m("off_test")) * 100
            per = float(np.mean(m("items") / m("classes")))
            agree = float(np.mean(m("agreement"))) if all("agreement" in r for r in b) else None
            auto = per <= AUTO_MAX_PER_CLASS and (agree is None or agree >= SemiConfig().min_agreement)
            out.append(
                {
                    "scenario": sc,
                    "budget_B": budget,
                    "labels per class": round(per, 1),
                    "agreement": "" if agree is None else round(agree, 3),
                    "auto": "on" if auto else "off",
                    "val gain (points)": f"{gain_v.mean():+.2f} ± {gain_v.std():.2f}",
                    "test off": f"{m('off_test').mean():.4f} ({m('off_test').mean() / tea['test']:.3f}×)",
                    "test on": f"{m('on_test').mean():.4f} ({m('on_test').mean() / tea['test']:.3f}×)",
                    "test gain (points)": f"{gain_t.mean():+.2f} ± {gain_t.std():.2f}",
                    "training time on/off": round(float(np.mean(m("on_train_s") / m("off_train_s"))), 2),
                    "seeds": len(b),
                }
            )
    return out


def render(result: dict) -> str:
    rs = rows(result)
    return md_grid(rs, [(c, c) for c in rs[0]])


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "semi:table", table_md)


def splice_recipes(doc: str, table_md: str, tag: str = "semi:recipes") -> str:
    return splice_block(doc, tag, table_md)


def _recipe(items: list[str]) -> dict:
    from labelcast import StudentConfig
    from labelcast.receiver.semi import SemiConfig

    out: dict = {}
    for item in items:
        name, _, value = item.partition("=")
        base, field, into = SemiConfig(), name, out
        if name.startswith("student."):
            base, field, into = StudentConfig(), name.removeprefix("student."), out.setdefault("student", {})
        if not hasattr(base, field) or not value:
            raise SystemExit(f"--recipe wants FIELD=VALUE (a SemiConfig field, or student.FIELD), not {item!r}")
        kind = type(getattr(base, field))
        if getattr(base, field) is None:  # an optional number: a whole one, else a fraction
            into[field] = int(value) if value.lstrip("-").isdigit() else float(value)
        else:
            into[field] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def recipe_rows(result: dict) -> list[dict]:
    """The recipes tried beside the default on one cell (``--recipes``): validation mean ± std over the seeds,
    its difference from the default's on the same payloads, test (reported only), training time on/off."""
    default = [r for r in result["runs"] if not r.get("recipe")]
    base = {r["seed"]: r["on_val"] for r in default}
    v0 = np.array([r["off_val"] for r in default])
    d0 = np.array([100 * (r["off_val"] - base[r["seed"]]) for r in default])
    out = [
        {
            "recipe": "round 1 alone (--semi off)",
            "val": f"{v0.mean():.4f} ± {v0.std():.4f}",
            "val − default (points)": f"{d0.mean():+.2f} ± {d0.std():.2f}",
            "test": round(float(np.mean([r["off_test"] for r in default])), 4),
            "training time on/off": 1.0,
            "seeds": len(default),
        }
    ]
    for name in result["order"]:
        rs = [r for r in result["runs"] if recipe_slug(r.get("recipe")).lstrip("-") == name]
        v = np.array([r["on_val"] for r in rs])
        d = np.array([100 * (r["on_val"] - base[r["seed"]]) for r in rs])
        out.append(
            {
                "recipe": name.replace("-", " + ") or "default (SemiConfig())",
                "val": f"{v.mean():.4f} ± {v.std():.4f}",
                "val − default (points)": "" if not name else f"{d.mean():+.2f} ± {d.std():.2f}",
                "test": round(float(np.mean([r["on_test"] for r in rs])), 4),
                "training time on/off": round(float(np.mean([r["on_train_s"] / r["off_train_s"] for r in rs])), 2),
                "seeds": len(rs),
            }
        )
    return out


def render_recipes(result: dict) -> str:
    rs = recipe_rows(result)

    def recipe(r: dict) -> str:  # a recipe's fields as code, the two fixed rows as words
        name = r["recipe"]
        return " + ".join(f"`{part}`" for part in name.split(" + ")) if "=" in name else name

    return md_grid(rs, [("recipe", recipe)] + [(c, c) for c in list(rs[0])[1:]])


def join_recipes(paths: list[str], default: str, scenario: str, budget: int) -> dict:
    """One JSON of recipe runs (each a ``--recipe`` run's JSON) and the default's runs of the same cell (from
    ``default``, e.g. docs/results/semi.json): the same sends, so the seeds pair up."""
    import json

    base = json.loads(Path(default).read_text())
    runs = [r for r in base["runs"] if r["scenario"] == scenario and r["budget"] == budget]
    order = [""]
    for p in paths:
        part = json.loads(Path(p).read_text())
        mine = [r for r in part["runs"] if r["scenario"] == scenario and r["budget"] == budget and r.get("recipe")]
        runs += mine
        order += [recipe_slug(mine[0]["recipe"]).lstrip("-")] if mine else []
    return {"scenario": scenario, "budget": budget, "teachers": base["teachers"], "runs": runs, "order": order}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="+", default=None, help="default: per scenario")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--recipe",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="SemiConfig fields other than the defaults, e.g. text_input=true pool=10000, and StudentConfig ones as "
        "student.FIELD=VALUE (recorded per run)",
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="JSONs this wrote: join them into --json (a later one's (scenario, budget) cells replace the earlier)",
    )
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    ap.add_argument("--rescore", default=None, help="a JSON this wrote: score its students again on today's slice")
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=None,
        help="--recipe runs' JSONs (one cell): join them with --default's runs of that cell into --json",
    )
    ap.add_argument("--default", default="docs/results/semi.json", help="with --recipes: the default's runs")
    ap.add_argument("--render-recipes", default=None, help="a --recipes JSON: only rewrite --doc's recipe table")
    a = ap.parse_args()
    if a.recipes:
        budget = (a.budgets or [270])[0]
        result = join_recipes(a.recipes, a.default, a.scenarios[0], budget)
        table(recipe_rows(result), list(recipe_rows(result)[0]), f"{a.scenarios[0]} at {budget} B: recipes tried")
        write_json(a.json, result)
        return
    if a.render_recipes:
        render_into(a.doc, a.render_recipes, render_recipes, splice_recipes)
        return
    if a.rescore:
        import json

        result = rescore(json.loads(Path(a.rescore).read_text()))
        table(rows(result), list(rows(result)[0]), "the semi-supervised round, scored again")
        write_json(a.json, result)
        return
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    if a.merge:
        import json

        parts = [json.loads(Path(p).read_text()) for p in a.merge]
        result = {"teachers": {k: v for p in parts for k, v in p["teachers"].items()}}
        cells: dict = {}  # (scenario, budget) → its runs; a later JSON's cell replaces an earlier one's
        for part in parts:
            mine: dict = {}
            for r in part["runs"]:
                mine.setdefault((r["scenario"], r["budget"]), []).append(r)
            cells.update(mine)
        result["runs"] = [r for runs in cells.values() for r in runs]
        slices = {p.get("validation") for p in parts}
        if len(slices) != 1 or None in slices:
            raise SystemExit(f"the runs were scored on different validation slices ({slices}): --rescore them first")
        result["validation"] = slices.pop()
    else:
        result = {"teachers": {}, "runs": [], "validation": VAL_NOTE}
        for sc in a.scenarios:
            part = run(sc, a.budgets or BUDGETS[sc], a.seeds, _recipe(a.recipe))
            result["teachers"][sc] = part["teacher"]
            result["runs"] += part["runs"]
    table(rows(result), list(rows(result)[0]), "the semi-supervised round: student with and without it")
    write_json(a.json, result)


if __name__ == "__main__":
    main()
