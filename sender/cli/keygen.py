"""``labelcast keygen``."""

from __future__ import annotations

import click

from ...cli import emit
from ...codec.keys import generate_keypair, key_id, load_public_key


@click.command()
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Folder for sender.key / sender.pub."
)
@click.option("--force", is_flag=True, help="Replace existing keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keygen(out: str, force: bool, as_json: bool) -> None:
    """Make an Ed25519 signing key pair: OUT/sender.key (0600) and OUT/sender.pub."""
    priv, pub = generate_keypair(out, force=force)
    kid = key_id(load_public_key(pub)).hex()
    res = {"private_key": str(priv), "public_key": str(pub), "key_id": kid}
    emit(res, as_json, [f"wrote {priv} (keep it secret) and {pub} (copy it to the device)", f"key id {kid}"])
