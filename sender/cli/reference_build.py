"""``labelcast reference build``."""

from __future__ import annotations

import click

from ..._progress import bar
from ...cli import InputError, emit


def _clusters(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter(
            "give auto, 0 (keep the source's order and folders) or a count K", param_hint="--clusters"
        ) from None
    if not 0 <= k <= 1 << 20:
        raise click.BadParameter("K must be 0..1,048,576", param_hint="--clusters")
    return k


@click.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Reference store folder to write.")
@click.option(
    "--size",
    default=None,
    help="Stored item size: S or HxW (e.g. 64, 48x64). Default: the source's own; 32 for folder: sources.",
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default=None,
    help="1 grey or 3 RGB. Default: the source's own; 3 for folder: sources.",
)
@click.option(
    "--fit",
    type=click.Choice(["crop", "squash", "pad"]),
    default="crop",
    show_default=True,
    help="How images reach --size: crop keeps the aspect ratio and cuts the centre; squash scales each side; "
    "pad letterboxes with black.",
)
@click.option(
    "--clusters",
    default="auto",
    show_default=True,
    help="Group items into content clusters (stored cluster by cluster): auto = round(√N/8) clusters unless the "
    "source's folders describe the content as well; 0 keeps the source's order and folders; K forces K clusters.",
)
@click.option(
    "--force", is_flag=True, help="Replace a finished store in OUT (devices holding it must get the new one)."
)
@click.option("--skip-bad", is_flag=True, help="Leave out unreadable image files (listed) instead of stopping.")
@click.option("--per-line", is_flag=True, help="A folder of .txt files: one item per line, not per file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def build(source, out, size, channels, fit, clusters, force, skip_bad, per_line, as_json) -> None:
    """Turn SOURCE (see `labelcast sources`) into a reference store with its manifest.

    Interrupted builds resume where they stopped when rerun with the same options.
    """
    from ...datasets.sources import SourceError, open_source
    from ..reference import BuildConfig, build_store

    k = _clusters(clusters)
    ch = int(channels) if channels else None
    cfg = BuildConfig(size, ch, clusters=k, fit=fit, force=force, skip_bad=skip_bad, per_line=per_line)
    try:
        n = open_source(source, size, ch, fit=fit, skip_bad=skip_bad, per_line=per_line).n
        with bar(n, "build", "item") as tick:
            info = build_store(source, out, cfg, progress=tick)
    except SourceError as e:
        raise click.BadParameter(str(e), param_hint="SOURCE") from None
    except (FileExistsError, ValueError) as e:
        raise InputError(str(e)) from None  # the input's fault, not the typing: no usage line
    what = (
        f"{info['items']} text items ({info['text_bytes']:,} bytes)"
        if info.get("modality") == "text"
        else (
            f"{info['items']} vectors of {info['item_shape'][0]} {info['dtype']}"
            if info.get("modality") == "vector"
            else f"{info['items']} items {'×'.join(map(str, info['item_shape']))}"
        )
    )
    lines = [f"reference store {out}: {what}, {info['groups']} groups ({info['grouping']}), root {info['root']}"]
    if info.get("replaced_root"):
        lines.append(f"replaced the store with root {info['replaced_root']}: copy the new one to every device")
    if info["skipped_files"]:
        lines.append(
            f"skipped {len(info['skipped_files'])} unreadable file(s): {', '.join(info['skipped_files'][:10])}"
        )
    emit(info, as_json, lines)
