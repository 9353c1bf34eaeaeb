"""The CI-sized fuzz run (the ≥ 1M run is `make fuzz`)."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("fuzz", Path(__file__).parents[2] / "benchmarks" / "fuzz.py")


@pytest.mark.slow
def test_100k_fuzzed_inputs_raise_only_typed_errors():
    fuzz = importlib.util.module_from_spec(SPEC)
    SPEC.loader.exec_module(fuzz)
    res = fuzz.run(100_000, seed=1)
    assert res["untyped_exceptions"] == 0, res["failures"]
    assert res["typed_errors"] > 90_000  # nearly every mutation is refused
    assert res["slowest_case_s"] < 1.0
