"""``labelcast model status|promote|rollback`` and ``labelcast status`` for an operator on a console."""

from __future__ import annotations

from pathlib import Path

import click

from ...cli import emit


def _slots(state: str | None, slots: str | None):
    from ..slots import Slots
    from ..state import default_state_dir

    base = Path(state) if state else default_state_dir()
    return Slots(slots or base / "slots"), base


_state_opt = click.option("--state", default=None, type=click.Path(file_okay=False), help="Device state folder.")
_slots_opt = click.option("--slots", default=None, type=click.Path(file_okay=False), help="Slots folder.")
_json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command("status")
@_state_opt
@_slots_opt
@_json_opt
def model_status(state, slots, as_json) -> None:
    """Show the active, previous and candidate models."""
    s, _ = _slots(state, slots)
    st = s.status()
    lines = [f"{k:9} {v.get('slot') or '-'}  {v.get('validation', '')}" for k, v in st.items() if k != "models"]
    emit(st, as_json, lines)


@click.command("promote")
@_state_opt
@_slots_opt
@_json_opt
def model_promote(state, slots, as_json) -> None:
    """Make the candidate model active (the active one becomes previous)."""
    s, _ = _slots(state, slots)
    slot = s.promote_candidate()
    emit({"active": slot.name}, as_json, [f"active: {slot.name}"])


@click.command("rollback")
@_state_opt
@_slots_opt
@_json_opt
def model_rollback(state, slots, as_json) -> None:
    """Return to the previous model (the active one becomes previous)."""
    s, _ = _slots(state, slots)
    slot = s.rollback()
    emit({"active": slot.name}, as_json, [f"active: {slot.name}"])


@click.command("status")
@_state_opt
@_slots_opt
@click.option("--last", type=click.IntRange(1, None), default=10, show_default=True, help="Recent events to show.")
@_json_opt
def status(state, slots, last, as_json) -> None:
    """Summarise the device: models in service and the latest events of the watcher."""
    from ..watch import EventLog

    s, base = _slots(state, slots)
    events = EventLog(base / "events.jsonl").read()
    counts: dict[str, int] = {}
    for e in events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    res = {"slots": s.status(), "event_counts": counts, "recent": events[-last:]}
    lines = [f"active model: {res['slots']['active'].get('slot') or 'none'}", f"events: {counts}"]
    lines += [
        f"  {e['ts']:.0f} {e['event']} {e.get('payload_id', '')[:12]} {e.get('message', '')}" for e in events[-last:]
    ]
    emit(res, as_json, lines)
