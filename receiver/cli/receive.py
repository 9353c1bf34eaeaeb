"""``labelcast receive``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..._progress import bar
from ...cli import emit
from ...codec.errors import LabelcastError


def _student(arch, train_samples, init, finetune, augment, precision, accelerator):
    """A StudentConfig from the options given (None: the defaults and the payload's hints)."""
    from ..train import StudentConfig

    given = {
        k: v
        for k, v in dict(
            arch=arch,
            train_samples=train_samples,
            init=init,
            finetune=finetune,
            augment=augment,
            precision=precision,
            accelerator=accelerator,
        ).items()
        if v is not None
    }
    return StudentConfig(**given) if given else None


def _watch_lines(res: dict, inbox: str) -> list[str]:
    active = res["slots"]["active"].get("slot") or "none"
    return [
        f"watched {inbox}: {res['processed']} payload(s) trained ({res['promoted']} promoted, "
        f"{res['kept_aside']} kept aside), {res['refused']} refused, {res['retrying']} to retry",
        f"active model: {active}; stopped: {res['stopped']}",
    ]


def _receive_lines(rep: dict, dry_run: bool) -> list[str]:
    lines = [
        f"payload {rep['sequence']} from key {rep['key_id']}: verified, {rep['selected_items']} items, "
        f"{rep['classes']} classes (format v{rep['format_version']})",
        f"class counts {rep['class_counts']}",
    ]
    if dry_run and rep["would_train"].get("modality") == "text":
        w = rep["would_train"]
        lines += [
            f"would train the text student {w['arch']} ({w['params']:,} parameters) on {w['items']} items: "
            f"{w['epochs']} epochs × batch {w['batch']} = {w['steps']} steps on {w['device']}",
            f"memory plan: ~{w['memory_plan']['estimated_bytes'] >> 20} MiB of the profile's "
            f"{w['memory_plan']['budget_bytes'] >> 20} MiB",
        ]
    elif dry_run:
        w = rep["would_train"]
        mp = w["memory_plan"]
        lines += [
            f"would train {w['arch']} ({w['trainable_params']:,} of {w['params']:,} parameters, "
            f"finetune {w['finetune']}) on {w['items']} items with {w['labels']} labels",
            f"{w['epochs']} epochs × batch {w['batch']} = {w['steps']} steps on {w['device']}, {w['precision']}",
            f"memory plan: ~{mp['fixed_bytes'] + w['batch'] * mp['per_item_bytes'] >> 20} MiB of the profile's "
            f"{mp['budget_bytes'] >> 20} MiB (largest batch that fits: {mp['max_batch']})",
        ]
        sp = w.get("semi") or {}
        if sp.get("runs"):
            lines.append(
                f"then a semi-supervised round over {sp['pool_items']:,} store items "
                f"(~{sp['estimated_bytes'] >> 20} MiB before its training)"
            )
    else:
        tr = rep["training"]
        lines.append(
            f"trained {tr['arch']} for {tr['epochs']} epochs (batch {tr['batch']}) in {tr['train_seconds']} s "
            f"on {tr['device']} → {rep['student']}"
        )
        if tr.get("raised_to_floor"):
            lines.append(
                f"--train-samples {tr['train_samples_requested']} was raised to the floor of {tr['epoch_floor']} "
                f"epochs ({tr['samples_seen']} images seen)"
            )
        semi = rep.get("semi") or {}
        if semi.get("ran"):
            lines.append(
                f"semi-supervised round: {semi['kept']:,} of {semi['pool_items']:,} pool items pseudo-labelled "
                f"({semi.get('field_items', 0):,} of them field captures), "
                f"{semi['seconds']} s; held-back accuracy {semi['held_back_round1']} → {semi['held_back_round2']}"
            )
        elif semi:
            lines.append(f"semi-supervised round: off ({semi['why']})")
    return lines


@click.command()
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(exists=True))
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
    help="Folder for student.onnx and the report (not with --watch; not needed with --dry-run).",
)
@click.option(
    "--state",
    "state_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Replay state and event log (default: $LABELCAST_STATE_DIR, else the user's state folder).",
)
@click.option(
    "--arch",
    "--student",
    "arch",
    default=None,
    help="Student: cnn-small (default), cnn-w8, cnn-w4, resnet8, resnet18-narrow, mobilenet, mobilenet-half "
    "(`labelcast profiles show DEVICE --students`), or your own pkg.module:factory; on a text store fasttext "
    "(default), fasttext-small or textcnn; on a vector store mlp (default) or mlp-small.",
)
@click.option(
    "--train-samples",
    type=click.IntRange(1, None),
    default=None,
    help="Images seen in training (default 100000), with a floor of 7 passes over the training set (5 on text): "
    "a smaller number is raised to the floor, and the report says so (training.raised_to_floor).",
)
@click.option(
    "--init",
    default="auto",
    show_default=True,
    help="Start from: auto (the store's backbone for the student's arch when present), none (random weights), "
    "or a backbone .safetensors file (`labelcast student pretrain`).",
)
@click.option("--finetune", default=None, help="all, head, or last:N (the last N blocks and the head).")
@click.option(
    "--augment", type=click.Choice(["crop", "roll", "none"]), default=None, help="Augmentation (default crop)."
)
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default=None, help="Default: the profile's."
)
@click.option("--accelerator", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Default: auto.")
@click.option("--hard", is_flag=True, help="Train on hard labels even if soft labels came.")
@click.option(
    "--field",
    "field_source",
    default=None,
    help="The device's own unlabelled captures (any source form of the store's kind: images, text or vectors): "
    "the student's outputs are corrected to their class mix (EM re-estimation of the prior; docs/field.md).",
)
@click.option("--no-prior-adapt", is_flag=True, help="With --field: keep the student's outputs as trained.")
@click.option(
    "--semi",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="A second, semi-supervised round over the unlabelled store (label propagation; docs/devices.md). "
    "auto: the payload's hint, else on for few labels per class where propagation agrees with the student.",
)
@click.option(
    "--no-semi-field",
    is_flag=True,
    help="With --field and a semi-supervised round: pseudo-label store items only, not the captures as well.",
)
@click.option("--dry-run", is_flag=True, help="Verify and decode only; report what would be trained.")
@click.option("--resume", is_flag=True, help="Continue an interrupted training from its checkpoint.")
@click.option(
    "--receipts",
    "receipts_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Write signed receipts for the ground here, one .lcr file per return message (with --device-key).",
)
@click.option(
    "--device-key",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="This device's private key (`labelcast keygen --role device`): opens payloads sealed to it and signs "
    "its receipts.",
)
@click.option(
    "--link",
    default="iridium-sbd-mt",
    show_default=True,
    help="Link profile whose [return] section sizes the receipts (message bytes, bytes per hour, NAK delay).",
)
@click.option(
    "--seal-receipts",
    is_flag=True,
    help="Seal the receipts to the trusted sender key (one --trust key): a 16-byte tag instead of the signature, "
    "so a status receipt fits a 51-B LoRaWAN DR0 uplink; the ground ingests them with --key.",
)
@click.option(
    "--nak-after",
    type=click.FloatRange(0, None),
    default=None,
    help="With --watch: report a payload still incomplete after this many seconds (default: the link's).",
)
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
    init,
    finetune,
    augment,
    precision,
    accelerator,
    hard,
    field_source,
    no_prior_adapt,
    semi,
    no_semi_field,
    dry_run,
    resume,
    receipts_dir,
    device_key,
    link,
    seal_receipts,
    nak_after,
    as_json,
) -> None:
    """Verify INPUT (frames folder or payload file), then train and export a student.

    With --watch INBOX there is no INPUT: the device runs unattended on an inbox (docs/field.md)."""
    from ...codec.keys import TrustSet
    from ...profiles import ProfileError, load_device

    try:
        load_device(device)
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--device") from None
    try:
        ts = TrustSet.from_files(trust, revoked)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--revoked") from None
    ts.with_device(device_key)  # opens payloads sealed to this device (and signs its receipts)
    student = _student(arch, train_samples, None, finetune, augment, precision, accelerator)
    cfg = _receive_config(device, arch, student, hard, init, field_source, not no_prior_adapt, semi)
    cfg = replace(cfg, semi_field=not no_semi_field)
    reporter = _reporter(receipts_dir, device_key, link, nak_after, state_dir, ts if seal_receipts else None)
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
            reporter=reporter,
        )
        emit(res, as_json, _watch_lines(res, watch_dir))
        return
    if not input_path or not (out or dry_run):
        raise click.UsageError("give INPUT (a frames folder or payload file) and --out DIR, or --watch INBOX")
    rep = _receive_once(input_path, reference, ts, out, cfg, state_dir, dry_run, resume, reporter)
    emit(rep, as_json, _receive_lines(rep, dry_run))


