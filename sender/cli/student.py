"""``labelcast student pretrain``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="Reference store.")
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Backbone file to write (default REF/backbone-ARCH.safetensors: installed with the store).",
)
@click.option("--arch", default="cnn-small", show_default=True, help="The device's student (a built-in).")
@click.option(
    "--pseudo-classes",
    type=click.IntRange(0, 65536),
    default=128,
    show_default=True,
    help="Content clusters the student learns to tell apart (0: the store's own groups).",
)
@click.option("--max-items", type=click.IntRange(100, None), default=60_000, show_default=True)
@click.option("--train-samples", type=click.IntRange(1000, None), default=600_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pretrain(reference, out, arch, pseudo_classes, max_items, train_samples, seed, as_json) -> None:
    """Pretrain the device's student on the reference pool itself, without target labels."""
    from ...receiver.students import ARCHS
    from ..pretrain import PretrainConfig
    from ..pretrain import pretrain as do_pretrain

    if arch not in ARCHS:
        raise click.BadParameter(f"choose one of {', '.join(ARCHS)}", param_hint="--arch")
    cfg = PretrainConfig(arch, pseudo_classes, max_items, train_samples, seed)
    with bar(None, "pretrain", "step") as tick:
        res = do_pretrain(reference, out, cfg, progress=tick)
    emit(
        res,
        as_json,
        [
            f"backbone {res['backbone']}: {arch} pretrained on {res['items']} items, "
            f"{res['pseudo_classes']} pseudo-classes, {res['train_seconds']} s",
            f"sha256 {res['sha256']} (install it with the store; receive starts from it by default)",
        ],
    )
