"""Every generated block of the docs, rendered from the committed JSON of its run (``make docs``).

    python benchmarks/docblocks.py            # rewrite every block from docs/results/*.json
    python benchmarks/docblocks.py --check    # exit 1, naming each stale document, when one differs

Each entry names the JSON a benchmark wrote, the document it fills and how: the benchmark's own ``render``
(JSON → markdown) and ``splice`` (markdown → the document with its marked block replaced). The freshness test
(``tests/benchmarks/test_docs_fresh.py``) runs the same entries, so a block added here is checked in ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent


def _module(name: str):
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    key = f"_labelcast_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass(frozen=True)
class Block:
    """One generated block: ``apply(document, result)`` is the document with the block rendered from ``result``."""

    json: str  # relative to the repository root
    doc: str
    apply: Callable[[str, dict], str]

    def name(self) -> str:
        return f"{self.doc} ← {self.json}"


def _simple(module: str, render: str = "render", splice: str = "splice", **kw) -> Callable[[str, dict], str]:
    def apply(doc: str, result: dict) -> str:
        mod = _module(module)
        return getattr(mod, splice)(doc, getattr(mod, render)(result), **kw)

    return apply


def _field_semi(doc: str, result: dict) -> str:
    field = _module("field")
    return field.splice_block(doc, "field:semi", field.render_semi(result))


def _equitable(tag: str) -> Callable[[str, dict], str]:
    def apply(doc: str, result: dict) -> str:
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        from equitable.report import markdown, splice_results

        return splice_results(doc, markdown(result), tag)

    return apply


BLOCKS: tuple[Block, ...] = (
    Block("docs/results/link.json", "docs/link.md", _simple("link")),
    Block("docs/results/field.json", "docs/field.md", _simple("field")),
    Block("docs/results/field-digits.json", "docs/field.md", _simple("field", tag="field:digits")),
    Block("docs/results/field-floor.json", "docs/field.md", _simple("field", "render_floor", "splice_floor")),
    Block("docs/results/field-text.json", "docs/field.md", _simple("field", tag="field:text")),
    Block("docs/results/field-semi.json", "docs/field.md", _field_semi),
    Block("docs/results/vectors.json", "docs/results.md", _simple("vectors")),
    Block("docs/results/semi.json", "docs/results.md", _simple("semi")),
    Block("docs/results/semi-recipes.json", "docs/results.md", _simple("semi", "render_recipes", "splice_recipes")),
    Block(
        "docs/results/semi-recipes-text.json",
        "docs/results.md",
        _simple("semi", "render_recipes", "splice_recipes", tag="semi:recipes-text"),
    ),
    Block(
        "docs/results/semi-recipes-text-4050.json",
        "docs/results.md",
        _simple("semi", "render_recipes", "splice_recipes", tag="semi:recipes-text-4050"),
    ),
    Block(
        "docs/results/semi-fashion-5seeds.json",
        "docs/results.md",
        _simple("semi", "render", "splice_recipes", tag="semi:five-seeds"),
    ),
    Block("docs/results/choices.json", "docs/results.md", _simple("choices")),
    Block("docs/results/equitable-fashion.json", "docs/results.md", _equitable("bench-fashion")),
    Block("docs/results/equitable-digits.json", "docs/results.md", _equitable("bench-digits")),
    Block("docs/results/equitable-clipart.json", "docs/results.md", _equitable("bench-clipart")),
    Block("docs/results/codec.json", "docs/codec.md", _simple("codec")),
    Block("docs/results/fec.json", "docs/link.md", _simple("fec")),
    Block("docs/results/reassembly.json", "docs/reliability.md", _simple("reassembly")),
    Block("docs/results/reliability.json", "docs/reliability.md", _simple("reliability")),
    Block("docs/results/scoring.json", "docs/results.md", _simple("scoring")),
    Block("docs/results/text.json", "docs/results.md", _simple("text")),
    Block("docs/results/text.json", "docs/text.md", _simple("text")),
    Block("docs/results/sealed.json", "docs/results.md", _simple("sealed")),
    Block("docs/results/sealed.json", "docs/security.md", _simple("sealed")),
    Block("docs/results/demo-fashion.json", "README.md", _simple("demo_report")),
    Block("docs/results/demo-fashion.json", "docs/results.md", _simple("demo_report")),
    Block("docs/results/reference.json", "docs/reference.md", _simple("reference")),
    Block("docs/results/scale.json", "docs/scale.md", _simple("scale")),
    Block("docs/results/fleet.json", "docs/receipts.md", _simple("fleet")),
    Block("docs/results/incremental.json", "docs/results.md", _simple("incremental")),
    Block("docs/results/device-training.json", "docs/devices.md", _simple("device_training")),
    Block("docs/results/receiver.json", "docs/devices.md", _simple("receiver")),
    Block("docs/results/selection.json", "docs/results.md", _simple("selection")),
    Block("docs/results/byo.json", "docs/results.md", _simple("byo_teacher")),
    Block("docs/results/recipes.json", "docs/results.md", _simple("recipes")),
)


def rendered(block: Block, doc: str | None = None) -> str:
    """``block.doc`` as ``block.json`` renders it (from ``doc`` when given, else the file)."""
    text = (ROOT / block.doc).read_text() if doc is None else doc
    return block.apply(text, json.loads((ROOT / block.json).read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report stale documents (exit 1 when any)")
    a = ap.parse_args()
    docs: dict[str, str] = {}
    for block in BLOCKS:
        if not (ROOT / block.json).exists():
            raise SystemExit(f"{block.json} is missing: run its benchmark (make bench-all)")
        docs[block.doc] = rendered(block, docs.get(block.doc))
    stale = [d for d, text in docs.items() if (ROOT / d).read_text() != text]
    if a.check:
        for d in stale:
            print(f"{d} is stale: run `make docs`")
        raise SystemExit(1 if stale else 0)
    for d in stale:
        tmp = ROOT / f"{d}.tmp"
        tmp.write_text(docs[d])
        tmp.replace(ROOT / d)
        print(f"rewrote {d}")


if __name__ == "__main__":
    main()
