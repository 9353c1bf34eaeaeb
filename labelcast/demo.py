"""``labelcast demo``: a built-in scenario end to end, as the two ends would run it.

keygen → reference build → teacher train → send → simulated link → receive → evaluate.
The sender and the receiver get separate folders and share only what a real
deployment shares: the reference store (copied before deployment), the public
key, and the frames that survive the link. Every step is the documented Python
API with its defaults — what a user gets without flags.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from ._progress import bar
from .cli import emit

__all__ = ["run_demo", "SCENARIO_SETTINGS"]

# What differs per scenario: the link, the budget (framed bytes), and the simulated link's faults.
# 2,700 B is ten Iridium SBD MT messages; the link retransmits, so the payload carries no parity.
SCENARIO_SETTINGS = {
    "fashion": {"link": "iridium-sbd-mt", "budget": 2_700, "duplicate": 0.02, "bit_errors": 0.02},
    "digits": {"link": "iridium-sbd-mt", "budget": 4_050, "duplicate": 0.02, "bit_errors": 0.02},
    "clipart": {"link": "iridium-sbd-mt", "budget": 2_700, "duplicate": 0.02, "bit_errors": 0.02},
    # text: WordNet glosses taught through GCIDE definitions and fortunes (docs/text.md); 15 SBD messages
    "wordnet": {"link": "iridium-sbd-mt", "budget": 4_050, "duplicate": 0.02, "bit_errors": 0.02},
}


def _stage(stages: dict, name: str, t: float) -> None:
    stages[name] = round(time.time() - t, 3)


def _ground(scenario: str, ground: Path, seed: int, fast: bool, stages: dict) -> dict:
    """The ground station: keys, reference store, teacher, payload."""
    from .codec.keys import generate_keypair
    from .datasets.sources import load_labelled
    from .sender.reference import build_store
    from .sender.selection import SelectConfig
    from .sender.send import LinkSettings, Recipe, SendConfig, send
    from .sender.teacher import TeacherConfig, train_and_export

    settings = SCENARIO_SETTINGS[scenario]
    t = time.time()
    generate_keypair(ground / "keys")
    _stage(stages, "keygen", t)
    t = time.time()
    with bar(None, "reference", "item") as tick:
        ref = build_store(f"builtin:{scenario}", ground / "reference", progress=tick)
    _stage(stages, "reference_build", t)
    t = time.time()
    x, y, names = load_labelled(f"builtin:{scenario}:train")
    tcfg = TeacherConfig(seed=seed, epochs=2 if fast else TeacherConfig.epochs)
    with bar(None, "teacher", "step") as tick:
        train_and_export(x, y, names, ground / "teacher.onnx", tcfg, tick)
    _stage(stages, "teacher_train", t)
    t = time.time()
    scfg = SendConfig(
        link=LinkSettings(settings["link"], settings["budget"]), recipe=Recipe(SelectConfig("auto", seed=seed))
    )
    with bar(ref["items"], "score", "item") as tick:
        sent = send(
            ground / "teacher.onnx",
            ground / "reference",
            ground / "keys" / "sender.key",
            ground / "outbox",
            scfg,
            progress=tick,
        )
    _stage(stages, "send", t)
    return {"ref": ref, "sent": sent}


def _link(scenario: str, ground: Path, device: Path, seed: int, stages: dict) -> int:
    """The simulated link of the scenario's profile (its delivery model, duplicates and bit errors)."""
    from .codec.framing import read_frames_dir
    from .profiles import load_link
    from .sender.delivery import DeliveryModel
    from .sender.linksim import LinkSim, simulate

    settings = SCENARIO_SETTINGS[scenario]
    t = time.time()
    frames = read_frames_dir(ground / "outbox" / "frames")
    sim = LinkSim.for_link(
        DeliveryModel.of(load_link(settings["link"])),
        duplicate=settings["duplicate"],
        bit_error_frames=settings["bit_errors"],
        seed=seed,
    )
    arrived = simulate(frames, sim)
    inbox = device / "inbox"
    inbox.mkdir(parents=True)
    for i, f in enumerate(arrived):  # as a modem hands frames over: corrupted ones too (the receiver drops them)
        (inbox / f"arrived-{i:06d}.lcf").write_bytes(f)
    _stage(stages, "link", t)
    return len(arrived)


