import numpy as np
import pytest

from labelcast.sender.selection import STRATEGIES, SelectConfig, pseudo_labels, quota_counts, select


def _logits(n=3000, c=10, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)).astype(np.float32)
    z[:, 0] += 2.0  # class 0 dominates the pseudo-labels
    return z


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "random-keyed"])  # keyed: own test below
def test_every_strategy_honours_the_equal_quota(strategy):
    z = _logits()
    idx = select(z, 200, SelectConfig(strategy=strategy, quota=True, alpha=0.0))
    assert idx.size == 200 and np.unique(idx).size == 200
    counts = np.bincount(pseudo_labels(z)[idx], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_alpha_one_is_proportional():
    counts = np.array([600, 300, 100])
    assert quota_counts(counts, 100, 1.0).tolist() == [60, 30, 10]
    assert quota_counts(counts, 99, 0.0).tolist() == [33, 33, 33]


def test_quota_floor_one_per_predicted_class_and_capacity():
    counts = np.array([1000, 1, 0, 5])
    q = quota_counts(counts, 50, 1.0)
    assert q[1] == 1 and q[2] == 0 and q[3] >= 1 and q.sum() == 50
    q = quota_counts(np.array([2, 2, 100]), 90, 0.0)
    assert q.tolist() == [2, 2, 86]


def test_energy_without_quota_takes_lowest_energy():
    z = _logits()
    idx = select(z, 50, SelectConfig(strategy="energy", quota=False))
    energy = -np.log(np.exp(z.astype(np.float64)).sum(1))
    assert energy[idx].max() <= np.sort(energy)[49] + 1e-9


def test_random_is_seeded():
    z = _logits()
    a = select(z, 100, SelectConfig(seed=1))
    b = select(z, 100, SelectConfig(seed=1))
    c = select(z, 100, SelectConfig(seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_keyed_prefixes_are_prefix_coded_and_quota_balanced():
    from labelcast.codec.indexset import PREFIX, encode_indices
    from labelcast.sender.selection import keyed_sequence, prefix_key, rank_items

    rng = np.random.default_rng(0)
    sizes = np.full(40, 500)  # 40 content clusters: 40 heads to choose from
    n = int(sizes.sum())
    # each cluster leans to one class, as content clusters do
    lab = np.where(rng.random(n) < 0.7, np.repeat(np.arange(40) % 10, 500), rng.integers(0, 10, n))
    z = np.eye(10, dtype=np.float32)[lab] * 5
    cfg = SelectConfig(strategy="random-keyed", quota=True, seed=11)
    order = rank_items(z, cfg, sizes)
    assert np.array_equal(np.sort(order), np.arange(n))  # every item exactly once
    assert np.array_equal(order, keyed_sequence(lab, sizes, 11, True, 0.0, 10))
    for k in (300, 2000):
        idx = select(z, k, cfg, order)
        assert idx.size == k and np.unique(idx).size == k
        b = encode_indices(idx, n, sizes, prefix_key(cfg))
        assert b[0] == PREFIX
        counts = np.bincount(lab[idx], minlength=10)
        assert counts.max() - counts.min() <= 0.1 * k / 10 + 2  # near the equal quota
    # without the quota: proportional to segment sizes
    free = keyed_sequence(lab, sizes, 11, quota=False)
    per_seg = np.bincount(free[:2000] // 500, minlength=40)
    assert per_seg.max() - per_seg.min() <= 1


def test_keyed_flag_keeps_counts_per_segment_and_is_prefix_coded():
    from labelcast.codec.indexset import PREFIX, encode_indices
    from labelcast.sender.selection import prefix_key

    z = _logits(n=4000)
    sizes = np.array([1000, 500, 2000, 500])
    plain = select(z, 300, SelectConfig(strategy="energy-high", quota=True))
    cfg = SelectConfig(strategy="energy-high", quota=True, keyed=True, seed=4)
    keyed = select(z, 300, cfg, segments=sizes)
    edges = np.cumsum(sizes)
    per_seg = [np.bincount(np.searchsorted(edges, i, side="right"), minlength=4).tolist() for i in (plain, keyed)]
    assert keyed.size == 300 and np.unique(keyed).size == 300 and per_seg[0] == per_seg[1]
    assert encode_indices(keyed, 4000, sizes, prefix_key(cfg))[0] == PREFIX
    assert prefix_key(SelectConfig(strategy="energy-high")) is None


def test_auto_tells_near_from_far_pools_and_defaults_to_near_without_a_reference():
    from labelcast.sender.selection import AUTO, choose_auto, median_confidence, softmax

    rng = np.random.default_rng(3)
    lab = rng.integers(0, 10, 4000)
    sharp = rng.normal(size=(4000, 10)).astype(np.float32)
    sharp[np.arange(4000), lab] += 8.0  # confident everywhere: near the teacher's own data
    flat = rng.normal(size=(4000, 10)).astype(np.float32)  # unsure everywhere: a far pool
    ref = median_confidence(sharp)
    direct = float(np.median(softmax(sharp).max(1)))
    assert abs(median_confidence(sharp, chunk=333) - direct) < 1e-6 and abs(ref - direct) < 1e-6
    near, far = choose_auto(sharp, ref), choose_auto(flat, ref)
    assert not near["far"] and abs(near["shift"]) < 1e-6
    assert far["far"] and far["shift"] > AUTO["shift"] and far["threshold"] == AUTO["shift"]
    unknown = choose_auto(flat, None)  # a foreign teacher without train_confidence metadata
    assert not unknown["far"] and unknown["shift"] is None and unknown["teacher_confidence"] is None
    assert AUTO["near"]["strategy"] in STRATEGIES and AUTO["far"]["strategy"] in STRATEGIES


def test_auto_is_not_a_ranking():
    with pytest.raises(ValueError, match="auto"):
        select(_logits(), 10, SelectConfig(strategy="auto"))
