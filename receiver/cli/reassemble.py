"""``labelcast reassemble``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ...cli import emit


@click.command()
@click.argument("frames", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Payload file to write.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reassemble(frames: str, out: str, as_json: bool) -> None:
    """Rebuild a payload from FRAMES (a folder of frame files, or '-' for a frame stream on stdin)."""
    import os

    from ...codec.errors import StorageError
    from ...codec.framing import Reassembler, frames_from_stream, read_frames_dir

    if frames == "-":
        items = frames_from_stream(sys.stdin.buffer.read())
    elif Path(frames).is_dir():
        items = read_frames_dir(frames)
    else:
        raise click.BadParameter("give a folder of .lcf frame files or '-' for stdin", param_hint="FRAMES")
    r = Reassembler()
    for f in items:
        r.add(f)
    data = r.payload()
    tmp = out + ".tmp"
    try:
        Path(tmp).write_bytes(data)
        os.replace(tmp, out)
    except OSError as e:
        raise StorageError(f"cannot write {out}: {e.strerror}") from e
    res = {
        "payload": out,
        "payload_bytes": len(data),
        "frames_read": len(items),
        "dropped": r.dropped,
        "duplicates": r.duplicates,
    }
    emit(res, as_json)
