"""Text: student accuracy per framed byte on the built-in ``wordnet`` scenario (issue #22).

    python benchmarks/text.py [--seeds 3] [--budgets 270,1080,4050] [--json out/bench/text.json] [--plot FILE]

The device holds GCIDE definitions and fortunes (133k items); the task is WordNet noun glosses by
lexicographer file (10 classes). For each framed budget (Iridium SBD MT frames) and strategy, the real
``send`` (scores reused) and the real ``receive`` (verify, rebuild, train the default text student
``fasttext``, export ONNX) run; the student is scored on the 2,000 test glosses. Baseline in the
same run: the same framed bytes spent on the sender's own labelled glosses, compressed (the better of
zstd-19 and brotli-11, ``label<TAB>text`` lines, + a 64-byte signature), and the same student trained
on them.
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

STRATEGIES = {  # name → SelectConfig fields (keyed: the strategy's count per cluster, random items in keyed order)
    "random": {"strategy": "random"},
    "random-keyed": {"strategy": "random-keyed"},
    "auto": {"strategy": "auto"},
    "energy-high": {"strategy": "energy-high"},
    "margin": {"strategy": "margin"},
    "msp": {"strategy": "msp"},
    "msp-keyed": {"strategy": "msp", "keyed": True},
    "margin-keyed": {"strategy": "margin", "keyed": True},
    "margin-keyed-a0.5": {"strategy": "margin", "keyed": True, "alpha": 0.5},
    "margin-keyed-a1": {"strategy": "margin", "keyed": True, "alpha": 1.0},
    "random-keyed-a1": {"strategy": "random-keyed", "alpha": 1.0},
}


def setup(work: Path):
    from labelcast.codec.keys import generate_keypair
    from labelcast.datasets.sources import load_labelled
    from labelcast.sender.reference import build_store
    from labelcast.sender.scoring import score_store
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    ref = work / "ref"
    if not (ref / "store.json").exists():
        build_store("builtin:wordnet", ref)
    tpath = work / "teacher.onnx"
    if not tpath.exists():
        x, y, names = load_labelled("builtin:wordnet:train")
        train_and_export(x, y, names, tpath, TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
    from labelcast.codec.manifest import ReferenceStore

    store = ReferenceStore(ref)
    teacher = Teacher(tpath)
    lp = work / "logits.npy"
    if not lp.exists():
        np.save(lp, score_store(teacher, store))
    return store, teacher, np.load(lp)


def capacity(link: str, budget: int) -> int:
    """The largest payload whose framed size fits ``budget`` on ``link``."""
    from labelcast.profiles import load_link
    from labelcast.sender.budget import link_budget

    b = link_budget(load_link(link), budget)
    lo, hi = 0, budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if b.final_layout(mid).total_frames * b.frame_bytes <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def sentences_baseline(budget: int, link: str, seed: int, test) -> dict:
    """The sender's own labelled sentences, compressed into the same framed budget, trained on."""
    import brotli
    import zstandard

    from labelcast.codec.text import TextPreprocess
    from labelcast.datasets.sources import load_labelled
    from labelcast.profiles import load_device
    from labelcast.receiver.evaluate import evaluate
    from labelcast.receiver.export import export_onnx
    from labelcast.receiver.text_models import train_text_student
    from labelcast.receiver.train import StudentConfig

    x, y, names = load_labelled("builtin:wordnet:train")
    order = np.random.default_rng(seed).permutation(len(x))
    room = capacity(link, budget) - 64  # the signature

    def size(n: int) -> tuple[int, str]:
        blob = b"\n".join(b"%d\t%s" % (y[i], x[i]) for i in order[:n])
        z = len(zstandard.ZstdCompressor(level=19).compress(blob))
        br = len(brotli.compress(blob, quality=11))
        return (z, "zstd-19") if z <= br else (br, "brotli-11")

    lo, hi = 0, 4000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid)[0] <= room:
            lo = mid
        else:
            hi = mid - 1
    n = lo
    if n < 2 or len(set(y[order[:n]].tolist())) < 2:
        return {"items": n, "accuracy": 0.1, "codec": size(max(n, 1))[1], "note": "too few sentences to train"}
    model, _ = train_text_student(
        x[order[:n]], y[order[:n]], len(names), TextPreprocess().tokenizer, load_device("cpu-small"), StudentConfig()
    )
    with tempfile.TemporaryDirectory() as d:
        export_onnx(model, Path(d) / "s.onnx", TextPreprocess(), len(names), {"classes": names})
        acc = evaluate(Path(d) / "s.onnx", test[0], test[1], class_names=test[2])["accuracy"]
    return {"items": n, "accuracy": acc, "codec": size(n)[1]}


