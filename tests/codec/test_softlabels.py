import numpy as np

from labelcast.codec.softlabels import decode_soft, encode_soft, soft_from_probs


def test_soft_labels_roundtrip_and_dense_rows_sum_to_one():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, 200)
    hard = probs.argmax(1)
    soft = soft_from_probs(probs, hard, extra=2, levels=16)
    b = encode_soft(soft, hard, 10)
    back = decode_soft(b, hard, 10)
    assert np.array_equal(back.q, soft.q) and np.array_equal(back.others, soft.others)
    d = back.dense(hard, 10)
    assert np.allclose(d.sum(1), 1, atol=1e-5)
    assert (d.argmax(1) == hard).mean() > 0.95
    # quantisation error is at most half a step (1/32) on every kept value
    rows = np.arange(200)
    kept = np.concatenate([probs[rows, hard][:, None], np.take_along_axis(probs, soft.others, 1)], axis=1)
    assert np.abs(back.q / 16 - kept).max() <= 1 / 32 + 1e-12
    # dense() keeps q/16 when the kept values sum to ≤ 1 (error ≤ 1/32); when rounding pushes the sum S
    # over 1 (S ≤ 1 + 3/32: three kept values, half a step each) it divides by S, which moves a value
    # by at most (S − 1)/S more
    assert np.abs(d[rows, hard] - probs[rows, hard]).max() <= 1 / 32 + (3 / 32) / (1 + 3 / 32)
