"""``labelcast keygen``."""

from __future__ import annotations

import click

from ...cli import emit
from ...codec.keys import KEY_ROLES, generate_keypair, key_id, load_public_key


@click.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder for ROLE.key / ROLE.pub.")
@click.option(
    "--role",
    type=click.Choice(KEY_ROLES),
    default="sender",
    show_default=True,
    help="sender: the ground's payload key; device: a device's receipt key (register its .pub with `fleet add`).",
)
@click.option("--force", is_flag=True, help="Replace existing keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keygen(out: str, role: str, force: bool, as_json: bool) -> None:
    """Make an Ed25519 key pair: OUT/ROLE.key (0600) and OUT/ROLE.pub."""
    priv, pub = generate_keypair(out, force=force, role=role)
    kid = key_id(load_public_key(pub)).hex()
    res = {"private_key": str(priv), "public_key": str(pub), "key_id": kid, "role": role}
    where = "copy it to the device" if role == "sender" else "register it on the ground: labelcast fleet add"
    emit(res, as_json, [f"wrote {priv} (keep it secret) and {pub} ({where})", f"key id {kid}"])
