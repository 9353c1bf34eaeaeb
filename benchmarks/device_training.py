"""Device training: pretrained backbones and sparse updates, against random weights (issue #19).

    python benchmarks/device_training.py [--scenarios fashion digits] [--json docs/results/device-training.json]
    python benchmarks/device_training.py --render docs/results/device-training.json   # only docs/devices.md's tables

For each scenario (the built-in reference store, its teacher trained here) and each framed budget
(Iridium SBD MT: 1, 4 and 15 messages = 270 B, 1,080 B, 4,050 B — the framed budgets nearest
256 B / 1 KiB / 4 KiB), ``send`` builds the default payload; then the **real CLI** ``labelcast
receive`` trains the device's default student (``cnn-small``, profile ``cpu-small``) on it, one
process per run:

* ``random``: ``--init none`` — random weights, everything trained, the default schedule;
* ``pretrained``: the store's backbone (``labelcast student pretrain``, made once on the ground),
  everything trained, the default schedule;
* ``random-half`` / ``pretrained-half``: the same with half the schedule (``--train-samples 50000``):
  the time goal, with its control (is it the backbone, or is the default schedule longer than needed?);
* ``last:1`` / ``head``: the backbone with only the last block (+ head) or the head trained;
* ``random-roll`` (only with ``--runs … random-roll``): random weights with the former augmentation
  (wrap-around shifts, ``--augment roll``) against today's padded crops (``random``).

Finished runs are kept in the work folder (``row-BUDGET-RUN.json``); a rerun adds only what is
missing (``--fresh`` reruns everything).

Each run reports the student's accuracy on the scenario's test split, its device training time
(``train_seconds`` in the receive report) and the peak training memory the trainer measured
(anonymous memory above what the process held when training began).

A second table isolates memory: for three students (``cnn-small``, ``resnet8``, ``mobilenet``) the
planned and measured peak of training at a fixed batch of 64 for ``all`` / ``last:1`` / ``head``,
each in its own process (goal: ``head`` and ``last:1`` ≤ 0.5× ``all``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_blocks, table, write_json  # noqa: E402

BUDGETS = (270, 1080, 4050)
RUNS = {  # name: (--init, --finetune, --train-samples, --augment)
    "random": ("none", "all", None, None),
    "random-half": ("none", "all", 50_000, None),
    "pretrained": ("auto", "all", None, None),
    "pretrained-half": ("auto", "all", 50_000, None),
    "last:1": ("auto", "last:1", None, None),
    "head": ("auto", "head", None, None),
}
EXTRA_RUNS = {"random-roll": ("none", "all", None, "roll")}  # --runs random-roll: the former augmentation

MEMORY_CHILD = r"""
import json, sys, numpy as np
from labelcast.codec.preprocess import Preprocess
from labelcast.profiles import load_device
from labelcast.receiver.train import StudentConfig, train_student
arch, finetune = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (2000, 28, 28, 1), dtype=np.uint8)
y = rng.integers(0, 10, x.shape[0])
cfg = StudentConfig(arch=arch, finetune=finetune, batch=64, train_samples=4000, min_epochs=1)
_, info = train_student(x, y, 10, Preprocess(), load_device("cpu-small"), cfg)
est = info["memory_plan"]["estimate"]
print(json.dumps({"planned": est["fixed_bytes"] + 64 * est["per_item_bytes"], "probe":
    info["memory_plan"]["measured_peak_bytes"], "peak": info["peak_training_bytes"],
    "trainable": info["trainable_params"], "params": info["params"], "seconds": info["train_seconds"]}))
