"""Generated documents match what their committed JSON renders (`make docs`), byte for byte."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_link_tables_are_what_their_committed_json_renders():
    link = _load("link")
    doc = (ROOT / "docs" / "link.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "link.json").read_text())
    assert link.splice(doc, link.render(result)) == doc, "docs/link.md is stale: run `make docs`"


def test_the_field_table_is_what_its_committed_json_renders():
    field = _load("field")
    doc = (ROOT / "docs" / "field.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "field.json").read_text())
    assert field.splice(doc, field.render(result)) == doc, "docs/field.md is stale: run `make docs`"
    digits = json.loads((ROOT / "docs" / "results" / "field-digits.json").read_text())
    assert field.splice(doc, field.render(digits), "field:digits") == doc, "docs/field.md is stale: run `make docs`"
    floors = json.loads((ROOT / "docs" / "results" / "field-floor.json").read_text())
    assert field.splice_floor(doc, field.render_floor(floors)) == doc, "docs/field.md is stale: run `make docs`"
    text = json.loads((ROOT / "docs" / "results" / "field-text.json").read_text())
    assert field.splice(doc, field.render(text), "field:text") == doc, "docs/field.md is stale: run `make docs`"
    semi = json.loads((ROOT / "docs" / "results" / "field-semi.json").read_text())
    assert field.splice_block(doc, "field:semi", field.render_semi(semi)) == doc, "docs/field.md is stale"


def test_the_vector_table_is_what_its_committed_json_renders():
    vectors = _load("vectors")
    doc = (ROOT / "docs" / "results.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "vectors.json").read_text())
    assert vectors.splice(doc, vectors.render(result)) == doc, "docs/results.md is stale: run `make docs`"


def test_the_semi_table_is_what_its_committed_json_renders():
    semi = _load("semi")
    doc = (ROOT / "docs" / "results.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "semi.json").read_text())
    assert semi.splice(doc, semi.render(result)) == doc, "docs/results.md is stale: run `make docs`"


def test_the_choices_tables_are_what_their_committed_json_renders():
    choices = _load("choices")
    doc = (ROOT / "docs" / "results.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "choices.json").read_text())
    assert choices.splice(doc, choices.render(result)) == doc, "docs/results.md is stale: run `make docs`"


def test_the_held_out_scenario_table_is_what_its_committed_json_renders():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from equitable.report import markdown, splice_results

    doc = (ROOT / "docs" / "results.md").read_text()
    result = json.loads((ROOT / "docs" / "results" / "equitable-clipart.json").read_text())
    assert list(result["scenarios"]) == ["clipart"]
    assert splice_results(doc, markdown(result), "bench-clipart") == doc, "docs/results.md is stale: run `make docs`"
