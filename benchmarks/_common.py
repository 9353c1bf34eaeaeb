"""Shared bits for benchmarks: table printing and JSON output."""

from __future__ import annotations

import json
import os
from pathlib import Path


def table(rows: list[dict], cols: list[str], title: str = "") -> str:
    """Print ``rows`` as a markdown table (under ``title``) and return the table."""
    if title:
        print(f"\n## {title}\n")
    text = md_table(rows, cols)
    print(text, flush=True)
    return text


def md_table(rows: list[dict], cols: list[str]) -> str:
    """``rows`` as a padded markdown table of ``cols`` (numbers right-aligned, thousands separated)."""
    w = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    out = ["| " + " | ".join(c.ljust(w[c]) for c in cols) + " |", "|" + "|".join("-" * (w[c] + 2) for c in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)).rjust(w[c]) for c in cols) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def machine() -> dict:
    """What a result JSON records of the machine it ran on."""
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_json(path: str | None, data) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=float)
    os.replace(tmp, path)
    print(f"\nwrote {path}")


def splice_block(doc: str, tag: str, text: str) -> str:
    """``doc`` with its ``<!-- TAG -->`` … ``<!-- /TAG -->`` block replaced by ``text`` (the tables ``make docs``
    renders from committed JSON); a document without the block is an error."""
    import re

    pat = re.compile(rf"(<!-- {re.escape(tag)} -->\n).*?(\n<!-- /{re.escape(tag)} -->)", re.S)
    if not pat.search(doc):
        raise SystemExit(f"the document has no <!-- {tag} --> block")
    return pat.sub(lambda m: m.group(1) + text + m.group(2), doc)


def splice_blocks(doc: str, blocks: dict[str, str], every: bool = True) -> str:
    """``doc`` with each ``<!-- TAG -->`` block of ``blocks`` replaced; ``every=False``: only the blocks this
    document holds (a result rendered into several documents), at least one."""
    held = [tag for tag in blocks if every or f"<!-- {tag} -->" in doc]
    if not held:
        raise SystemExit(f"the document has none of the blocks {sorted(blocks)}")
    for tag in held:
        doc = splice_block(doc, tag, blocks[tag])
    return doc


def render_into(doc_path: str, json_path: str, render, splice) -> None:
    """Rewrite ``doc_path``'s generated block from the JSON at ``json_path`` (``--render``)."""
    doc = Path(doc_path)
    doc.write_text(splice(doc.read_text(), render(json.loads(Path(json_path).read_text()))))


def md_grid(rows: list[dict], cols: list[tuple[str, object]]) -> str:
    """A compact markdown table: ``cols`` are (header, key or ``row -> text``); missing values are empty cells."""

    def cell(r: dict, how) -> str:
        v = how(r) if callable(how) else r.get(how)
        return "" if v is None else (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))

    head = "| " + " | ".join(h for h, _ in cols) + " |\n|" + "---|" * len(cols)
    return head + "".join("\n| " + " | ".join(cell(r, how) for _, how in cols) + " |" for r in rows)
