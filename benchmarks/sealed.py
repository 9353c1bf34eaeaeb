"""Signed vs sealed in one Iridium SBD MT message (270 framed bytes) on the built-in fashion scenario.

For each seed, ``send`` makes the default payload twice — signed (Ed25519, 64 B) and sealed to one device
(ChaCha20-Poly1305, 16 B tag) — and the device's default ``receive`` trains a student on each; accuracy on
the Fashion-MNIST test split, against the teacher.

    python benchmarks/sealed.py [--work out/bench/sealed] [--seeds 3] [--json docs/results/sealed.json]

``make docs`` renders docs/results.md's table and docs/security.md's paragraph from the JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from _common import splice_blocks  # noqa: E402

from labelcast.codec.keys import TrustSet, generate_keypair  # noqa: E402
from labelcast.datasets.sources import load_labelled  # noqa: E402
from labelcast.receiver.evaluate import evaluate  # noqa: E402
from labelcast.receiver.receive import ReceiveConfig, receive  # noqa: E402
from labelcast.sender.reference import build_store  # noqa: E402
from labelcast.sender.selection import SelectConfig  # noqa: E402
from labelcast.sender.send import LinkSettings, Recipe, SendConfig, send  # noqa: E402
from labelcast.sender.teacher import TeacherConfig, train_and_export  # noqa: E402


def setup(work: Path) -> None:
    """Keys, the store and the teacher, made once (reused by later runs)."""
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")
        generate_keypair(work / "keys", role="device")
    if not (work / "ref" / "manifest.lcm").exists():
        build_store("builtin:fashion", work / "ref")
    if not (work / "teacher.onnx").exists():
        x, y, names = load_labelled("builtin:fashion:train")
        train_and_export(x, y, names, work / "teacher.onnx", TeacherConfig(seed=0))


def one(work: Path, seed: int, sealed: bool, xt, yt, names) -> dict:
    tag = f"{'sealed' if sealed else 'signed'}-{seed}"
    out = work / tag
    shutil.rmtree(out, ignore_errors=True)
    cfg = SendConfig(
        LinkSettings("iridium-sbd-mt", 270),
        Recipe(SelectConfig("auto", seed=seed)),
        seal_to=str(work / "keys" / "device.pub") if sealed else None,
        sequence=1,
        force=True,
    )
    rep = send(work / "teacher.onnx", work / "ref", work / "keys" / "sender.key", out / "outbox", cfg)
    trust = TrustSet.from_files([work / "keys" / "sender.pub"]).with_device(work / "keys" / "device.key")
    t = time.time()
    got = receive(out / "outbox" / "frames", work / "ref", trust, out / "model", ReceiveConfig(), state_dir=out / "st")
    acc = evaluate(out / "model" / "student.onnx", xt, yt, class_names=names)["accuracy"]
    return {
        "mode": "sealed" if sealed else "signed",
        "seed": seed,
        "payload_bytes": rep["payload_bytes"],
        "framed_bytes": rep["framed_bytes"],
        "auth_bytes": rep["auth_bytes"],
        "header_bytes": rep["section_bytes"]["header"],
        "labels": rep["selected_items"],
        "trained_on": got["training"]["items"],
        "student_accuracy": acc,
        "receive_seconds": round(time.time() - t, 1),
    }


def render(result: dict) -> dict[str, str]:
    """docs/results.md's table and docs/security.md's paragraph from a JSON this wrote."""
    rows, teacher, s = result["rows"], result["teacher"], result["summary"]
    by = {(r["mode"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| seed | signed: labels | signed: student | sealed: labels | sealed: student |", "|---|---|---|---|---|"]
    for seed in seeds:
        a, b = by[("signed", seed)], by[("sealed", seed)]
        lines.append(
            f"| {seed} | {a['labels']:,} | {a['student_accuracy']:.4f} | "
            f"{b['labels']:,} | {b['student_accuracy']:.4f} |"
        )
    sm, ss = s["signed"]["student_mean"], s["sealed"]["student_mean"]
    lines.append(
        f"| mean | {s['signed']['labels_mean']:,.0f} | {sm:.4f} ({sm / teacher:.3f}×) | "
        f"{s['sealed']['labels_mean']:,.0f} ({result['ratio']:.2f}×) | {ss:.4f} ({ss / teacher:.3f}×) |"
    )
    saved = by[("signed", seeds[0])]["auth_bytes"] - by[("sealed", seeds[0])]["auth_bytes"]
    table = "\n".join(lines) + (
        f"\n\nThe {saved} bytes the tag saves carry {100 * (result['ratio'] - 1):.0f} % more labels, for "
        f"{100 * (ss - sm):+.1f} points of student accuracy (teacher {teacher:.4f})."
    )
    para = (
        f"Measured on `fashion` in one Iridium SBD MT message (270 framed bytes; `python benchmarks/sealed.py`, "
        f"{len(seeds)} seeds, `send`'s defaults, the device's default `receive`, JSON in `docs/results/sealed.json`): "
        f"the signed payload carries {' / '.join(str(by[('signed', x)]['labels']) for x in seeds)} labels and the "
        f"sealed one {' / '.join(str(by[('sealed', x)]['labels']) for x in seeds)}, **{result['ratio']:.2f}× as "
        f"many**. The {saved} bytes the tag saves carry labels and their positions. The student gets {sm:.4f} "
        f"signed and {ss:.4f} sealed (mean; the teacher: {teacher:.4f}), that is {sm / teacher:.3f}× and "
        f"{ss / teacher:.3f}× the teacher (`docs/results.md`)."
    )
    return {"sealed:table": table, "sealed:measured": para}


def splice(doc: str, blocks: dict[str, str]) -> str:
    """Each block this document holds, rewritten (results.md holds the table, security.md the paragraph)."""
    return splice_blocks(doc, blocks, every=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="out/bench/sealed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--json", default="docs/results/sealed.json")
    a = ap.parse_args(argv)
    work = Path(a.work)
    setup(work)
    xt, yt, names = load_labelled("builtin:fashion:test")
    teacher = evaluate(work / "teacher.onnx", xt, yt, class_names=names)["accuracy"]
    rows = [one(work, s, m, xt, yt, names) for s in range(a.seeds) for m in (False, True)]
    print(f"teacher accuracy {teacher:.4f}")
    head = ("mode", 7), ("seed", 4), ("payload B", 9), ("framed B", 8), ("auth B", 6), ("labels", 6), ("student", 8)
    print(" ".join(f"{h:>{w}}" for h, w in head), f"{'×teacher':>8}")
    for r in rows:
        print(f"{r['mode']:>7} {r['seed']:>4} {r['payload_bytes']:>9} {r['framed_bytes']:>8} {r['auth_bytes']:>6} "
              f"{r['labels']:>6} {r['student_accuracy']:>8.4f} {r['student_accuracy'] / teacher:>8.3f}")  # fmt: skip
    summary = {}
    for m in ("signed", "sealed"):
        rs = [r for r in rows if r["mode"] == m]
        summary[m] = {
            "labels_mean": sum(r["labels"] for r in rs) / len(rs),
            "student_mean": sum(r["student_accuracy"] for r in rs) / len(rs),
        }
    ratio = summary["sealed"]["labels_mean"] / summary["signed"]["labels_mean"]
    print(f"sealed / signed labels: {ratio:.3f}; student {summary['signed']['student_mean']:.4f} → "
          f"{summary['sealed']['student_mean']:.4f} (teacher {teacher:.4f})")  # fmt: skip
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(
        json.dumps({"teacher": teacher, "rows": rows, "summary": summary, "ratio": ratio}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
