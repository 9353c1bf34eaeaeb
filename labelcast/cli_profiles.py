"""``labelcast profiles list|show``."""

from __future__ import annotations

import dataclasses

import click

from .cli import emit
from .profiles import ProfileError, list_profiles, load_device, load_link


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List the built-in link and device profiles."""
    res = {"links": list_profiles("links"), "devices": list_profiles("devices")}
    emit(res, as_json, [f"links:   {', '.join(res['links'])}", f"devices: {', '.join(res['devices'])}"])


@click.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(name: str, as_json: bool) -> None:
    """Show one profile (a link or a device) by NAME or .toml path."""
    try:
        prof = load_link(name)
    except ProfileError:
        try:
            prof = load_device(name)
        except ProfileError:
            raise click.BadParameter(
                f"unknown profile {name!r}; links: {', '.join(list_profiles('links'))}; "
                f"devices: {', '.join(list_profiles('devices'))}",
                param_hint="NAME",
            ) from None
    emit(dataclasses.asdict(prof), as_json)
