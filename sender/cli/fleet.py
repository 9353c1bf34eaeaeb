"""``labelcast fleet add|list|show|remove|report``, ``labelcast ingest`` and ``labelcast repair``."""

from __future__ import annotations

from pathlib import Path

import click

from ...cli import emit

LEDGER_HELP = "The fleet ledger (SQLite; default $LABELCAST_LEDGER, else ledger.sqlite in the user's data folder)."


def ledger_option(f):
    return click.option("--ledger", default=None, type=click.Path(dir_okay=False), help=LEDGER_HELP)(f)


def _open(path):
    from ..ledger import Ledger

    return Ledger(path)


def _dev(d) -> dict:
    """A device as JSON: its field sketch as hex, and whether it is drifting."""
    from dataclasses import asdict

    return {**asdict(d), "field_sketch": d.field_sketch.hex() if d.field_sketch else None, "drifting": d.drifting}


def _device_lines(d: dict) -> list[str]:
    head = f"head s{d['head_sequence']} {d['head_digest'][:16]}" if d.get("head_digest") else "head: none reported"
    acc = f", agreement {d['last_accuracy']:.3f}" if d.get("last_accuracy") is not None else ""
    seen = "never heard from" if d.get("last_seen") is None else f"last receipt at {d['last_seen']:.0f}"
    field = ""
    if d.get("field_sketch"):
        drift = d.get("field_drift")
        field = "; field sketch" + (f", DRIFTING ({drift:.2f} bits)" if d.get("drifting") else "")
    return [f"{d['name']}: {d['link']} / {d['device_profile']}, store {d['root'][:16]}; {head}{acc}; {seen}{field}"]


@click.command("add")
@click.argument("name")
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False), help="The device's device.pub.")
@click.option("--reference", required=True, type=click.Path(exists=True, file_okay=False), help="Its reference store.")
@click.option("--link", default="iridium-sbd-mt", show_default=True, help="Link profile to the device.")
@click.option("--device-profile", default="cpu-small", show_default=True, help="The device's profile.")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add(name, key, reference, link, device_profile, ledger, as_json) -> None:
    """Register a device by its receipt key (`keygen --role device`); its store root comes from REFERENCE."""

    with _open(ledger) as lg:
        d = _dev(lg.add_device(name, key, reference, link, device_profile))
    emit(d, as_json, [f"registered {name} (key {d['key_id']})", *_device_lines(d)])


@click.command("list")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(ledger, as_json) -> None:
    """Every registered device: its head, last receipt and last accuracy."""
    with _open(ledger) as lg:
        devs = [_dev(d) for d in lg.devices()]
    emit({"devices": devs}, as_json, [line for d in devs for line in _device_lines(d)] or ["no devices"])


@click.command("show")
@click.argument("name")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name, ledger, as_json) -> None:
    """One device: its state and every payload sent to it, with what it reported."""

    with _open(ledger) as lg:
        d = _dev(lg.device(name))
        d["deliveries"] = lg.deliveries(name)
    lines = _device_lines(d) + [
        f"  s{x['sequence']} {x['pid']}: {x['state']}"
        + (f", needs {sum(__import__('json').loads(x['needed']))} blocks" if x["state"] == "partial" else "")
        + (f", repaired with {x['repair_frames']} frames" if x["repair_frames"] else "")
        + (f", exit code {x['code']}" if x["state"] == "refused" else "")
        for x in d["deliveries"]
    ]
    emit(d, as_json, lines)


@click.command("remove")
@click.argument("name")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def remove(name, ledger, as_json) -> None:
    """Forget a device (its deliveries and receipts go with it; the payloads stay)."""
    with _open(ledger) as lg:
        lg.remove_device(name)
    emit({"removed": name}, as_json, [f"removed {name}"])


@click.command("report")
@click.option("--html", "html_out", required=True, type=click.Path(dir_okay=False), help="The page to write.")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def report(html_out, ledger, as_json) -> None:
    """One self-contained HTML page: every device, its head, last receipt, accuracy over rounds, what is pending."""
    from ..fleet_report import write_report

    with _open(ledger) as lg:
        res = write_report(lg, html_out)
    emit(res, as_json, [f"wrote {html_out}: {res['devices']} devices, {res['pending']} pending deliveries"])


@click.command()
@click.argument("receipts", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--key",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="The ground's sender.key: opens receipts sealed to it (`receive --seal-receipts`).",
)
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ingest(receipts, key, ledger, as_json) -> None:
    """Verify device receipts (.lcr files or folders of them) and update the fleet ledger."""
    from ...codec.keys import load_private_key
    from ..ledger import ingest_files

    with _open(ledger) as lg:
        res = ingest_files(lg, receipts, load_private_key(key) if key else None)
    lines = [f"ingested {res['ingested']}, refused {len(res['refused'])}, already seen {res['replays']}"]
    lines += [f"  refused {r['file']}: {r['error']}: {r['message']}" for r in res["refused"]]
    emit(res, as_json, lines)
    if res["refused"]:
        raise SystemExit(1)


@click.command()
@click.option("--to", "names", required=True, multiple=True, help="Device name (repeatable: one repair for a group).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the repair frames.")
@ledger_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def repair(names, out, ledger, as_json) -> None:
    """Frames for what the devices reported missing: fresh erasure-code blocks for the short stripes only."""
    from ..ledger import write_repair

    with _open(ledger) as lg:
        res = write_repair(lg, list(names), Path(out))
    lines = [f"{p['payload_id']}: {p['frames']} repair frames ({p['bytes']} B) in {out}" for p in res["payloads"]]
    emit(res, as_json, lines or [f"nothing to repair for {', '.join(names)}: no partial receipt pending"])
