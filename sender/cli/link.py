"""``labelcast link plan|simulate``."""

from __future__ import annotations

from pathlib import Path

import click

from ...cli import emit


def _link(name: str):
    from ...profiles import ProfileError, load_link

    try:
        return load_link(name)
    except ProfileError as e:
        raise click.BadParameter(str(e), param_hint="--link") from None


@click.command()
@click.argument("payload", type=click.Path(exists=True, dir_okay=False))
@click.option("--link", required=True, help="Link profile name or .toml path.")
@click.option(
    "--overhead", type=click.IntRange(0, 255), default=None, help="Parity frames per 100 (default: the link's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plan(payload: str, link: str, overhead: int | None, as_json: bool) -> None:
    """Frames, bytes, time on the link and success probability for PAYLOAD."""
    from ..link import plan as do_plan

    res = do_plan(Path(payload).stat().st_size, _link(link), overhead)
    emit(res, as_json)


@click.command()
@click.argument("frames_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the frames that arrive.")
@click.option("--loss", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--bit-errors",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of frames with a flipped bit.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def simulate(frames_dir, out, loss, duplicate, bit_errors, seed, as_json) -> None:
    """Pass FRAMES_DIR through a simulated link (loss, duplicates, reordering, bit errors) into OUT."""
    import os

    from ...codec.framing import read_frames_dir
    from ..linksim import LinkSim
    from ..linksim import simulate as sim

    frames = read_frames_dir(frames_dir)
    got = sim(frames, LinkSim(loss=loss, duplicate=duplicate, bit_error_frames=bit_errors, seed=seed))
    os.makedirs(out, exist_ok=True)
    for i, f in enumerate(got):  # arrival order; raw bytes, a corrupted frame is stored as received
        Path(out, f"arrived-{i:06d}.lcf").write_bytes(f)
    res = {"sent": len(frames), "arrived": len(got), "out": out}
    emit(res, as_json)
