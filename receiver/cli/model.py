"""``labelcast model status|promote|rollback`` and ``labelcast status`` for an operator on a console."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ...cli import emit


def _slots(state: str | None, slots: str | None, must_exist: bool = False):
    from ..slots import Slots
    from ..state import default_state_dir

    base = Path(state) if state else default_state_dir()
    if must_exist and not base.is_dir():
        raise click.BadParameter(f"{base} is not a device state folder (no such folder)", param_hint="--state")
    return Slots(slots or base / "slots"), base


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else "-"


def _slot_lines(st: dict) -> list[str]:
    lines = []
    for name in ("active", "previous", "candidate"):
        v = st[name]
        val = v.get("validation") or {}
        acc = f"validation {val['accuracy']:.3f}" if "accuracy" in val else "no validation slice"
        seq = f"sequence {v['sequence']}" if "sequence" in v else ""
        lines.append(f"  {name:9} {v.get('slot') or '-':28} {seq:14} {acc if v.get('slot') else ''}".rstrip())
    lines.append(f"  models kept: {len(st['models'])}")
    return lines


_state_opt = click.option("--state", default=None, type=click.Path(file_okay=False), help="Device state folder.")
_slots_opt = click.option("--slots", default=None, type=click.Path(file_okay=False), help="Slots folder.")
_json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command("status")
@_state_opt
@_slots_opt
@_json_opt
def model_status(state, slots, as_json) -> None:
    """Show the active, previous and candidate models."""
    s, _ = _slots(state, slots, must_exist=state is not None)
    st = s.status()
    emit(st, as_json, ["model slots:", *_slot_lines(st)])


@click.command("promote")
@_state_opt
@_slots_opt
@_json_opt
def model_promote(state, slots, as_json) -> None:
    """Make the candidate model active (the active one becomes previous)."""
    s, _ = _slots(state, slots, must_exist=state is not None)
    slot = s.promote_candidate()
    emit({"active": slot.name}, as_json, [f"active: {slot.name}"])


@click.command("rollback")
@_state_opt
@_slots_opt
@_json_opt
def model_rollback(state, slots, as_json) -> None:
    """Return to the previous model (the active one becomes previous)."""
    s, _ = _slots(state, slots, must_exist=state is not None)
    slot = s.rollback()
    emit({"active": slot.name}, as_json, [f"active: {slot.name}"])


def _event_line(e: dict) -> str:
    detail = e.get("message") or ""
    if e.get("validation"):
        detail = f"validation {e['validation'].get('accuracy')}"
    if e["event"] == "received":
        detail = f"sequence {e.get('sequence')}, {e.get('items')} items → {e.get('model')}"
    pid = (e.get("payload_id") or "")[:12]
    return f"  {_when(e.get('ts'))}  {e['event']:18} {pid:12} {detail}".rstrip()


@click.command("status")
@_state_opt
@_slots_opt
@click.option("--last", type=click.IntRange(1, None), default=10, show_default=True, help="Recent events to show.")
@_json_opt
def status(state, slots, last, as_json) -> None:
    """Summarise the device: models in service and the latest events."""
    from ..state import EventLog

    s, base = _slots(state, slots, must_exist=state is not None)
    events = EventLog(base / "events.jsonl").read()
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    res = {"state": str(base), "slots": s.status(), "event_counts": counts, "recent": events[-last:]}
    lines = [f"device state {base}", "model slots:", *_slot_lines(res["slots"])]
    lines.append("events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none yet"))
    lines += [_event_line(e) for e in events[-last:]]
    emit(res, as_json, lines)
