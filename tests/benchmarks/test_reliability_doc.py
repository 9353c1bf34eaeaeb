"""`benchmarks/reliability.py --doc` rewrites its table and keeps the prose written around it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from reliability import DOC_HEAD, splice_table  # noqa: E402

OLD = (
    "# R\n\nintro\n\n| class | cases |\n|---|---|\n| tamper | 1 |\n\n"
    "A finding.\n\nLast `make fuzz`: 10 inputs.\n\n## Other\n"
)
NEW = "| class | cases |\n|---|---|\n| tamper | 2 |\n| trust | 3 |\n"


def test_the_table_is_replaced_and_the_prose_kept():
    out = splice_table(OLD, NEW, "\nLast `make fuzz`: 20 inputs.\n")
    assert "| tamper | 2 |\n| trust | 3 |\n\nA finding." in out
    assert "| tamper | 1 |" not in out
    assert out.startswith("# R\n\nintro\n\n") and out.endswith("## Other\n")
    assert "Last `make fuzz`: 20 inputs." in out and "10 inputs" not in out


def test_a_missing_doc_is_written_whole():
    assert splice_table(None, NEW).startswith(DOC_HEAD)
