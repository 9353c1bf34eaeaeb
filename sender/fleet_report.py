"""``fleet report --html``: one self-contained page of the fleet (no network, no scripts: inline SVG and CSS)."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from ..codec.storage import atomic_write
from .ledger import Ledger

__all__ = ["write_report", "render_report"]

_CSS = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}.bad{color:#b00}"
    ".ok{color:#070}svg{border:1px solid #ddd;background:#fcfcfc}"
)
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _plot(series: dict[str, list[tuple[int, float]]], w: int = 640, h: int = 260) -> str:
    """Teacher agreement on held-back items against the payload's sequence, one line per device."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return "<p>No trained receipt yet.</p>"
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1

    def xy(s: int, a: float) -> str:
        return f"{40 + (s - x0) / (x1 - x0) * (w - 60):.1f},{h - 30 - a * (h - 50):.1f}"

    parts = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" role="img">']
    for a in (0.0, 0.5, 1.0):
        y = xy(x0, a).split(",")[1]
        parts.append(f'<line x1="40" x2="{w - 20}" y1="{y}" y2="{y}" stroke="#eee"/>')
        parts.append(f'<text x="4" y="{y}" font-size="11">{a:.1f}</text>')
    parts.append(f'<text x="{w // 2}" y="{h - 6}" font-size="11">payload sequence</text>')
    for i, (name, s) in enumerate(sorted(series.items())):
        c = _COLOURS[i % len(_COLOURS)]
        s = sorted(s)
        parts.append(f'<polyline fill="none" stroke="{c}" points="{" ".join(xy(q, a) for q, a in s)}"/>')
        parts += [f'<circle cx="{xy(q, a).split(",")[0]}" cy="{xy(q, a).split(",")[1]}" r="3" fill="{c}">'
                  f"<title>{html.escape(name)} s{q}: {a:.3f}</title></circle>" for q, a in s]  # fmt: skip
    return "".join(parts) + "</svg>"


def render_report(ledger: Ledger) -> tuple[str, dict]:
    devices = ledger.devices()
    rows, series, pending = [], {}, []
    for d in devices:
        dl = ledger.deliveries(d.name)
        series[d.name] = [(x["sequence"], x["accuracy"]) for x in dl if x["accuracy"] is not None]
        pend = [x for x in dl if x["state"] in ("sent", "partial")]
        pending += [(d.name, x) for x in pend]
        last = dl[-1] if dl else None
        seen = time.strftime("%Y-%m-%d %H:%M", time.gmtime(d.last_seen)) if d.last_seen else "never"
        store_ok = d.reported_root is None or d.root.startswith(d.reported_root)
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    d.name,
                    d.link,
                    d.device_profile,
                    f"s{d.head_sequence} {d.head_digest[:12]}" if d.head_digest else "none reported",
                    seen,
                    f"{d.last_accuracy:.3f}" if d.last_accuracy is not None else "",
                    f"s{last['sequence']} {last['state']}" if last else "",
                )
            )
            + f'<td class="{"ok" if store_ok else "bad"}">{"matches" if store_ok else "DIFFERS"}</td></tr>'
        )
    pend_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{x['pid']}</td><td>s{x['sequence']}</td><td>{x['state']}</td>"
        f"<td>{sum(json.loads(x['needed'] or '[]'))}</td><td>{x['repair_frames']}</td></tr>"
        for n, x in pending
    )
    head = "".join(f"<th>{h}</th>" for h in ("device", "link", "profile", "head", "last receipt (UTC)",
                                            "agreement", "last payload", "store"))  # fmt: skip
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>labelcast fleet</title><style>{_CSS}</style>"
        f"</head><body><h1>labelcast fleet</h1><p>{len(devices)} devices; ledger {html.escape(str(ledger.path))}; "
        f"written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Agreement with the teacher over rounds</h2>{_plot(series)}"
        "<h2>Pending</h2><table><tr><th>device</th><th>payload</th><th>sequence</th><th>state</th>"
        f"<th>blocks needed</th><th>repair frames sent</th></tr>{pend_rows}</table></body></html>"
    )
    return page, {"devices": len(devices), "pending": len(pending)}


def write_report(ledger: Ledger, out: str | Path) -> dict:
    page, info = render_report(ledger)
    atomic_write(Path(out), page, what=f"fleet report {out}")
    return {**info, "html": str(out), "bytes": len(page.encode())}
