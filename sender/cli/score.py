"""``labelcast score``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit
from .teacher import engine_options, teacher_options


@click.command()
@click.option("--teacher", required=True, type=click.Path(exists=True, dir_okay=False), help="Teacher ONNX file.")
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="Reference store.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for logits.f32.")
@engine_options("Scoring engine: this process, or Ray actors.")
@click.option("--shard", type=click.IntRange(1, None), default=1 << 16, show_default=True, help="Items per Ray task.")
@click.option("--batch", type=click.IntRange(1, None), default=1024, show_default=True)
@teacher_options("ONNX Runtime execution provider (Ray: one GPU per actor with cuda/tensorrt).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score(
    teacher,
    reference,
    out,
    engine,
    ray_address,
    workers,
    shard,
    batch,
    spec,
    input_name,
    output_name,
    provider,
    as_json,
):
    """Score every reference item with the teacher into OUT/logits.f32 (N × classes, float32).

    The file is memory-mapped on read; with --engine ray the scoring runs on a Ray cluster."""
    from ...codec.manifest import ReferenceStore
    from ..engines import RayRun
    from ..engines import score as run
    from .teacher import open_teacher

    store = ReferenceStore(reference)
    t = open_teacher(teacher, spec, input_name, output_name, provider)
    ray_run = RayRun()
    kw = {"address": ray_address, "workers": workers, "shard": shard, "run": ray_run} if engine == "ray" else {}
    with bar(store.n, "score", "item") as tick:
        logits, secs = run(engine, t, store, out, batch=batch, progress=tick, provider=provider, **kw)
    res = {
        "engine": engine,
        "items": store.n,
        "classes": int(logits.shape[1]),
        "seconds": round(secs, 2),
        "items_per_second": round(store.n / secs),
        "logits": f"{out}/logits.f32",
        **({"ray": dict(ray_run)} if engine == "ray" else {}),
    }
    emit(
        res, as_json, [f"scored {store.n} items in {res['seconds']} s ({res['items_per_second']}/s) → {res['logits']}"]
    )
