"""``labelcast link plan|simulate``."""

from __future__ import annotations

from pathlib import Path

import click

from ...cli import emit

_DELIVERY = click.option(
    "--delivery",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.999,
    show_default=True,
    help="Target probability that the payload rebuilds (lossy links; parity follows).",
)


def _link(name: str):
    from ...profiles import ProfileError, load_link

    try:
        return load_link(name)
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--link") from None


def _payload_length(target: str | None, nbytes: int | None) -> int:
    """A payload's length from a payload file, a folder of its frames, or --bytes."""
    from ...codec.errors import LabelcastError
    from ...codec.framing import Reassembler, read_frames_dir
    from ...codec.payload import MAGIC

    if (target is None) == (nbytes is None):
        raise click.UsageError("give a payload file, a frames folder, or --bytes N (one of them)")
    if nbytes is not None:
        return nbytes
    p = Path(target)
    if p.is_dir():
        r = Reassembler()
        for f in read_frames_dir(p):
            r.add(f)
        ids = r.payload_ids()
        if len(ids) != 1:
            raise click.BadParameter(
                f"{p} holds frames of {len(ids)} payloads; plan one at a time", param_hint="PAYLOAD"
            )
        return r.status(ids[0])["payload_bytes"]
    try:
        head = p.read_bytes()[:4]
    except OSError as e:
        raise click.BadParameter(f"cannot read {p}: {e.strerror}", param_hint="PAYLOAD") from None
    if head != MAGIC:
        raise click.BadParameter(
            f"{p} is not a labelcast payload (no LCST magic); give payload.lcst, a frames folder or --bytes N",
            param_hint="PAYLOAD",
        )
    try:
        return p.stat().st_size
    except (OSError, LabelcastError) as e:  # pragma: no cover - stat after a successful read
        raise click.BadParameter(str(e), param_hint="PAYLOAD") from None


@click.command()
@click.argument("payload", required=False, type=click.Path(exists=True))
@click.option("--bytes", "nbytes", type=click.IntRange(1, 64 << 20), default=None, help="Plan a payload of N bytes.")
@click.option("--link", required=True, help="Link profile name or .toml path.")
@_DELIVERY
@click.option(
    "--overhead", type=click.IntRange(0, 1000), default=None, help="Fixed parity per 100 data frames instead."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plan(payload: str | None, nbytes: int | None, link: str, delivery: float, overhead: int | None, as_json) -> None:
    """Frames, parity, delivery probability and time on the link for a payload.

    PAYLOAD is a payload file (payload.lcst) or a folder of its frames; or give --bytes N."""
    from ..link import link_plan as do_plan

    lk = _link(link)
    res = do_plan(_payload_length(payload, nbytes), lk, overhead, delivery)
    mode = _payload_mode(payload)
    if mode:
        res["mode"] = mode
    lines = [
        (f"{mode}: " if mode else "")
        + f"{res['payload_bytes']} B on {res['link']} ({res['delivery_model']}, loss {res['loss_rate']:.0%}): "
        f"{res['data_frames']} data + {res['parity_frames']} parity = {res['frames']} frames of {lk.frame_bytes} B",
        f"P(rebuilt) {res['success_probability']}, ~{res['link_seconds']} s on the link"
        + (f" ({res['expected_transmissions']} transmissions with retries)" if lk.retransmits else "")
        + f", {res['passes']} pass(es)",
    ]
    if res["alternatives"]:
        lines.append("other delivery targets:")
        lines += [
            f"  {a['target']}: {a['parity_frames']} parity, {a['framed_bytes']} B, P {a['success_probability']}, "
            f"{a['link_seconds']} s"
            for a in res["alternatives"]
        ]
    emit(res, as_json, lines)


def _payload_mode(payload: str | None) -> str | None:
    """A payload file's authentication mode and what it costs (None for frames or --bytes)."""
    if payload is None or Path(payload).is_dir():
        return None
    head = Path(payload).read_bytes()[:5]
    return "sealed (16-B tag)" if len(head) == 5 and head[4] == 3 else "signed (64-B signature)"


def _payload_tag(frames: list[bytes]) -> str:
    """The first 16 hex digits of the payload id the frames name (the most frequent, if mixed)."""
    from collections import Counter

    from ...codec.errors import LabelcastError
    from ...codec.framing import parse_frame

    ids = Counter()
    for f in frames:
        try:
            ids[parse_frame(f).payload_id.hex()[:16]] += 1
        except LabelcastError:
            continue
    return ids.most_common(1)[0][0] if ids else "unknown"


@click.command()
@click.argument("frames_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the frames that arrive.")
@click.option("--link", "link_name", default=None, help="Take loss, early ends and ARQ from this link profile.")
@click.option("--loss", type=click.FloatRange(0, 1, max_open=True), default=None, help="Frame loss (default 0.05).")
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--bit-errors",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of frames with a flipped bit.",
)
@click.option(
    "--runs",
    type=click.IntRange(0, 10_000_000),
    default=10_000,
    show_default=True,
    help="Transmissions simulated to measure the delivery probability (0: none).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate(frames_dir, out, link_name, loss, duplicate, bit_errors, runs, seed, as_json) -> None:
    """Pass FRAMES_DIR through a simulated link into OUT and measure how often it rebuilds.

    Loss, early ends and retransmission come from --link (or --loss); --runs transmissions of the
    same frame layout give the empirical delivery probability beside the predicted one."""
    from ...codec.framing import Reassembler, read_frames_dir
    from ...codec.storage import atomic_write
    from ..delivery import DeliveryModel, success_probability
    from ..linksim import LinkSim, delivery_trials
    from ..linksim import simulate as sim

    frames = read_frames_dir(frames_dir)
    if not frames:
        raise click.BadParameter(f"no .lcf frames in {frames_dir}", param_hint="FRAMES_DIR")
    model = DeliveryModel.of(_link(link_name)) if link_name else DeliveryModel(False, 0.05)
    if loss is not None:
        model = DeliveryModel(model.arq, loss, model.cut_rate, model.cut_max)
    cfg = LinkSim.for_link(model, duplicate=duplicate, bit_error_frames=bit_errors, seed=seed)
    got = sim(frames, cfg)
    # arrival order; raw bytes, a corrupted frame is stored as received. Names carry the payload id, so a
    # second payload simulated into the same folder sits beside the first instead of overwriting it
    tag = _payload_tag(frames)
    start = len(list(Path(out).glob(f"arrived-{tag}-*.lcf"))) if Path(out).is_dir() else 0
    for i, f in enumerate(got):
        atomic_write(Path(out, f"arrived-{tag}-{start + i:06d}.lcf"), f, what=f"frame in {out}")
    r = Reassembler()
    for f in got:
        r.add(f)
    ids = r.payload_ids()
    res: dict = {"sent": len(frames), "arrived": len(got), "out": out, "rebuilt": bool(ids) and r.complete(ids[0])}
    if runs and ids:
        lay = r.layout(ids[0])
        trials = delivery_trials(lay, model, runs, seed)
        res["delivery"] = {"predicted": round(success_probability(lay, model), 6), "simulated": trials}
    lines = [f"{res['arrived']} of {res['sent']} frames arrived in {out}; rebuilt: {res['rebuilt']}"]
    if "delivery" in res:
        d = res["delivery"]
        lines.append(
            f"delivery over {runs} simulated transmissions: {d['simulated']['rate']:.4f} "
            f"(predicted {d['predicted']:.4f})"
        )
    emit(res, as_json, lines)
