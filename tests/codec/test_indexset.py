import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelcast.codec.errors import DecodeError
from labelcast.codec.indexset import (
    FLAT,
    GROUPED,
    decode_indices,
    encode_indices,
    log2_binomial,
    segments_from_groups,
)


@given(st.integers(1, 5000), st.data())
@settings(max_examples=150, deadline=None)
def test_roundtrip_any_subset(n, data):
    k = data.draw(st.integers(0, n))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    idx = np.sort(rng.choice(n, size=k, replace=False))
    cuts = (
        np.sort(rng.choice(np.arange(1, n), size=min(n - 1, data.draw(st.integers(0, 20))), replace=False))
        if n > 1
        else []
    )
    seg = np.diff(np.concatenate([[0], cuts, [n]])).astype(np.int64)
    b = encode_indices(idx, n, seg)
    assert np.array_equal(decode_indices(b, n, k, seg), idx)


@pytest.mark.parametrize("n,frac", [(70_000, 0.005), (70_000, 0.05), (1_280_000, 0.01)])
def test_random_selection_within_one_percent_of_bound(n, frac):
    rng = np.random.default_rng(1)
    k = int(n * frac)
    idx = np.sort(rng.choice(n, k, replace=False))
    b = encode_indices(idx, n)
    bound = log2_binomial(n, k) / 8
    # the section's mode byte and the ANS coder's final word are the fixed overhead
    assert len(b) <= 1.01 * bound + 6


def test_clustered_selection_codes_below_flat_bound():
    rng = np.random.default_rng(2)
    sizes = np.full(200, 500)
    chosen = rng.choice(200, 10, replace=False)
    idx = np.concatenate([g * 500 + rng.choice(500, 400, replace=False) for g in chosen])
    idx = np.sort(idx)
    b = encode_indices(idx, int(sizes.sum()), sizes)
    assert b[0] == GROUPED
    assert len(b) * 8 < 0.5 * log2_binomial(int(sizes.sum()), idx.size)
    assert np.array_equal(decode_indices(b, int(sizes.sum()), idx.size, sizes), idx)


def test_flat_mode_without_groups():
    b = encode_indices(np.array([3, 5, 9]), 10)
    assert b[0] == FLAT


def test_segments_are_runs_of_groups():
    assert segments_from_groups(np.array([0, 0, 1, 1, 1, 0])).tolist() == [2, 3, 1]


def test_decoder_rejects_garbage_with_typed_error():
    rng = np.random.default_rng(3)
    for _ in range(300):
        junk = rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        try:
            decode_indices(junk, 1000, int(rng.integers(0, 1000)), np.array([400, 600]))
        except DecodeError:
            pass


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError):
        encode_indices(np.array([1, 1]), 10)
    with pytest.raises(ValueError):
        encode_indices(np.array([10]), 10)