def run_one(work: Path, store, teacher, logits, budget: int, name: str, seed: int, link: str, test) -> dict:
    from labelcast.codec.keys import TrustSet
    from labelcast.receiver.evaluate import evaluate
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.sender.selection import SelectConfig
    from labelcast.sender.send import LinkSettings, Recipe, SendConfig, send

    out = work / "runs" / f"{name}-{budget}-{seed}"
    sel = SelectConfig(**STRATEGIES[name], seed=seed)
    cfg = SendConfig(LinkSettings(link, budget), Recipe(sel), force=True)
    rep = send(teacher, store, work / "keys" / "sender.key", out / "outbox", cfg, logits=logits)
    trust = TrustSet.from_files([work / "keys" / "sender.pub"])
    t = time.time()
    r = receive(out / "outbox" / "frames", store, trust, out / "device", ReceiveConfig(), state_dir=out / "state")
    acc = evaluate(out / "device" / "student.onnx", test[0], test[1], class_names=test[2])["accuracy"]
    return {
        "budget": budget,
        "method": name,
        "seed": seed,
        "chose": rep["strategy"] + (" +soft" if rep.get("soft_labels") else ""),
        "items": rep["selected_items"],
        "framed_bytes": rep["framed_bytes"],
        "accuracy": acc,
        "device_seconds": round(time.time() - t, 1),
        "validation": r.get("validation"),
    }


def plot(rows: list[dict], teacher_acc: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in sorted({r["method"] for r in rows}):
        pts = sorted((r["budget"], r["mean"]) for r in rows if r["method"] == m)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.axhline(teacher_acc, ls="--", c="k", lw=1, label="teacher")
    ax.axhline(0.9 * teacher_acc, ls=":", c="k", lw=1, label="0.9 × teacher")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("framed bytes (Iridium SBD MT)")
    ax.set_ylabel("student accuracy (WordNet test glosses)")
    ax.set_title("wordnet: labels for sentences the device holds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


TABLE_METHODS = ("random", "random-keyed", "auto", "sentences (compressed)")  # the rows docs/ show


def render(result: dict) -> str:
    """The wordnet table of docs/results.md and docs/text.md from a JSON this wrote."""

    def method(r: dict) -> str:
        return {"auto": "**auto (default)**", "sentences (compressed)": "sentences, compressed"}.get(
            r["method"], r["method"]
        )

    def acc(r: dict) -> str:
        s = f"{r['mean']:.3f} ± {r['std']:.3f}"
        return f"**{s}**" if r["method"] == "auto" else s

    rows = [r for r in result["rows"] if r["method"] in TABLE_METHODS]
    return md_grid(
        rows,
        [
            ("framed bytes", "budget"),
            ("method", method),
            ("sends", "chose"),
            ("items", "items"),
            ("accuracy (mean ± sd)", acc),
            ("× teacher", lambda r: f"{r['x_teacher']:.3f}"),
        ],
    )


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "text:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/text")
    ap.add_argument("--budgets", default="270,1080,4050")  # 1, 4 and 15 SBD frames (~256 B, 1 KiB, 4 KiB)
    ap.add_argument("--methods", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--link", default="iridium-sbd-mt")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/results.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast.datasets.sources import load_labelled
    from labelcast.receiver.evaluate import evaluate

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    store, teacher, logits = setup(work)
    test = load_labelled("builtin:wordnet:test")
    teacher_acc = evaluate(teacher.path, test[0], test[1], class_names=test[2])["accuracy"]
    print(f"teacher accuracy {teacher_acc:.4f}; pool {store.n} items", flush=True)
    runs = []
    budgets = [int(b) for b in a.budgets.split(",")]
    for budget in budgets:
        for seed in range(a.seeds):
            for name in a.methods.split(","):
                runs.append(run_one(work, store, teacher, logits, budget, name, seed, a.link, test))
                print(runs[-1], flush=True)
            base = sentences_baseline(budget, a.link, seed, test)
            runs.append({"budget": budget, "method": "sentences (compressed)", "seed": seed, **base})
            print(runs[-1], flush=True)
    rows = []
    for budget in budgets:
        for m in dict.fromkeys(r["method"] for r in runs):
            acc = [r["accuracy"] for r in runs if r["budget"] == budget and r["method"] == m]
            items = [r["items"] for r in runs if r["budget"] == budget and r["method"] == m]
            chose = next(r.get("chose") or r.get("codec") for r in runs if r["budget"] == budget and r["method"] == m)
            rows.append({
                "budget": budget, "method": m, "chose": chose, "items": int(np.mean(items)),
                "mean": round(float(np.mean(acc)), 4), "std": round(float(np.std(acc)), 4),
                "x_teacher": round(float(np.mean(acc)) / teacher_acc, 3),
            })  # fmt: skip
    table(rows, ["budget", "method", "chose", "items", "mean", "std", "x_teacher"], "wordnet: student accuracy")
    if a.plot:
        plot(rows, teacher_acc, a.plot)
    cmd = "python benchmarks/text.py " + " ".join(sys.argv[1:])
    write_json(a.json, {"command": cmd, "teacher_accuracy": teacher_acc, "pool": store.n, "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
