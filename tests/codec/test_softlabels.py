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
    # quantisation error bounded by half a step on the kept classes
    assert np.abs(d[np.arange(200), hard] - probs[np.arange(200), hard]).max() < 0.2