def _receive_config(device: str, arch, student, hard: bool, init: str, field, prior_adapt: bool, semi: str = "auto"):
    """The ReceiveConfig the options describe (an unknown --arch or a missing --init file is a bad option)."""
    from ..receive import ReceiveConfig
    from ..students import ARCHS
    from ..text_models import TEXT_ARCHS

    if arch and arch not in ARCHS and arch not in TEXT_ARCHS and ":" not in arch:
        raise click.BadParameter(
            f"choose one of {', '.join([*ARCHS, *TEXT_ARCHS])}, or pkg.module:factory", param_hint="--arch"
        )
    if init not in ("auto", "none") and not Path(init).is_file():
        raise click.BadParameter(f"{init} is not a file (give auto, none or a .safetensors path)", param_hint="--init")
    return ReceiveConfig(
        device=device,
        student=student,
        use_soft=not hard,
        backbone=init,
        field=field,
        prior_adapt=prior_adapt,
        semi=semi,
    )


def _receive_once(input_path, reference, ts, out, cfg, state_dir, dry_run, resume, reporter) -> dict:
    """One payload, with a progress bar; its receipts written when asked (a refusal's too)."""
    from ..receive import receive as do_receive

    try:
        with bar(None, "train", "step") as tick:
            rep = do_receive(
                input_path, reference, ts, out, cfg, state_dir=state_dir, dry_run=dry_run, resume=resume, progress=tick
            )
    except ValueError as e:  # --student or --finetune names what does not load or apply: the typing
        raise click.UsageError(str(e)) from None
    except LabelcastError as e:  # the ground hears of a refusal too; the error still ends the command
        if reporter is not None:
            _report_refused(reporter, input_path, e)
        raise
    if reporter is not None and not dry_run:
        rep["receipts"] = [str(f) for f in _report_received(reporter, rep, state_dir, cfg.field, reference)]
    return rep


