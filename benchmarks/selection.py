"""Selection benchmark: student accuracy vs. framed payload bytes, every strategy, both scenarios.

    python benchmarks/selection.py [--quick] [--scenarios fashion digits] [--clusters K] [--json PATH]
    python benchmarks/selection.py --render docs/results/selection.json   # only rewrite docs/results.md's tables

``--clusters K`` reorders the pool into K content clusters first, as
``labelcast reference build --clusters K`` stores it (for ``random-keyed`` and ``--keyed``).

Per scenario the teacher (and a second-seed detector for refinement) is trained
once and the pool scored once with ONNX Runtime; every (strategy, budget, seed)
then fits k to the budget with the real encoder and framer (Iridium SBD MT
frames, the profile's parity), trains the same student recipe (the device's own,
``StudentConfig``'s defaults, unless ``--train-samples`` says otherwise) and evaluates it
on the held-out test split and on a validation slice: ``--val`` seeded items of the
target's *training* split (the teacher saw them, the student never sees target data).
Choose settings on ``val_accuracy``; report ``accuracy`` (test).
Prints a table, writes JSON and a PNG per scenario.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, render_into, splice_blocks, table, write_json  # noqa: E402

from labelcast.codec.payload import build_payload  # noqa: E402
from labelcast.codec.preprocess import Preprocess  # noqa: E402
from labelcast.codec.softlabels import soft_from_probs  # noqa: E402
from labelcast.datasets import builtin  # noqa: E402
from labelcast.profiles import load_device, load_link  # noqa: E402
from labelcast.receiver.train import StudentConfig, train_student  # noqa: E402
from labelcast.sender.budget import Encoded, fit_budget, link_budget  # noqa: E402
from labelcast.sender.clusters import ClusterConfig, cluster_items, cluster_order  # noqa: E402
from labelcast.sender.refine import refine  # noqa: E402
from labelcast.sender.selection import (  # noqa: E402
    SelectConfig,
    prefix_key,
    pseudo_labels,
    rank_items,
    select,
    softmax,
)
from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export  # noqa: E402

KEYBYTES = bytes(range(32))

CONFIGS = {
    "random": dict(strategy="random", quota=False),
    "random+quota": dict(strategy="random", quota=True),
    "energy": dict(strategy="energy", quota=False),
    "energy+quota": dict(strategy="energy", quota=True),
    "energy-high+quota": dict(strategy="energy-high", quota=True),
    "msp+quota": dict(strategy="msp", quota=True),
    "entropy+quota": dict(strategy="entropy", quota=True),
    "margin+quota": dict(strategy="margin", quota=True),
    "el2n-easy+quota": dict(strategy="el2n-easy", quota=True),
    "random+quota+refine": dict(strategy="random", quota=True, refine=True),
    "el2n-easy+quota+refine": dict(strategy="el2n-easy", quota=True, refine=True),
    "random+quota+soft": dict(strategy="random", quota=True, soft=True),
    "random-keyed": dict(strategy="random-keyed", quota=False),
    "random-keyed+quota": dict(strategy="random-keyed", quota=True),
    "random-keyed+quota+soft": dict(strategy="random-keyed", quota=True, soft=True),
    "energy-high+quota+keyed": dict(strategy="energy-high", quota=True, keyed=True),
    "energy-high+quota+soft": dict(strategy="energy-high", quota=True, soft=True),
    "energy-high+quota+soft4": dict(strategy="energy-high", quota=True, soft=True, soft_extra=4),
    "energy-high+quota+soft8": dict(strategy="energy-high", quota=True, soft=True, soft_extra=8, soft_levels=8),
    "energy-high+quota+soft4-T2": dict(strategy="energy-high", quota=True, soft=True, soft_extra=4, soft_t=2.0),
    "energy-high+quota+soft4-T4": dict(strategy="energy-high", quota=True, soft=True, soft_extra=4, soft_t=4.0),
    "energy-high+quota+soft4-T2-L8": dict(
        strategy="energy-high", quota=True, soft=True, soft_extra=4, soft_t=2.0, soft_levels=8
    ),
    "energy-high+quota+soft3-T2": dict(strategy="energy-high", quota=True, soft=True, soft_extra=3, soft_t=2.0),
    "energy-high+quota+soft4-T1.5": dict(strategy="energy-high", quota=True, soft=True, soft_extra=4, soft_t=1.5),
    "el2n-easy+quota+keyed": dict(strategy="el2n-easy", quota=True, keyed=True),
}


def setup(scenario: str, work: Path, clusters: int = 0, val: int = 5000):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    work.mkdir(parents=True, exist_ok=True)
    x, g, _ = builtin.pool(scenario)
    if clusters:  # the store `reference build --clusters K` writes: grouped by content cluster
        g = cluster_items(x, ClusterConfig(k=clusters))
        order = cluster_order(g)
        x, g = x[order], g[order]
    xtr, ytr, names = builtin.target(scenario, "train")
    xte, yte, _ = builtin.target(scenario, "test")
    pick = np.random.default_rng(123).permutation(len(xtr))[: min(val, len(xtr))]
    logits = {}
    for name, seed, width in (("teacher", 0, 32), ("detector", 1, 24)):
        path = work / f"{name}.onnx"
        if not path.exists():
            train_and_export(xtr, ytr, names, path, TeacherConfig(seed=seed, width=width))
        t = Teacher(path)
        logits[name] = np.concatenate([t.logits(x[s : s + 4096]) for s in range(0, len(x), 4096)])
    tacc = float((np.concatenate([Teacher(work / "teacher.onnx").logits(xte)]).argmax(1) == yte).mean())
    segs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(g)) + 1, [len(g)]]))
    key = Ed25519PrivateKey.from_private_bytes(KEYBYTES)
    return dict(
        clusters=clusters,
        x=x,
        segs=segs,
        logits=logits,
        xte=xte,
        yte=yte,
        xval=xtr[pick],
        yval=ytr[pick],
        teacher_acc=tacc,
        classes=len(names),
        key=key,
    )


def _soft(spec: dict, probs: np.ndarray, hard: np.ndarray):
    """The soft-label section a config sends (runner-ups, levels; T is applied to the logits)."""
    return soft_from_probs(probs, hard, spec.get("soft_extra", 2), spec.get("soft_levels", 16))


def run_one(env, cfg_name, budget, seed, link, train_samples, student: dict | None = None) -> dict:
    spec = CONFIGS[cfg_name]
    sc = SelectConfig(strategy=spec["strategy"], quota=spec["quota"], seed=seed, keyed=spec.get("keyed", False))
    z = env["logits"]["teacher"]
    pl = pseudo_labels(z)
    order = rank_items(z, sc, env["segs"])
    probs = None
    if spec.get("soft"):
        probs = softmax(z, spec.get("soft_t", 1.0))
    chosen = {}
    root = hashlib.sha256(b"bench").digest()

    def build(k):
        idx = select(z, k, sc, order, env["segs"])
        if spec.get("refine"):
            idx, _ = refine(idx, pl, order, z, env["logits"]["detector"])
        chosen[idx.size] = idx
        soft = _soft(spec, probs[idx], pl[idx]) if probs is not None else None
        data, sections = build_payload(
            idx,
            pl[idx],
            n_items=len(pl),
            classes=env["classes"],
            root=root,
            key=env["key"],
            sequence=1,
            expires_at=2**33,
            segments=env["segs"],
            soft=soft,
            prefix_key=prefix_key(sc),
        )
        return Encoded(data, sections, idx, pl[idx])

    fit = fit_budget(build, len(pl), link_budget(link, budget))
    idx = chosen[fit.k] if fit.k in chosen else select(z, fit.k, sc, order, env["segs"])
    targets = pl[idx]
    if probs is not None:
        from labelcast.codec.payload import open_payload  # noqa: F401 (decode path exercised in tests)

        targets = _soft(spec, probs[idx], pl[idx]).dense(pl[idx], env["classes"])
    t = time.time()
    model, info = train_student(
        np.asarray(env["x"][idx]),
        targets,
        env["classes"],
        Preprocess(),
        load_device("cpu-small"),
        StudentConfig(**{"seed": seed, "train_samples": train_samples, **(student or {})}),
    )
    import torch

    def accuracy(x, y):
        with torch.no_grad():
            return float((model(torch.from_numpy(Preprocess().apply(x))).argmax(1).numpy() == y).mean())

    acc = accuracy(env["xte"], env["yte"])
    return {
        "strategy": cfg_name,
        "budget": budget,
        "seed": seed,
        "k": int(idx.size),
        "payload_B": len(fit.payload),
        "framed_B": fit.framed_bytes,
        "clusters": env["clusters"],
        "accuracy": acc,
        "x_teacher": acc / env["teacher_acc"],
        "val_accuracy": accuracy(env["xval"], env["yval"]) if len(env["yval"]) else None,
        "train_samples": train_samples,
        "student": student or {},
        "train_s": round(time.time() - t, 1),
    }


def plot(rows, scenario: str, teacher_acc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r["strategy"] for r in rows):
        rs = [r for r in rows if r["strategy"] == name]
        bs = sorted({r["budget"] for r in rs})
        m = [np.mean([r["accuracy"] for r in rs if r["budget"] == b]) for b in bs]
        ax.plot(bs, m, marker="o", label=name)
    ax.axhline(teacher_acc, color="k", ls="--", lw=1, label="teacher")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("framed bytes on the link (Iridium SBD MT, 270 B frames)")
    ax.set_ylabel("student accuracy (held-out test)")
    ax.set_title(f"{scenario}: student accuracy vs. bytes sent (mean of seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(name: str) -> str:
    spec = CONFIGS[name]
    if not spec.get("soft"):
        return name
    base = name.split("+soft")[0]
    levels = f", {spec['soft_levels']} levels" if spec.get("soft_levels", 16) != 16 else ""
    return f"{base} + soft labels (E {spec.get('soft_extra', 2)}, T {spec.get('soft_t', 1.0):g}{levels})"


def render(result: dict) -> dict[str, str]:
    """docs/results.md's table per scenario from a JSON this wrote: test accuracy mean ± std over seeds, × the
    teacher, items, and the validation slice's accuracy in brackets; bold: the best on validation per budget."""
    blocks = {}
    for scenario, res in result["scenarios"].items():
        runs = res["runs"]
        names = list(dict.fromkeys(r["strategy"] for r in runs))
        budgets = sorted({r["budget"] for r in runs})
        cell = {}
        for n in names:
            for b in budgets:
                rs = [r for r in runs if r["strategy"] == n and r["budget"] == b]
                if rs:
                    acc = [r["accuracy"] for r in rs]
                    val = [r["val_accuracy"] for r in rs]
                    cell[n, b] = (float(np.mean(acc)), float(np.std(acc)), float(np.mean(val)), rs)
        best = {b: max((n for n in names if (n, b) in cell), key=lambda n: cell[n, b][2]) for b in budgets}
        t = res["teacher_accuracy"]
        lines = [
            f"**{scenario}** (teacher {t:.3f}; {len(runs) // max(len(cell), 1)} seeds)",
            "",
            "| strategy | " + " | ".join(f"{b:,} B" for b in budgets) + " |",
            "|---|" + "---|" * len(budgets),
        ]
        for n in names:
            row = []
            for b in budgets:
                if (n, b) not in cell:
                    row.append("")
                    continue
                m, sd, v, rs = cell[n, b]
                k = int(round(np.mean([r["k"] for r in rs])))
                text = f"{m:.3f} ± {sd:.3f} ({m / t:.2f}×, k = {k:,}) [{v:.3f}]"
                row.append(f"**{text}**" if best[b] == n else text)
            lines.append(f"| {_label(n)} | " + " | ".join(row) + " |")
        blocks[f"selection:{scenario}"] = "\n".join(lines)
    return blocks


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/results.md")
    ap.add_argument("--scenarios", nargs="+", default=["fashion", "digits"])
    ap.add_argument("--budgets", nargs="+", type=int, default=[1024, 2048, 4096, 8192])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strategies", nargs="+", default=list(CONFIGS))
    ap.add_argument(
        "--train-samples",
        type=int,
        default=StudentConfig().train_samples,
        help="images the student sees (epochs = this / k, at least 10); default: the device's",
    )
    ap.add_argument(
        "--student",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="other StudentConfig fields, e.g. lr=0.006 arch=resnet8 shift=3 max_epochs=1000",
    )
    ap.add_argument("--val", type=int, default=5000, help="validation items from the target's training split")
    ap.add_argument("--quick", action="store_true", help="one seed, two budgets, four strategies")
    ap.add_argument("--work", default="out/bench/selection")
    ap.add_argument("--plots", default="docs")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--clusters", type=int, default=0, help="reorder the pool into K content clusters (reference build --clusters)"
    )
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    if a.quick:
        a.seeds, a.budgets = 1, [1024, 4096]
        a.strategies = ["random", "random+quota", "energy+quota", "el2n-easy+quota"]
    student = {}
    fields = StudentConfig.__dataclass_fields__
    for item in a.student:
        name, _, value = item.partition("=")
        if name not in fields or not value:
            ap.error(f"--student wants FIELD=VALUE with a StudentConfig field, not {item!r}")
        kind = type(getattr(StudentConfig(), name))
        student[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    link = load_link("iridium-sbd-mt")
    out = {}
    for scenario in a.scenarios:
        env = setup(scenario, Path(a.work) / scenario, a.clusters, a.val)
        rows = []
        for name in a.strategies:
            for b in a.budgets:
                for seed in range(a.seeds):
                    rows.append(run_one(env, name, b, seed, link, a.train_samples, student))
                    print(rows[-1], flush=True)
        summary = []
        for name in a.strategies:
            row = {"strategy": name}
            for b in a.budgets:
                accs = [r["accuracy"] for r in rows if r["strategy"] == name and r["budget"] == b]
                ks = [r["k"] for r in rows if r["strategy"] == name and r["budget"] == b]
                vals = [r["val_accuracy"] for r in rows if r["strategy"] == name and r["budget"] == b]
                v = f", val {np.mean(vals):.3f}" if None not in vals else ""
                row[f"{b} B"] = f"{np.mean(accs):.3f}±{np.std(accs):.3f} (k={int(np.mean(ks))}{v})"
            summary.append(row)
        table(
            summary,
            ["strategy", *[f"{b} B" for b in a.budgets]],
            f"{scenario}: student accuracy (teacher {env['teacher_acc']:.3f}), mean±std over {a.seeds} seed(s)",
        )
        suffix = f"_k{a.clusters}" if a.clusters else ""
        plot(rows, scenario, env["teacher_acc"], Path(a.plots) / f"selection_{scenario}{suffix}.png")
        out[scenario] = {"teacher_accuracy": env["teacher_acc"], "runs": rows}
    config = {"clusters": a.clusters, "budgets": a.budgets, "seeds": a.seeds, "strategies": a.strategies,
              "train_samples": a.train_samples, "student": student, "validation_items": a.val,
              "link": "iridium-sbd-mt"}  # fmt: skip
    write_json(a.json, {"command": " ".join(sys.argv), "machine": machine(), "config": config, "scenarios": out})


if __name__ == "__main__":
    main()
