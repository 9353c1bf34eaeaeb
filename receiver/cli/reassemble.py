"""``labelcast reassemble``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ...cli import emit


@click.command()
@click.argument("frames", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Payload file to write.")
@click.option(
    "--payload-id",
    default=None,
    help="Rebuild this payload (its id in hex, or a unique prefix) when FRAMES mixes several.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reassemble(frames: str, out: str, payload_id: str | None, as_json: bool) -> None:
    """Rebuild a payload from FRAMES (a folder of frame files, or '-' for a frame stream on stdin)."""
    from ...codec.framing import Reassembler, frames_from_stream, read_frames_dir
    from ...codec.storage import atomic_write

    if frames == "-":
        items = frames_from_stream(sys.stdin.buffer.read())
    elif Path(frames).is_dir():
        items = read_frames_dir(frames)
    else:
        raise click.BadParameter("give a folder of .lcf frame files or '-' for stdin", param_hint="FRAMES")
    r = Reassembler()
    for f in items:
        r.add(f)
    pid = None
    if payload_id:
        hits = [q for q in r.payload_ids() if q.hex().startswith(payload_id.lower())]
        if len(hits) != 1:
            here = ", ".join(q.hex() for q in r.payload_ids()) or "none"
            raise click.BadParameter(
                f"{payload_id} matches {len(hits)} of the payloads in {frames} ({here})", param_hint="--payload-id"
            )
        pid = hits[0]
    data = r.payload(pid)
    atomic_write(out, data, what=f"payload {out}")
    res = {
        "payload": out,
        "payload_bytes": len(data),
        "frames_read": len(items),
        "dropped": r.dropped,
        "duplicates": r.duplicates,
    }
    emit(res, as_json)
