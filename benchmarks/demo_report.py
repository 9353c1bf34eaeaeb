"""The demo's figures in README.md and docs/results.md, from one committed run of ``labelcast demo``.

    python benchmarks/demo_report.py --json docs/results/demo-fashion.json   # run the demo (the machine idle)
    python benchmarks/demo_report.py --render docs/results/demo-fashion.json  # only rewrite the two blocks

The run is ``labelcast demo --scenario fashion`` exactly (the default path, seed 0); its report is kept as it
was written, less the work folder. ``make docs`` renders README's table and results.md's paragraph from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import splice_blocks, write_json  # noqa: E402

STAGES = (
    ("teacher_train", "teacher training"),
    ("receive", "receive"),
    ("send", "send"),
    ("reference_build", "reference build"),
)


def _facts(r: dict) -> dict:
    sec = r["section_bytes"]
    held = r.get("held_back") or {}
    return {
        "pairs": r["selected_items"],
        "payload": r["payload_bytes"],
        "bits": 8 * sec["labels"] / r["selected_items"],
        "index": sec["index"],
        "names": sec.get("names"),
        "hints": sec.get("hints"),
        "trained": r["training"]["items"],
        "held": held.get("items", 0),
        "agree": held.get("accuracy"),
        "stages": ", ".join(f"{name} {r['stage_seconds'][k]:.0f} s" for k, name in STAGES if k in r["stage_seconds"]),
        "strategy": r["strategy"] + (" with soft labels" if r["soft_labels"] else ""),
    }


def render(r: dict) -> dict[str, str]:
    """README's demo table and results.md's demo paragraph from a demo report."""
    f = _facts(r)
    names = f" and the ten class names ({f['names']} B)" if f["names"] else ""
    held = (
        f"; every 10th item is held back for the device's A/B check ({f['held']:,} items, a {f['hints']} B hint)"
        if f["held"]
        else ""
    )
    readme = "\n".join(
        [
            "| | |",
            "|---|---|",
            f"| payload (signed, coded) | {f['payload']:,} B for {f['pairs']:,} (item, label) pairs{names} — labels "
            f"{f['bits']:.2f} bits each, positions {f['index']} B in all (`{f['strategy']}`, chosen by `auto`){held} |",
            f"| link | {r['frames']} `{r['link']}` frames ({r['parity_frames']} parity; "
            f"~{r['link_seconds']:.0f} s on the link), through a simulated link that drops, duplicates and "
            f"corrupts: {r['frames_arrived']} arrived, "
            f"{r['frames_dropped_by_crc']} dropped by CRC |",
            f"| teacher / student accuracy | {r['teacher_accuracy']:.4f} / {r['student_accuracy']:.4f} (student = "
            f"{r['student_over_teacher']:.3f} × teacher, trained on {f['trained']:,} labels"
            + (f"; it agrees with the teacher on {f['agree']:.3f} of the held-back items" if f["agree"] else "")
            + ") |",
            f"| main job | {r['seconds']:.0f} s on {r['machine']['cpus']} CPU cores ({f['stages']}), peak RSS "
            f"{r['peak_rss_mb'] / 1024:.2f} GB |",
        ]
    )
    auto = r.get("auto") or {}
    near = (
        f"`auto` finds the pool {'far from' if auto.get('far') else 'near'} the teacher's domain (confidence shift "
        f"{auto['shift']:.3f} {'>' if auto.get('far') else '<'} {auto['threshold']}) and "
        if "shift" in auto
        else ""
    )
    results = (
        f"One run (`docs/results/demo-fashion.json`): {near}sends `{f['strategy']}` labels — "
        f"**{f['pairs']:,} (item, label) pairs in a {f['payload']:,}-byte payload** (index {f['index']} B, labels "
        f"{r['section_bytes']['labels']:,} B: {f['bits']:.2f} bits per label), {r['frames']} `{r['link']}` frames "
        f"(~{r['link_seconds']:.0f} s on the link). The device trains on {f['trained']:,} of them and holds back "
        f"{f['held']:,}. Teacher {r['teacher_accuracy']:.4f}, student **{r['student_accuracy']:.4f} "
        f"({r['student_over_teacher']:.3f}×)** on Fashion-MNIST test"
        + (f"; the student agrees with the teacher on {f['agree']:.3f} of the held-back items" if f["agree"] else "")
        + f". Peak RSS {r['peak_rss_mb'] / 1024:.2f} GB. Time: {r['seconds']:.0f} s on {r['machine']['cpus']} cores "
        f"({f['stages']})."
    )
    return {"demo:table": readme, "demo:run": results}


def splice(doc: str, blocks: dict[str, str]) -> str:
    """Each block this document holds, rewritten (README holds the table, results.md the paragraph)."""
    return splice_blocks(doc, blocks, every=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="run the demo and write its report here")
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite the blocks from it")
    ap.add_argument("--workdir", default="out/demo-report")
    a = ap.parse_args()
    if not a.render:
        from labelcast.demo import run_demo

        r = run_demo("fashion", a.workdir)
        r.pop("workdir", None)
        r["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        r["command"] = "labelcast demo --scenario fashion"
        write_json(a.json, r)
        a.render = a.json
    r = json.loads(Path(a.render).read_text())
    blocks = render(r)
    for doc in ("README.md", "docs/results.md"):
        p = Path(doc)
        p.write_text(splice(p.read_text(), blocks))
    print(blocks["demo:table"])


if __name__ == "__main__":
    main()