"""


def lc(*args: str) -> dict:
    """Run the labelcast CLI (the installed console script's module) and return its JSON report."""
    p = subprocess.run([sys.executable, "-m", "labelcast", *args, "--json"], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"labelcast {' '.join(args)} failed ({p.returncode}): {p.stderr[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def setup(scenario: str, work: Path, log) -> dict:
    """Store, teacher, keys and the store's backbone for ``scenario`` (kept between runs)."""
    from labelcast.codec.keys import generate_keypair
    from labelcast.datasets.sources import load_labelled
    from labelcast.sender.pretrain import PretrainConfig, backbone_path, pretrain
    from labelcast.sender.reference import build_store
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    work.mkdir(parents=True, exist_ok=True)
    ref = work / "ref"
    if not (ref / "manifest.lcm").exists():
        build_store(f"builtin:{scenario}", ref)
    x, y, names = load_labelled(f"builtin:{scenario}:train")
    tpath = work / "teacher.onnx"
    if not tpath.exists():
        train_and_export(x, y, names, tpath, TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    info = {"pretrain_seconds": None}
    if not backbone_path(ref, "cnn-small").exists():
        t = time.time()
        res = pretrain(ref, cfg=PretrainConfig())
        info = {"pretrain_seconds": round(time.time() - t, 1), "pretrain": res}
        log(f"{scenario}: backbone pretrained in {info['pretrain_seconds']} s ({res['pseudo_classes']} pseudo-classes)")
    return {"ref": ref, "teacher": Teacher(tpath), **info}


def accuracy_runs(scenario: str, work: Path, log, fresh: bool = False, runs: dict | None = None) -> list[dict]:
    from labelcast.codec.manifest import ReferenceStore
    from labelcast.datasets.sources import load_labelled
    from labelcast.receiver.serve import load_classifier
    from labelcast.sender.send import LinkSettings, SendConfig, send

    runs = runs or RUNS
    env = setup(scenario, work, log)
    store = ReferenceStore(env["ref"])
    logits = env["teacher"].logits(np.asarray(store.items))
    xt, yt, names = load_labelled(f"builtin:{scenario}:test")
    rows = []
    for budget in BUDGETS:
        box = work / f"outbox-{budget}"
        rep = send(
            env["teacher"],
            store,
            work / "keys" / "sender.key",
            box,
            SendConfig(LinkSettings(budget=budget), force=True),
            logits=logits,
        )
        for name, (init, finetune, samples, augment) in runs.items():
            done = work / f"row-{budget}-{name}.json"  # a finished run is kept: a rerun adds what is missing
            if done.exists() and not fresh:
                rows.append(json.loads(done.read_text()))
                continue
            out, state = work / f"student-{budget}-{name}", work / f"state-{budget}-{name}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
            args = ["receive", str(box / "frames"), "--reference", str(env["ref"]), "--trust"]
            args += [str(work / "keys" / "sender.pub"), "--out", str(out), "--state", str(state)]
            args += ["--init", init, "--finetune", finetune]
            args += ["--train-samples", str(samples)] if samples else []
            args += ["--augment", augment] if augment else []
            r = lc(*args)
            model = load_classifier(out / "student.onnx")
            known = model.classes or names
            acc = float((np.array(known)[model.predict(xt)] == np.array(names)[yt]).mean())
            tr = r["training"]
            rows.append(
                {
                    "scenario": scenario,
                    "framed_bytes": rep["framed_bytes"],
                    "items": rep["selected_items"],
                    "run": name,
                    "init": "backbone" if tr.get("init") else "random",
                    "finetune": tr["finetune"],
                    "trainable": tr["trainable_params"],
                    "steps": tr["steps"],
                    "accuracy": round(acc, 4),
                    "train_s": tr["train_seconds"],
                    "peak_train_mb": round(tr["peak_training_bytes"] / 2**20, 1),
                }
            )
            done.write_text(json.dumps(rows[-1]))
            log(f"{scenario} {rep['framed_bytes']} B {name}: {acc:.4f} in {tr['train_seconds']} s")
    for r in rows:  # against random weights at the same bytes
        base = next((b for b in rows if b["framed_bytes"] == r["framed_bytes"] and b["run"] == "random"), None)
        if base is None:
            continue
        r["d_acc_pts"] = round(100 * (r["accuracy"] - base["accuracy"]), 2)
        r["x_time"] = round(r["train_s"] / base["train_s"], 3)
        r["x_memory"] = round(r["peak_train_mb"] / max(base["peak_train_mb"], 1e-9), 3)
    return rows


def memory_runs(log) -> list[dict]:
    rows = []
    for arch in ("cnn-small", "resnet8", "mobilenet"):
        for finetune in ("all", "last:1", "head"):
            p = subprocess.run([sys.executable, "-c", MEMORY_CHILD, arch, finetune], capture_output=True, text=True)
            if p.returncode:
                raise RuntimeError(p.stderr[-800:])
            m = json.loads(p.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "arch": arch,
                    "finetune": finetune,
                    "trainable": m["trainable"],
                    "params": m["params"],
                    "planned_mb": round(m["planned"] / 2**20, 1),
                    "probe_mb": round(m["probe"] / 2**20, 1),
                    "peak_mb": round(m["peak"] / 2**20, 1),
                }
            )
            log(f"memory {arch} {finetune}: planned {rows[-1]['planned_mb']} MB, peak {rows[-1]['peak_mb']} MB")
    for r in rows:
        base = next(b for b in rows if b["arch"] == r["arch"] and b["finetune"] == "all")
        r["x_planned"] = round(r["planned_mb"] / base["planned_mb"], 3)
        r["x_peak"] = round(r["peak_mb"] / max(base["peak_mb"], 1e-9), 3)
    return rows


def render(result: dict) -> dict[str, str]:
    """docs/devices.md's two tables from a JSON this wrote: accuracy per initialisation and fine-tuning on the
    same payload (Δ points against random weights), and training memory per student and fine-tuning."""
    acc = result["accuracy"]
    cells = list(dict.fromkeys((r["scenario"], r["framed_bytes"], r["items"]) for r in acc))  # as run
    runs = ["random", "random-half", "pretrained", "pretrained-half", "last:1", "head"]
    heads = [
        "random",
        "random, ½ schedule",
        "pretrained (`--init auto`)",
        "pretrained, ½ schedule",
        "`last:1`",
        "`head`",
    ]
    lines = [
        "| scenario | framed B | items | " + " | ".join(heads) + " | train s: random / pretrained / pretrained ½ |"
    ]
    lines.append("|" + "---|" * (len(heads) + 4))
    for sc, fb, k in cells:
        by = {r["run"]: r for r in acc if (r["scenario"], r["framed_bytes"]) == (sc, fb)}
        row = [sc, f"{fb:,}", f"{k:,}"]
        for name in runs:
            r = by.get(name)
            if r is None:
                row.append("")
            elif name == "random":
                row.append(f"{r['accuracy']:.3f}")
            else:
                row.append(f"{r['accuracy']:.3f} ({r['d_acc_pts']:+.1f})".replace("-", "−"))
        t = [by[n]["train_s"] for n in ("random", "pretrained", "pretrained-half") if n in by]
        ratio = f" ({t[2] / t[0]:.2f}×)" if len(t) == 3 else ""
        row.append(" / ".join(f"{v:.0f}" for v in t) + ratio)
        lines.append("| " + " | ".join(row) + " |")
    mem = md_grid(
        result.get("memory", []),
        [
            ("student", "arch"),
            ("fine-tuned", lambda r: f"`{r['finetune']}`"),
            ("trainable / all parameters", lambda r: f"{r['trainable']:,} / {r['params']:,}"),
            ("planned", lambda r: f"{r['planned_mb']:.1f} MB"),
            ("measured peak", lambda r: f"{r['peak_mb']:.1f} MB"),
            ("× `all`", lambda r: f"{r['x_peak']:.2f}"),
        ],
    )
    return {"device:accuracy": "\n".join(lines), "device:memory": mem}


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/devices.md")
    ap.add_argument("--scenarios", nargs="+", default=["fashion", "digits"])
    ap.add_argument("--work", default="out/bench/device")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="rerun every run (default: keep finished ones)")
    ap.add_argument("--runs", nargs="+", choices=[*RUNS, *EXTRA_RUNS], default=list(RUNS), help="default: no extras")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    runs = {k: {**RUNS, **EXTRA_RUNS}[k] for k in a.runs}
    result: dict = {"command": " ".join(sys.argv), "machine": machine(), "budgets": BUDGETS, "runs": runs}
    if not a.skip_memory:
        mem = memory_runs(log)
        result["memory"] = mem
        cols = ["arch", "finetune", "trainable", "params", "planned_mb", "x_planned", "probe_mb", "peak_mb"]
        table(mem, [*cols, "x_peak"], "peak training memory at batch 64 (cpu-small, one process each)")
    rows = []
    for s in a.scenarios:
        rows += accuracy_runs(s, Path(a.work) / s, log, a.fresh, runs)
        result["accuracy"] = rows
        write_json(a.json, result)
    cols = ["scenario", "framed_bytes", "items", "run", "finetune", "trainable", "steps", "accuracy", "d_acc_pts"]
    table(rows, [*cols, "train_s", "x_time", "peak_train_mb", "x_memory"], "student per run, same payload")
    write_json(a.json, result)


if __name__ == "__main__":
    main()
