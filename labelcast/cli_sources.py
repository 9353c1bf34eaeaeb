"""``labelcast sources``."""

from __future__ import annotations

import click

from .cli import emit


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sources(as_json: bool) -> None:
    """List the source forms every command takes, with one example each."""
    from .datasets.sources import FORMS, LABELLED_FORMS

    lines = ["Every command that takes a source (reference build, teacher train/calibrate, evaluate, send --target,"]
    lines.append("the benchmarks) takes any of these; labelled forms are sources of images too:")
    w = max(map(len, FORMS))
    lines += [f"  {form:<{w}}  {what}" for form, what in FORMS.items()]
    lines.append(f"labelled: {LABELLED_FORMS}")
    emit({"forms": FORMS, "labelled": LABELLED_FORMS}, as_json, lines)
