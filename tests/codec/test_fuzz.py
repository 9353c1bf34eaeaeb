"""The CI-sized fuzz run (the ≥ 1M run is `make fuzz`)."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("fuzz", Path(__file__).parents[2] / "benchmarks" / "fuzz.py")


@pytest.mark.slow
def test_40k_fuzzed_inputs_raise_only_typed_errors():
    # v1-style and v2 payloads (exemplars, a delta), frames; `make fuzz` runs 1M plus the atheris targets
    fuzz = importlib.util.module_from_spec(SPEC)
    SPEC.loader.exec_module(fuzz)
    res = fuzz.run(40_000, seed=1)
    assert res["untyped_exceptions"] == 0, res["failures"]
    assert res["typed_errors"] > 36_000  # nearly every mutation is refused
    assert res["slowest_case_s"] < 1.0
