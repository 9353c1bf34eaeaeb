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
    # every garbage input either raises DecodeError (nothing else may escape) or, by chance, decodes
    # to a well-formed selection: k distinct sorted indices in range
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(300):
        junk = rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        k = int(rng.integers(0, 1000))
        try:
            out = decode_indices(junk, 1000, k, np.array([400, 600]))
        except DecodeError:
            refused += 1
            continue
        assert out.size == k and np.all(np.diff(out) > 0) and (k == 0 or 0 <= out[0] and out[-1] < 1000)
    assert refused >= 250, refused


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError):
        encode_indices(np.array([1, 1]), 10)
    with pytest.raises(ValueError):
        encode_indices(np.array([10]), 10)


def test_prefix_mode_round_trips_and_sends_no_positions():
    from labelcast.codec.indexset import PREFIX, keyed_order, prefix_select

    sizes = np.array([100, 5000, 3, 20000, 777])
    n = int(sizes.sum())
    counts = np.array([10, 0, 3, 400, 1])
    idx = prefix_select(n, counts, 12345, sizes)
    assert idx.size == counts.sum() and np.all(np.diff(idx) > 0)
    b = encode_indices(idx, n, sizes, prefix_key=12345)
    assert b[0] == PREFIX
    assert len(b) < len(encode_indices(idx, n, sizes)) / 4  # only counts and the key travel
    assert np.array_equal(decode_indices(b, n, idx.size, sizes), idx)
    # the first c of a segment's keyed order are exactly what PREFIX selects there
    o = keyed_order(12345, 100, 5000)
    assert np.array_equal(np.sort(o[:50]), prefix_select(n, np.array([0, 50, 0, 0, 0]), 12345, sizes))
    # one segment (no manifest groups) works too
    one = prefix_select(1000, np.array([100]), 7)
    b1 = encode_indices(one, 1000, None, 7)
    assert b1[0] == PREFIX and np.array_equal(decode_indices(b1, 1000, 100), one)


def test_prefix_mode_is_not_used_for_other_selections_and_key_is_checked():
    from labelcast.codec.indexset import PREFIX, prefix_select

    rng = np.random.default_rng(3)
    idx = np.sort(rng.choice(10_000, 400, replace=False))
    assert encode_indices(idx, 10_000, None, prefix_key=5)[0] != PREFIX
    with pytest.raises(ValueError):
        encode_indices(idx, 10_000, None, prefix_key=1 << 32)
    with pytest.raises(ValueError):
        prefix_select(100, np.array([101]), 1)
    # a different key decodes to a different set: the key is part of the contract
    sel = prefix_select(10_000, np.array([300]), 9)
    b = bytearray(encode_indices(sel, 10_000, None, 9))
    assert b[1] == 9
    b[1] = 10
    assert not np.array_equal(decode_indices(bytes(b), 10_000, 300), sel)


def test_prefix_keyed_order_is_a_fixed_contract():
    from labelcast.codec.indexset import keyed_order

    # splitmix64(key·2^32 + i) in plain Python integers, independent of numpy's uint64 arithmetic;
    # the literal pins it: a change here breaks every deployed device
    m = (1 << 64) - 1

    def splitmix(x):
        z = (x + 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        return z ^ (z >> 31)

    for key, start in ((0, 0), (77, 1_000_000), ((1 << 32) - 1, (1 << 32) - 20)):
        ref = sorted(range(start, start + 20), key=lambda i: (splitmix((key << 32) + i), i))
        assert keyed_order(key, start, 20).tolist() == ref
    assert keyed_order(0, 0, 10).tolist() == [3, 5, 7, 4, 1, 2, 8, 9, 6, 0]
