"""``labelcast reference build``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import emit


@click.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Reference store folder to write.")
@click.option("--size", type=click.IntRange(8, 1024), default=None, help="Pixels per side of stored items.")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="1 grey or 3 RGB.")
@click.option(
    "--clusters",
    type=click.IntRange(0, 1 << 20),
    default=0,
    show_default=True,
    help="Group items into K content clusters, stored cluster by cluster (0: keep the source's groups). "
    "With `send --strategy random-keyed` labels then cost ~1.3 bits and positions nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def build(source: str, out: str, size: int | None, channels: str | None, clusters: int, as_json: bool) -> None:
    """Turn SOURCE (builtin:NAME, folder:PATH, npy:PATH) into a reference store with its manifest.

    Interrupted builds resume where they stopped when rerun with the same options.
    """
    from ...datasets.sources import SourceError, open_pool
    from ..reference import BuildConfig, build_store

    try:
        n = open_pool(source, size, int(channels) if channels else None).n
        with bar(n, "build", "item") as tick:
            info = build_store(
                source, out, BuildConfig(size, int(channels) if channels else None, clusters=clusters), progress=tick
            )
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="SOURCE") from None
    emit(info, as_json, [f"reference store {out}: {info['items']} items {info['item_shape']}, root {info['root']}"])
