"""``labelcast teacher train|inspect|calibrate``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.option(
    "--data", required=True, help="Labelled source: builtin:NAME:train or folder:PATH (a subfolder per class)."
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="ONNX file to write.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Training epochs.")
@click.option("--width", type=click.IntRange(4, 512), default=None, help="Channels of the first block.")
@click.option("--preprocess", "preset", default="unit", show_default=True, help="Preset: unit, fashion, imagenet.")
@click.option("--size", type=click.IntRange(8, 1024), default=None, help="Input size (folder data).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def train(data, out, epochs, width, preset, size, seed, as_json) -> None:
    """Train the built-in teacher CNN on labelled DATA and export it to ONNX."""
    import dataclasses
    import math
    import time

    from ...codec.preprocess import PRESETS
    from ...datasets.sources import SourceError, load_labelled
    from ..teacher import TeacherConfig, train_and_export

    if preset not in PRESETS:
        raise click.BadParameter(f"choose one of {', '.join(PRESETS)}", param_hint="--preprocess")
    try:
        x, y, names = load_labelled(data, size=size)
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    pp, c = PRESETS[preset], x.shape[3]
    mean, std = (pp.mean, pp.std) if len(pp.mean) == c else (pp.mean[:1] * c, pp.std[:1] * c)
    pp = dataclasses.replace(pp, size=x.shape[1], channels=c, mean=mean, std=std)
    cfg = TeacherConfig(seed=seed, preprocess=pp)
    cfg.epochs = epochs or cfg.epochs
    cfg.width = width or cfg.width
    t = time.time()
    with bar(cfg.epochs * math.ceil(len(x) / cfg.batch), "teacher", "step") as tick:
        train_and_export(x, y, names, out, cfg, tick)
    res = {"teacher": out, "items": int(len(x)), "classes": names, "seconds": round(time.time() - t, 2)}
    emit(res, as_json, [f"teacher {out}: trained on {len(x)} items, {len(names)} classes in {res['seconds']} s"])


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(model: str, as_json: bool) -> None:
    """Show a teacher's input, classes and preprocessing."""
    import dataclasses

    from ..teacher import Teacher

    t = Teacher(model)
    res = {
        "model": model,
        "input": t.session.get_inputs()[0].shape,
        "classes": t.num_classes,
        "class_names": t.classes,
        "preprocess": dataclasses.asdict(t.preprocess),
        "train_confidence": t.confidence,
    }
    emit(res, as_json)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data",
    required=True,
    help="Images of the teacher's own domain (its training or validation data): npy:PATH, folder:PATH, builtin:NAME.",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write here (default: MODEL in place).")
@click.option("--preprocess", "preset", default=None, help="Preset if MODEL carries no labelcast metadata.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def calibrate(model: str, data: str, out: str | None, preset: str | None, as_json: bool) -> None:
    """Store MODEL's median confidence on its own domain, for `send --strategy auto`."""
    import numpy as np

    from ...datasets.sources import SourceError, open_pool
    from ..teacher import calibrate as do_calibrate

    try:
        pool = open_pool(data)
        # at most 10,000 images, spread over the whole source (folders come class by class)
        pick = np.unique(np.linspace(0, pool.n - 1, min(pool.n, 10_000)).astype(np.int64)) if pool.n else []
        x = np.concatenate([pool.read(int(i), int(i) + 1)[0] for i in pick]) if len(pick) else np.empty((0, 1, 1, 1))
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    try:
        conf = do_calibrate(model, x, out, preprocess=preset)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--data / --preprocess") from None
    res = {"model": out or model, "images": int(len(x)), "train_confidence": conf}
    emit(
        res,
        as_json,
        [f"{res['model']}: median confidence {conf:.4f} over {len(x)} images (labelcast.train_confidence)"],
    )