def _reporter(receipts_dir, device_key, link: str, nak_after, state_dir, seal_to=None):
    """The device's receipt writer for --receipts/--device-key (None without them); ``seal_to``: the trust set
    whose one key the receipts are sealed to."""
    if not receipts_dir:
        if seal_to is not None:
            raise click.UsageError("--seal-receipts goes with --receipts DIR")
        return None
    if not device_key:
        raise click.UsageError("--receipts DIR needs --device-key FILE (the receipts are signed with it)")
    from dataclasses import replace

    from ...profiles import ProfileError, load_link
    from ..receipts import Reporter
    from ..state import default_state_dir

    try:
        ret = load_link(link).return_link
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--link") from None
    if nak_after is not None:
        ret = replace(ret, nak_after_s=nak_after)
    ground = None
    if seal_to is not None:
        if len(seal_to.keys) != 1:
            raise click.UsageError(f"--seal-receipts seals to one sender key; --trust gives {len(seal_to.keys)}")
        ground = next(iter(seal_to.keys.values()))
    return Reporter(receipts_dir, device_key, state_dir or default_state_dir(), ret, seal_to=ground)


def _report_received(reporter, rep: dict, state_dir, field=None, reference=None) -> list:
    """A one-shot receive's receipts: accepted, trained, the chain head (and the field sketch, with --field)."""
    from ...codec.receipts import Event
    from ..chain import Chains
    from ..receipts import payload_events
    from ..state import default_state_dir

    kid = bytes.fromhex(rep["key_id"])
    head = Chains(state_dir or default_state_dir()).head_info(kid)
    pid = bytes.fromhex(rep["payload_id"])
    reporter.add([Event("store", digest=bytes.fromhex(rep["reference_root"])[:8])])
    reporter.add(payload_events(pid, rep, None, head, kid))
    if field is not None:
        from ...codec.manifest import ReferenceStore
        from ..receipts import field_event

        store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
        e = field_event(state_dir or default_state_dir(), store, field)
        if e is not None:
            reporter.add([e])
    return reporter.flush()


def _report_refused(reporter, input_path, e) -> None:
    """A refused payload's receipt, when its bytes could be read (an incomplete one is not refused)."""
    import hashlib

    from ..receipts import refused_event
    from ..receive import read_input

    try:
        data, _ = read_input(input_path)
    except LabelcastError:
        return
    reporter.add([refused_event(hashlib.sha256(data).digest()[:4], e, retryable=False)])
    reporter.flush()
