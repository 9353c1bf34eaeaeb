"""Generated documents match what their committed JSON renders (`make docs`), byte for byte."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _docblocks():
    spec = importlib.util.spec_from_file_location("_docblocks", ROOT / "benchmarks" / "docblocks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_docblocks"] = mod
    spec.loader.exec_module(mod)
    return mod


DOCBLOCKS = _docblocks()


@pytest.mark.parametrize("block", DOCBLOCKS.BLOCKS, ids=lambda b: b.json.rsplit("/", 1)[-1])
def test_each_generated_block_is_what_its_committed_json_renders(block):
    doc = (ROOT / block.doc).read_text()
    assert DOCBLOCKS.rendered(block) == doc, f"{block.doc} is stale against {block.json}: run `make docs`"


def test_every_committed_result_json_fills_a_block():
    listed = {b.json for b in DOCBLOCKS.BLOCKS}
    committed = {f"docs/results/{p.name}" for p in (ROOT / "docs" / "results").glob("*.json")}
    assert committed <= listed, committed - listed
    assert listed <= committed, listed - committed


def test_a_stale_block_is_caught():
    block = next(b for b in DOCBLOCKS.BLOCKS if b.json == "docs/results/semi.json")
    doc = (ROOT / block.doc).read_text().replace("<!-- semi:table -->\n|", "<!-- semi:table -->\n| STALE-ROW", 1)
    assert "STALE-ROW" in doc and DOCBLOCKS.rendered(block, doc) != doc


def _blocks_in(doc: str) -> list[tuple[str, str]]:
    """Every generated block of a document: (opening marker, closing marker)."""
    import re

    found = []
    for m in re.finditer(r"^<!-- ([\w:-]+?) -->$", doc, re.M):
        tag = m.group(1)
        if tag.startswith("/") or tag.endswith(":end"):
            continue
        base = tag.rsplit(":", 1)[0] if tag.endswith((":start", ":begin")) else None
        close = f"<!-- {base}:end -->" if base else f"<!-- /{tag} -->"
        if close in doc[m.end() :]:
            found.append((m.group(0), close))
    return found


_MARKED = sorted(
    p.relative_to(ROOT).as_posix()
    for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    if _blocks_in(p.read_text())
)


@pytest.mark.parametrize("doc", _MARKED)
def test_every_marked_block_is_filled_by_a_registered_json(doc):
    """Blank each marked block of a document in turn: rendering every registered block must restore it. A block
    no entry of ``BLOCKS`` fills (a table copied by hand between markers) stays blank and fails."""
    text = (ROOT / doc).read_text()
    blocks = _blocks_in(text)
    assert blocks, f"{doc} has no generated block"
    mine = [b for b in DOCBLOCKS.BLOCKS if b.doc == doc]
    for opening, closing in blocks:
        a = text.index(opening) + len(opening)
        b = text.index(closing, a)
        blank = text[:a] + "\nBLANK\n" + text[b:]
        for block in mine:
            blank = DOCBLOCKS.rendered(block, blank)
        assert blank == text, f"{doc}: nothing registered in benchmarks/docblocks.py fills {opening}"


# Tables in README and docs/ that are not results: formats, profiles, options, threat model (docs/api.md is generated
# from the code whole, and its own test checks it).
SPEC_TABLES = {
    ("docs/devices.md", "| profile | memory | usable | precision | backend |"),
    ("docs/field.md", "| failure | examples | what the watcher does |"),
    ("docs/link.md", "| profile | frame | rate | duty cycle / passes | loss | delivery model: parity |"),
    ("docs/payload.md", "| offset | size | field |"),
    ("docs/payload.md", "| type | section | content | |"),
    ("docs/payload.md", "| size | field |"),
    ("docs/receipts.md", "| size | field |"),
    ("docs/receipts.md", "| type | event | body |"),
    ("docs/receipts.md", "| link | return message | cap | NAK after |"),
    ("docs/results.md", "| method | what travels | how its bytes are counted |"),
    ("docs/security.md", "| mode | who can read the payload | who can make one | authenticator | fixed bytes |"),
    ("docs/security.md", "| an attacker who … | can | cannot |"),
    ("docs/teachers.md", "| key | meaning | default |"),
    ("docs/text.md", "| source form | items |"),
}
# Measured tables from runs whose JSON is not in the repository (none left: every measured table is a generated
# block, rendered from docs/results/*.json by `make docs`). It stays empty: a new measured table goes into a block.
LEGACY_TABLES: set[tuple[str, str]] = set()


def _tables_outside_blocks() -> list[tuple[str, str]]:
    """(document, header row) of every markdown table in README.md and docs/*.md outside a generated block."""
    import re

    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        rel = path.relative_to(ROOT).as_posix()
        if rel == "docs/api.md":
            continue
        inside, previous = False, ""
        for line in (raw.strip() for raw in path.read_text().splitlines()):  # a table in a list is indented
            marker = re.fullmatch(r"<!-- (/?)[\w:-]+? -->", line)
            if marker:
                inside = not (marker.group(1) or line.endswith(":end -->"))
            elif line.startswith("|") and not previous.startswith("|") and not inside:
                found.append((rel, line))
            previous = line
    return found


def _known(doc: str, header: str, known: set[tuple[str, str]]) -> bool:
    return any(doc == d and header.startswith(h) for d, h in known)


def test_every_table_outside_a_generated_block_is_a_format_or_a_listed_legacy_one():
    stray = [
        (d, h) for d, h in _tables_outside_blocks() if not _known(d, h, SPEC_TABLES) and not _known(d, h, LEGACY_TABLES)
    ]
    assert not stray, f"a measured table belongs in a block rendered from docs/results/*.json: {stray}"
    tables = _tables_outside_blocks()
    gone = [(d, h) for d, h in LEGACY_TABLES if not any(d == doc and t.startswith(h) for doc, t in tables)]
    assert not gone, f"these legacy tables are gone: take them off LEGACY_TABLES {gone}"
