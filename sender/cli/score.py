"""``labelcast score``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.option("--teacher", required=True, type=click.Path(exists=True, dir_okay=False), help="Teacher ONNX file.")
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="Reference store.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for logits.f32.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, help="Existing Ray cluster address (default: start a local one).")
@click.option("--workers", type=click.IntRange(1, None), default=2, show_default=True, help="Ray workers.")
@click.option("--batch", type=click.IntRange(1, None), default=1024, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score(teacher, reference, out, engine, ray_address, workers, batch, as_json) -> None:
    """Score every reference item with the teacher into OUT/logits.f32 (N × classes, float32, memory-mapped)."""
    from ...codec.manifest import ReferenceStore
    from ..engines import score as run

    store = ReferenceStore(reference)
    with bar(store.n, "score", "item") as tick:
        logits, secs = run(
            engine, teacher, store, out, address=ray_address, workers=workers, batch=batch, progress=tick
        )
    res = {
        "engine": engine,
        "items": store.n,
        "classes": int(logits.shape[1]),
        "seconds": round(secs, 2),
        "items_per_second": round(store.n / secs),
        "logits": f"{out}/logits.f32",
    }
    emit(
        res, as_json, [f"scored {store.n} items in {res['seconds']} s ({res['items_per_second']}/s) → {res['logits']}"]
    )
