"""``labelcast demo``: the built-in scenario end to end, as the two ends would run it.

keygen → reference build → teacher train → send → simulated link → receive → evaluate.
The sender and the receiver get separate folders and share only what a real
deployment shares: the reference store (copied before deployment), the public
key, and the frames that survive the link.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click

from ._progress import bar
from .cli import emit

__all__ = ["run_demo"]

# The scenario's recipe: the budget keeps the payload ≤ 8 KiB on Iridium SBD MT.
DEFAULTS = {"link": "iridium-sbd-mt", "budget": 10_000, "clusters": 32, "loss": 0.10}


def run_demo(scenario: str = "fashion", workdir: str | Path = "out/demo", *, seed: int = 0, fast: bool = False) -> dict:
    """Run the demo; returns the report. ``fast`` trims training for tests."""
    from .codec.framing import read_frames_dir, write_frames
    from .codec.keys import TrustSet, generate_keypair
    from .datasets.sources import load_labelled
    from .receiver.evaluate import evaluate
    from .receiver.receive import ReceiveConfig, receive
    from .receiver.train import StudentConfig
    from .sender.linksim import LinkSim, simulate
    from .sender.reference import BuildConfig, build_store
    from .sender.selection import SelectConfig
    from .sender.send import SendConfig, send
    from .sender.teacher import TeacherConfig, train_and_export

    wd = Path(workdir) / scenario
    if wd.exists():
        shutil.rmtree(wd)
    ground, device = wd / "ground", wd / "device"
    stages: dict[str, float] = {}
    t0 = time.time()

    def stage(name: str, t: float) -> None:
        stages[name] = round(time.time() - t, 3)

    t = time.time()
    generate_keypair(ground / "keys")
    stage("keygen", t)
    t = time.time()
    with bar(None, "reference", "item") as tick:
        ref = build_store(
            f"builtin:{scenario}", ground / "reference", BuildConfig(clusters=DEFAULTS["clusters"]), progress=tick
        )
    # the device holds its own copy of the store (copied before deployment)
    shutil.copytree(ground / "reference", device / "reference")
    shutil.copy(ground / "keys" / "sender.pub", device / "sender.pub")
    stage("reference_build", t)
    t = time.time()
    x, y, names = load_labelled(f"builtin:{scenario}:train")
    tcfg = TeacherConfig(seed=seed, epochs=2 if fast else TeacherConfig.epochs)
    with bar(None, "teacher", "step") as tick:
        train_and_export(x, y, names, ground / "teacher.onnx", tcfg, tick)
    stage("teacher_train", t)
    t = time.time()
    scfg = SendConfig(
        link=DEFAULTS["link"],
        budget=DEFAULTS["budget"],
        select=SelectConfig("auto", seed=seed),  # the selection benchmark's winner, near or far pool
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
    stage("send", t)
    t = time.time()
    frames = read_frames_dir(ground / "outbox" / "frames")
    arrived = simulate(frames, LinkSim(loss=DEFAULTS["loss"], duplicate=0.02, bit_error_frames=0.02, seed=seed))
    write_frames([f for f in arrived if _crc_ok(f)], device / "inbox")
    # corrupted frames are written too, as a modem would hand them over; the receiver drops them
    for i, f in enumerate(a for a in arrived if not _crc_ok(a)):
        (device / "inbox" / f"corrupt-{i:04d}.lcf").write_bytes(f)
    stage("link", t)
    t = time.time()
    student = StudentConfig(seed=seed)
    if fast:
        student.train_samples = 8000
    rcfg = ReceiveConfig(device="cpu-small", student=student)
    with bar(None, "student", "step") as tick:
        got = receive(
            device / "inbox",
            device / "reference",
            TrustSet.from_files([device / "sender.pub"]),
            device / "model",
            rcfg,
            state_dir=device / "state",
            progress=tick,
        )
    stage("receive", t)
    t = time.time()
    xt, yt, _ = load_labelled(f"builtin:{scenario}:test")
    teacher_acc = evaluate(ground / "teacher.onnx", xt, yt)["accuracy"]
    student_acc = evaluate(device / "model" / "student.onnx", xt, yt)["accuracy"]
    stage("evaluate", t)
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
        "frames_arrived": len(arrived),
        "frames_dropped_by_crc": got.get("frames_dropped", 0),
        "link": sent["link"],
        "link_seconds": sent["link_seconds"],
        "teacher_accuracy": teacher_acc,
        "student_accuracy": student_acc,
        "student_over_teacher": round(student_acc / teacher_acc, 4) if teacher_acc else None,
        "student_onnx_bytes": got["export"]["onnx_bytes"],
        "seconds": round(time.time() - t0, 2),
        "stage_seconds": stages,
        "workdir": str(wd),
    }
    (wd / "demo-report.json").write_text(json.dumps(report, indent=2))
    return report


def _crc_ok(frame: bytes) -> bool:
    from .codec.errors import FrameError
    from .codec.framing import parse_frame

    try:
        parse_frame(frame)
    except FrameError:
        return False
    return True


@click.command()
@click.option("--scenario", type=click.Choice(["fashion", "digits"]), default="fashion", show_default=True)
@click.option("--workdir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fast", is_flag=True, help="Trimmed training (for smoke tests; accuracy is lower).")
@click.option("--json", "as_json", is_flag=True, help="Last line: the report as one JSON object.")
def demo(scenario: str, workdir: str, seed: int, fast: bool, as_json: bool) -> None:
    """Run a built-in scenario end to end and print a report."""
    r = run_demo(scenario, workdir, seed=seed, fast=fast)
    lines = [
        f"scenario {r['scenario']}: {r['selected_items']} of {r['reference_items']} reference items "
        f"selected ({r['strategy']}{' + soft labels' if r['soft_labels'] else ''}, by auto: "
        f"{'far' if r['auto'] and r['auto']['far'] else 'near'} pool)",
        f"payload {r['payload_bytes']} B in {r['frames']} frames over {r['link']} (~{r['link_seconds']} s); "
        f"{r['frames_arrived']} frames arrived",
        f"teacher accuracy {r['teacher_accuracy']:.4f}, student accuracy {r['student_accuracy']:.4f} "
        f"({r['student_over_teacher']:.3f}× teacher)",
        f"total {r['seconds']} s; stages {r['stage_seconds']}",
    ]
    emit(r, as_json, lines)