def run_demo(scenario: str = "fashion", workdir: str | Path = "out/demo", *, seed: int = 0, fast: bool = False) -> dict:
    """Run the demo; returns the report. ``fast`` trims training for tests."""
    from .codec.keys import TrustSet
    from .datasets.sources import load_labelled
    from .receiver.evaluate import evaluate
    from .receiver.receive import ReceiveConfig, receive
    from .receiver.train import StudentConfig, peak_rss_mb

    wd = Path(workdir) / scenario
    if wd.exists():
        shutil.rmtree(wd)
    ground, device = wd / "ground", wd / "device"
    stages: dict[str, float] = {}
    t0 = time.time()
    g = _ground(scenario, ground, seed, fast, stages)
    shutil.copytree(ground / "reference", device / "reference")  # the device holds its own copy, made before
    shutil.copy(ground / "keys" / "sender.pub", device / "sender.pub")
    arrived = _link(scenario, ground, device, seed, stages)
    t = time.time()
    student = StudentConfig(seed=seed, train_samples=8000 if fast else StudentConfig.train_samples)
    with bar(None, "student", "step") as tick:
        got = receive(
            device / "inbox",
            device / "reference",
            TrustSet.from_files([device / "sender.pub"]),
            device / "model",
            ReceiveConfig(student=student),
            state_dir=device / "state",
            progress=tick,
        )
    _stage(stages, "receive", t)
    t = time.time()
    xt, yt, names = load_labelled(f"builtin:{scenario}:test")
    teacher_acc = evaluate(ground / "teacher.onnx", xt, yt, class_names=names)["accuracy"]
    student_acc = evaluate(device / "model" / "student.onnx", xt, yt, class_names=names)["accuracy"]
    _stage(stages, "evaluate", t)
    sent = g["sent"]
    report = {
        "scenario": scenario,
        "reference_items": sent["reference_items"],
        "selected_items": sent["selected_items"],
        "strategy": sent["strategy"],
        "soft_labels": sent["soft_labels"],
        "auto": sent["auto"],
        "payload_bytes": sent["payload_bytes"],
        "section_bytes": sent["section_bytes"],
        "frames": sent["frames"],
        "parity_frames": sent["parity_frames"],
        "frames_arrived": arrived,
        "frames_dropped_by_crc": got.get("frames_dropped", 0),
        "link": sent["link"],
        "link_seconds": sent["link_seconds"],
        "teacher_accuracy": teacher_acc,
        "student_accuracy": student_acc,
        "student_over_teacher": round(student_acc / teacher_acc, 4) if teacher_acc else None,
        "student_onnx_bytes": got["export"]["onnx_bytes"],
        "training": {k: got["training"][k] for k in ("arch", "items", "epochs", "batch", "device", "train_seconds")},
        # the items held back for the device's A/B check, and how often the student agrees with the teacher there
        "held_back": got.get("validation"),
        "seconds": round(time.time() - t0, 2),
        "stage_seconds": stages,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "workdir": str(wd),
    }
    (wd / "demo-report.json").write_text(json.dumps(report, indent=2))
    return report


def _lines(r: dict) -> list[str]:
    wd = Path(r["workdir"])
    auto = r["auto"]
    return [
        f"scenario {r['scenario']}: {r['selected_items']} of {r['reference_items']} reference items selected "
        f"({r['strategy']}{' + soft labels' if r['soft_labels'] else ''}"
        + (f", by auto: {'far' if auto['far'] else 'near'} pool)" if auto else ")"),
        f"payload {r['payload_bytes']} B in {r['frames']} frames ({r['parity_frames']} parity) over {r['link']} "
        f"(~{r['link_seconds']} s); {r['frames_arrived']} frames arrived, {r['frames_dropped_by_crc']} dropped by CRC",
        f"teacher accuracy {r['teacher_accuracy']:.4f}, student accuracy {r['student_accuracy']:.4f} "
        f"({r['student_over_teacher']:.3f}× teacher)",
        f"total {r['seconds']} s, peak RSS {r['peak_rss_mb']:.0f} MB; stages {r['stage_seconds']}",
        f"outputs: {wd}/demo-report.json, {wd}/ground/outbox/ (payload, frames, send-report.json), "
        f"{wd}/device/model/ (student.onnx, receive-report.json)",
        f"next: labelcast evaluate {wd}/device/model/student.onnx --data builtin:{r['scenario']}:test  ·  "
        f"labelcast link plan {wd}/ground/outbox/payload.lcst --link lora-eu868-dr0  ·  docs/results.md",
    ]


@click.command()
@click.option("--scenario", type=click.Choice(sorted(SCENARIO_SETTINGS)), default="fashion", show_default=True)
@click.option("--workdir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fast", is_flag=True, help="Trimmed training (for smoke tests; accuracy is lower).")
@click.option("--json", "as_json", is_flag=True, help="Last line: the report as one JSON object.")
def demo(scenario: str, workdir: str, seed: int, fast: bool, as_json: bool) -> None:
    """Run a built-in scenario end to end and print a report."""
    r = run_demo(scenario, workdir, seed=seed, fast=fast)
    emit(r, as_json, _lines(r))
