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


def _agreement(val: dict) -> str:
    """The held-back figure for what it is: agreement with the teacher's labels, not test accuracy."""
    if "accuracy" not in val:
        return "no held-back items (not comparable)"
    vs = f" (vs {val['compare_accuracy']:.3f} for the model active then)" if "compare_accuracy" in val else ""
    return f"teacher agreement {val['accuracy']:.3f} on {val.get('items', '?')} held-back items{vs}"


def _slot_lines(st: dict) -> list[str]:
    lines = []
    for name in ("active", "previous", "candidate"):
        v = st[name]
        acc = _agreement(v.get("validation") or {})
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
    if e["event"] == "junk ignored":
        detail = f"{e.get('file')} ({e.get('bytes')} B) moved to .junk/"
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
    refused, pending = _not_done(base)
    res = {"state": str(base), "slots": s.status(), "event_counts": counts, "recent": events[-last:]}
    res.update(refused=refused, pending=pending)
    lines = [f"device state {base}", "model slots:", *_slot_lines(res["slots"])]
    lines += _refused_lines(refused, pending)
    lines.append("events: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none yet"))
    lines += [_event_line(e) for e in events[-last:]]
    emit(res, as_json, lines)


def _not_done(base: Path) -> tuple[dict, dict]:
    """The watcher's refused (and quarantined) payloads, and those still pending, from its records."""
    import json

    def read(name: str) -> dict:
        try:
            return json.loads((base / name).read_text())
        except (OSError, ValueError):
            return {}

    done = read("watch-done.json")
    refused = {h: r for h, r in done.items() if r.get("outcome") in ("refused", "quarantined")}
    return refused, read("watch-pending.json")


def _refused_lines(refused: dict, pending: dict) -> list[str]:
    lines = [f"refused: {len(refused)}" + (" (retry one with `labelcast retry ID`)" if refused else "")]
    for h, r in refused.items():
        when = f"; retried when the {r['retry_when']} changes" if r.get("retry_when") else ""
        lines.append(f"  {h[:16]}  {r.get('outcome')} {r.get('error')}: {r.get('message', '')}{when}")
    lines.append(f"pending: {len(pending)}")
    lines += [
        f"  {h[:16]}  {p.get('state')}: {p.get('message') or p.get('error') or ''}".rstrip() for h, p in pending.items()
    ]
    return lines


@click.command("retry")
@click.argument("payload_id")
@_state_opt
@_json_opt
def retry(payload_id, state, as_json) -> None:
    """Try a refused or quarantined payload again (by id or id prefix, as `labelcast status` lists it)."""
    from ..watch import request_retry

    _, base = _slots(state, None, must_exist=True)
    refused, _ = _not_done(base)
    hits = [h for h in refused if h.startswith(payload_id.lower())]
    if not hits:
        known = ", ".join(h[:16] for h in refused) or "none"
        raise click.BadParameter(f"no refused payload with id {payload_id} (refused: {known})", param_hint="PAYLOAD_ID")
    try:
        req = request_retry(base, payload_id)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="PAYLOAD_ID") from None
    res = {"requested": hits, "request": str(req)}
    emit(res, as_json, [f"retry of {', '.join(h[:16] for h in hits)} requested; the watcher tries it on its next pass"])
