"""``labelcast field sketch``."""

from __future__ import annotations

import click

from ...cli import emit


@click.command()
@click.argument("source")
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="The device's store.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The sketch file (send --field reads it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sketch(source: str, reference: str, out: str, as_json: bool) -> None:
    """Sketch the device's unlabelled captures SOURCE over its reference store (for send --field)."""
    from ...codec.field import encode_sketch
    from ...codec.manifest import ReferenceStore
    from ..field import field_sketch

    store = ReferenceStore(reference)
    s = field_sketch(source, store, out)
    top = [int(g) for g in s.levels.argsort()[::-1][:5] if s.levels[g]]
    res = {
        "sketch": out,
        "bytes": len(encode_sketch(s)),
        "images": s.images,
        "groups": int(s.levels.size),
        "levels": s.levels.tolist(),
        "reference_root": store.root.hex(),
    }
    lines = [
        f"{out}: {res['bytes']} B, {s.images} images over {s.levels.size} groups; "
        f"most in groups {', '.join(map(str, top))} (levels {', '.join(str(int(s.levels[g])) for g in top)})"
    ]
    emit(res, as_json, lines)
