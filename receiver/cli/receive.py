"""``labelcast receive``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.argument("input_path", metavar="INPUT", required=False, type=click.Path(exists=True))
@click.option(
    "--watch",
    "watch_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Run unattended on an inbox of frame files.",
)
@click.option(
    "--slots",
    "slots_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="A/B model slots (default STATE/slots).",
)
@click.option("--once", is_flag=True, help="With --watch: one pass over the inbox, then exit.")
@click.option("--reference", required=True, type=click.Path(file_okay=False), help="This device's reference store.")
@click.option(
    "--trust",
    "trust",
    required=True,
    multiple=True,
    type=click.Path(exists=True),
    help="Trusted public key file or folder (repeatable).",
)
@click.option("--revoked", multiple=True, help="Revoked key id (hex, repeatable).")
@click.option("--device", default="cpu-small", show_default=True, help="Device profile name or .toml path.")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for student.onnx and the report (not with --watch).",
)
@click.option(
    "--state", "state_dir", default=None, type=click.Path(file_okay=False), help="Replay-state folder (device-wide)."
)
@click.option("--arch", default=None, help="Student architecture (cnn-small, resnet8, resnet18-narrow).")
@click.option(
    "--train-samples", type=click.IntRange(1, None), default=None, help="Images seen in training (default 60000)."
)
@click.option("--hard", is_flag=True, help="Train on hard labels even if soft labels came.")
@click.option("--dry-run", is_flag=True, help="Verify and decode only; report what would be trained.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training from its checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def receive(
    input_path,
    watch_dir,
    slots_dir,
    once,
    reference,
    trust,
    revoked,
    device,
    out,
    state_dir,
    arch,
    train_samples,
    hard,
    dry_run,
    resume,
    as_json,
) -> None:
    """Verify INPUT (frames folder or payload file), then train and export a student."""

    from ...codec.keys import TrustSet
    from ...profiles import ProfileError, load_device
    from ..receive import ReceiveConfig
    from ..receive import receive as do_receive
    from ..train import StudentConfig

    try:
        load_device(device)
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None
    try:
        ts = TrustSet.from_files(trust, revoked)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--revoked") from None
    student = None
    if arch or train_samples:
        from ..students import ARCHS

        if arch and arch not in ARCHS:
            raise click.BadParameter(f"choose one of {', '.join(ARCHS)}", param_hint="--arch")
        student = StudentConfig(arch=arch or "cnn-small", train_samples=train_samples or StudentConfig().train_samples)
    cfg = ReceiveConfig(device=device, student=student, use_soft=not hard)
    if watch_dir:
        from ...codec.manifest import ReferenceStore
        from ..watch import WatchConfig, watch

        res = watch(
            watch_dir,
            ReferenceStore(reference),
            ts,
            cfg,
            WatchConfig(once=once),
            state_dir=state_dir,
            slots_dir=slots_dir,
        )
        emit(res, as_json)
        return
    if not input_path or not out:
        raise click.UsageError("give INPUT (a frames folder or payload file) and --out DIR, or --watch INBOX")
    with bar(None, "train", "step") as tick:
        rep = do_receive(
            input_path, reference, ts, out, cfg, state_dir=state_dir, dry_run=dry_run, resume=resume, progress=tick
        )
    lines = [
        f"payload {rep['sequence']} from key {rep['key_id']}: verified, {rep['selected_items']} items, "
        f"{rep['classes']} classes",
        f"class counts {rep['class_counts']}",
    ]
    if not dry_run:
        tr = rep["training"]
        lines.append(f"trained {tr['arch']} for {tr['epochs']} epochs in {tr['train_seconds']} s → {rep['student']}")
    emit(rep, as_json, lines)
