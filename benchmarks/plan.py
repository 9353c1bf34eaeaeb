"""The planner against the device: predicted vs. measured accuracy of every candidate payload (issue #20).

    python benchmarks/plan.py [--scenario digits] [--budgets 1080,4050] [--json out/bench/plan.json]

For each framed budget (Iridium SBD MT), ``send`` runs on its default path with the sender's target
data (``--target builtin:SCENARIO:train``, so ``auto`` plans): the planner fits every candidate —
label payloads, distilled exemplars only (DM + DSA from the target), the target's own images only,
hybrids with 25/50/75/90 % of the bytes on distilled exemplars — and predicts
each one's accuracy by training the device's recipe (short schedule) on the ground, scored on its
validation slice. Then every candidate is sent on its own (``plan_only``), received by the real
``receive`` (full device recipe) and evaluated on the scenario's **test** split, which the planner
never sees. The table shows predicted vs. measured for each, which one the planner chose, and how
the choice ranks among the measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, write_json  # noqa: E402


def setup(work: Path, scenario: str):
    from labelcast.codec.keys import generate_keypair
    from labelcast.datasets.sources import load_labelled
    from labelcast.sender.reference import BuildConfig, build_store
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    if not (work / "ref" / "store.json").exists():
        build_store(f"builtin:{scenario}", work / "ref", BuildConfig(clusters=32))
    if not (work / "teacher.onnx").exists():
        x, y, names = load_labelled(f"builtin:{scenario}:train")
        train_and_export(x, y, names, work / "teacher.onnx", TeacherConfig())
    if not (work / "keys" / "sender.key").exists():
        generate_keypair(work / "keys")


def measure(work: Path, scenario: str, budget: int, only: str | None, tag: str) -> dict:
    from labelcast.codec.keys import TrustSet
    from labelcast.datasets.sources import load_labelled
    from labelcast.receiver.evaluate import evaluate
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.sender.plan import PlanConfig
    from labelcast.sender.send import LinkSettings, PlanSettings, SendConfig, send

    out = work / "runs" / f"{budget}-{tag}"
    cfg = SendConfig(
        LinkSettings(budget=budget),
        plan=PlanSettings(target=f"builtin:{scenario}:train", config=PlanConfig(only=only)),
        force=True,
    )
    rep = send(work / "teacher.onnx", work / "ref", work / "keys" / "sender.key", out / "outbox", cfg)
    trust = TrustSet.from_files([work / "keys" / "sender.pub"])
    receive(out / "outbox" / "frames", work / "ref", trust, out / "device", ReceiveConfig(), state_dir=out / "state")
    xt, yt, names = load_labelled(f"builtin:{scenario}:test")
    acc = evaluate(out / "device" / "student.onnx", xt, yt, class_names=names)["accuracy"]
    return {"report": rep, "measured": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="digits", choices=["digits", "fashion"])
    ap.add_argument("--budgets", default="1080,4050")  # 4 and 15 SBD frames: ~1 KiB and ~4 KiB framed
    ap.add_argument("--work", default="out/bench/plan")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    work = Path(a.work) / a.scenario
    work.mkdir(parents=True, exist_ok=True)
    setup(work, a.scenario)
    rows = []
    for budget in [int(b) for b in a.budgets.split(",")]:
        full = measure(work, a.scenario, budget, None, "auto")  # the default path: plans, sends its choice
        plan = full["report"]["plan"]
        print(f"budget {budget}: planner chose {plan['choice']!r}, measured {full['measured']:.4f}", flush=True)
        for i, c in enumerate(plan["candidates"]):
            if c["predicted_accuracy"] is None:
                continue
            got = full if c["name"] == plan["choice"] else measure(work, a.scenario, budget, c["name"], f"c{i}")
            rows.append({
                "budget": budget, "candidate": c["name"], "labels": c["labels"], "exemplars": c["exemplars"],
                "framed_bytes": c["framed_bytes"], "predicted": c["predicted_accuracy"],
                "measured": got["measured"], "chosen": c["name"] == plan["choice"],
            })  # fmt: skip
            print(rows[-1], flush=True)
        mine = [r for r in rows if r["budget"] == budget]
        ranked = sorted(mine, key=lambda r: -r["measured"])
        chosen = next(r for r in mine if r["chosen"])
        chosen["measured_rank"] = f"{ranked.index(chosen) + 1} of {len(ranked)}"
        chosen["gap_to_best"] = round(ranked[0]["measured"] - chosen["measured"], 4)
    cols = ["budget", "candidate", "labels", "exemplars", "framed_bytes", "predicted", "measured", "chosen"]
    title = f"{a.scenario}: the planner's candidates, predicted vs. device"
    table(rows, [*cols, "measured_rank", "gap_to_best"], title)
    write_json(a.json, {"scenario": a.scenario, "rows": rows})


if __name__ == "__main__":
    main()
