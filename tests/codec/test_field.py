"""Field sketches (#36): the partition both ends compute, the sketch's bytes, the rule that steers the quota,
and the device's prior re-estimation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.errors import FieldError
from labelcast.codec.field import (
    FIELD_FLOOR,
    class_mix,
    decode_sketch,
    divergence,
    encode_sketch,
    make_sketch,
    prior_weights,
)
from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest

G = 32


def _store(path: Path, seed: int = 0, per: int = 20) -> ReferenceStore:
    """32 groups of ``per`` items each; a group's items are noisy images of one brightness (its content)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), per).astype(np.uint32)
    items = np.clip(8 * g[:, None, None, None] + rng.integers(-3, 4, (g.size, 8, 8, 1)), 0, 255).astype(np.uint8)
    path.mkdir(parents=True)
    items.tofile(path / "items.u8")
    write_manifest(path / "manifest.lcm", hash_items(items), g, [f"c{i}" for i in range(G)], (8, 8, 1))
    return ReferenceStore(path)


def _field(groups: list[int], n: int = 200, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    levels = rng.choice(groups, n)
    return np.clip(8 * levels[:, None, None, None] + rng.integers(-3, 4, (n, 8, 8, 1)), 0, 255).astype(np.uint8)


def test_the_sketch_is_deterministic_and_the_same_on_both_ends_partition(tmp_path):
    ground, device = _store(tmp_path / "ground"), _store(tmp_path / "device")  # the same bytes, two copies
    x = _field([3, 4, 20])
    a, b = make_sketch(x, ground), make_sketch(x, device)
    assert encode_sketch(a) == encode_sketch(b) == encode_sketch(make_sketch(x, ground))
    assert set(np.flatnonzero(a.levels)) == {3, 4, 20} and a.levels.max() == 15
    data = encode_sketch(a)
    assert len(data) <= 64  # one return-link message for 32 groups
    back = decode_sketch(data)
    assert np.array_equal(back.levels, a.levels) and back.images == 200 and back.root_prefix == ground.root[:8]


def test_a_sketch_for_another_store_root_is_refused_with_a_typed_error(tmp_path):
    other = _store(tmp_path / "other", seed=5)
    s = make_sketch(_field([1]), _store(tmp_path / "mine"))
    with pytest.raises(FieldError, match="for the reference store .* this one is"):
        s.check(other.root, G)
    with pytest.raises(FieldError, match="malformed field sketch"):
        decode_sketch(encode_sketch(s)[:-3])
    with pytest.raises(FieldError, match="malformed"):
        decode_sketch(b"XX" + encode_sketch(s)[2:])


def test_the_floor_per_class_holds_in_the_weights_and_in_the_quota():
    from labelcast.sender.selection import quota_counts

    mix = np.array([0.0, 0.0, 0.5, 0.5, 0.0])
    w = prior_weights(mix)
    assert w.min() >= FIELD_FLOOR / 5 - 1e-12 and np.isclose(w.sum(), 1)
    q = quota_counts(np.full(5, 1000), 200, 0.0, w)
    assert q.sum() == 200 and (q[[0, 1, 4]] >= 6).all() and (q[[2, 3]] > 70).all()  # floored, never starved
    assert np.array_equal(quota_counts(np.full(5, 1000), 200, 0.0, None), np.full(5, 40))
    assert np.allclose(prior_weights(mix, 1.0), 0.2)  # a floor of 1: the even mix, whatever the field says
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="starves the classes the field lacks"):
            prior_weights(mix, bad)


def test_the_field_class_mix_follows_the_groups_it_falls_into(tmp_path):
    store = _store(tmp_path / "s")
    s = make_sketch(_field([0, 1]), store)
    groups = np.asarray(store.manifest.groups)
    pseudo = (groups >= 16).astype(np.int64)  # the teacher: groups 0–15 are class 0, the rest class 1
    mix = class_mix(s, pseudo, groups, 2)
    assert mix[0] == pytest.approx(1.0) and divergence(s, s) == 0.0
    assert divergence(s, make_sketch(_field([30, 31]), store)) == pytest.approx(1.0)


def test_prior_adaptation_leaves_a_balanced_field_unchanged_and_finds_a_shifted_one():
    from labelcast.receiver.field import adapt_prior

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 250)
    probs = np.full((1000, 4), 0.1 / 3)
    probs[np.arange(1000), y] = 0.9
    prior, _ = adapt_prior(probs, np.full(4, 0.25))
    assert np.allclose(prior, 0.25, atol=1e-6)
    shifted = probs[np.isin(y, [0, 1])][rng.permutation(500)]
    prior, _ = adapt_prior(shifted, np.full(4, 0.25))
    assert prior[:2].sum() > 0.99


def test_the_device_reports_its_sketch_when_it_changes_with_its_drift(tmp_path):
    from labelcast.codec.field import DRIFT_THRESHOLD
    from labelcast.codec.keys import generate_keypair, load_private_key, load_public_key
    from labelcast.codec.receipts import decode_receipt, encode_receipt, verify_receipt
    from labelcast.receiver.receipts import field_event

    store, state = _store(tmp_path / "s"), tmp_path / "state"
    first = field_event(state, store, _field([1, 2]))
    assert first is not None and first.drift is None and decode_sketch(first.sketch).levels[[1, 2]].min() > 0
    assert field_event(state, store, _field([1, 2])) is None  # nothing new to say
    moved = field_event(state, store, _field([30, 31]))
    assert moved.drift == pytest.approx(1.0) and moved.drift >= DRIFT_THRESHOLD
    priv, pub = generate_keypair(tmp_path / "keys", role="device")
    r = decode_receipt(encode_receipt(load_private_key(priv), 1, 1000, [moved]))
    verify_receipt(r, load_public_key(pub))
    assert r.events[0].sketch == moved.sketch and r.events[0].drift == pytest.approx(1.0)


TOPICS = {
    "boats": "hull sail keel mast harbour anchor rudder deck",
    "birds": "feather wing beak nest egg flock song perch",
    "soils": "clay loam humus silt gravel peat sand compost",
}


def _texts(topics: list[str], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for t in rng.choice(topics, n):
        words = TOPICS[str(t)].split()
        out.append(" ".join(rng.choice(words, 6)))
    return out


def test_a_text_store_sketches_text_captures_over_its_clusters_alike_on_both_ends(tmp_path):
    from labelcast.receiver.field import field_sketch
    from labelcast.sender.reference import BuildConfig, build_store

    pool = _texts(list(TOPICS), 300, 0)
    (tmp_path / "pool.txt").write_text("\n".join(pool))
    for end in ("ground", "device"):
        build_store(f"lines:{tmp_path / 'pool.txt'}", tmp_path / end, BuildConfig(clusters=3))
    ground, device = ReferenceStore(tmp_path / "ground"), ReferenceStore(tmp_path / "device")
    field = _texts(["birds"], 100, 1)
    (tmp_path / "field.txt").write_text("\n".join(field))
    a = field_sketch(f"lines:{tmp_path / 'field.txt'}", ground)
    b = field_sketch(f"lines:{tmp_path / 'field.txt'}", device)
    assert encode_sketch(a) == encode_sketch(b) and a.images == 100
    assert (a.levels == 15).sum() == 1 and (a.levels == 0).sum() == 2  # every bird text falls into one cluster
    other = field_sketch(f"lines:{tmp_path / 'pool.txt'}", ground)
    assert divergence(a, other) > 0.3


def test_a_vector_store_sketches_vector_captures_and_refuses_another_width(tmp_path):
    from labelcast.codec.errors import SourceError
    from labelcast.receiver.field import field_sketch
    from tests.sender.test_vectors import blobs, vector_store

    store = ReferenceStore(vector_store(tmp_path, 1200))
    x, y = blobs(400, 7)
    one = field_sketch(x[y == 2], store)
    mixed = field_sketch(x, store)
    assert (one.levels > 0).sum() < (mixed.levels > 0).sum() and divergence(one, mixed) > 0.2
    np.save(tmp_path / "wide.npy", np.zeros((5, 30), np.float32))
    with pytest.raises(SourceError, match="vectors of 30; the store's have 24"):
        field_sketch(f"npy:{tmp_path / 'wide.npy'}", store)


def test_a_far_pool_does_not_steer_the_quota_and_says_why(tmp_path):
    """The class mix stands on the teacher's view of the store; where `auto` finds the pool far, that view is not
    trusted and the sketch is recorded without steering."""
    from types import SimpleNamespace

    from labelcast.sender.recipe import Scored
    from labelcast.sender.send import SendConfig, _with_field

    store = _store(tmp_path / "ref")
    g = np.asarray(store.manifest.groups).astype(np.int64)
    sketch = encode_sketch(make_sketch(_field([0, 1]), store))
    sharp = (6.0 * np.eye(4)[g // 8]).astype(np.float32)  # confident: near the teacher's own data
    flat = (0.2 * np.eye(4)[g // 8]).astype(np.float32)  # unsure everywhere: far
    cfg = SendConfig(field=sketch)
    near_cfg, near = _with_field(cfg, Scored(store, SimpleNamespace(confidence=0.95), sharp), store)
    far_cfg, far = _with_field(cfg, Scored(store, SimpleNamespace(confidence=0.95), flat), store)
    assert near["steered"] and near_cfg.recipe.select.class_weights is not None
    assert not far["steered"] and "far pool" in far["why"] and far_cfg.recipe.select.class_weights is None


def test_a_field_near_the_even_mix_leaves_the_quota_even_and_says_why(tmp_path):
    """A device that sees what the labels already cover (its class mix within ``FIELD_MIN_SHIFT`` of even) gets
    the payload it would get without a sketch; a field of one class is steered."""
    from types import SimpleNamespace

    from labelcast.codec.field import FIELD_MIN_SHIFT, mix_shift
    from labelcast.sender.recipe import Scored
    from labelcast.sender.send import SendConfig, _with_field

    assert mix_shift(np.full(4, 0.25)) == 0 and mix_shift(np.eye(4)[0]) == pytest.approx(0.75)
    store = _store(tmp_path / "ref")
    g = np.asarray(store.manifest.groups).astype(np.int64)
    sharp = (6.0 * np.eye(4)[g // 8]).astype(np.float32)  # 4 classes of 8 groups each
    scored = Scored(store, SimpleNamespace(confidence=0.95), sharp)
    even = encode_sketch(make_sketch(_field(list(range(G)), n=3200), store))
    even_cfg, even_info = _with_field(SendConfig(field=even), scored, store)
    assert even_info["shift"] < FIELD_MIN_SHIFT and not even_info["steered"] and "from even" in even_info["why"]
    assert even_cfg.recipe.select.class_weights is None
    one_cfg, one = _with_field(SendConfig(field=encode_sketch(make_sketch(_field([0, 1]), store))), scored, store)
    assert one["shift"] > 0.5 and one["steered"] and one_cfg.recipe.select.class_weights is not None


def test_the_device_keeps_its_outputs_when_the_student_does_not_commit_on_its_field(tmp_path):
    import torch

    from labelcast.codec.preprocess import Preprocess
    from labelcast.receiver.field import PRIOR_MIN_CONFIDENCE, field_images
    from labelcast.receiver.receive import ReceiveConfig, _adapted

    store = _store(tmp_path / "ref")
    pp = Preprocess(8, 1)
    field = _field([0, 1, 2, 3])

    class Fixed(torch.nn.Module):  # the same posterior for every item: top class 0 at probability ``top``
        def __init__(self, top: float) -> None:
            super().__init__()
            self.p = torch.tensor([top, *([(1 - top) / 3] * 3)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(self.p).expand(x.shape[0], 4)

    targets = np.repeat(np.arange(4), 25)
    for top, adapted in ((0.9, True), (PRIOR_MIN_CONFIDENCE - 0.1, False)):
        report: dict = {}
        out = _adapted(Fixed(top), targets, 4, pp, ReceiveConfig(field=field), field_images(field, store), report)
        f = report["field"]
        assert f["prior_adapt"] is adapted and f["field_confidence"] == pytest.approx(top, abs=1e-4)
        assert ("logit_bias" in f) is adapted and ("EM is not trusted" in f.get("why", "")) is not adapted
        assert isinstance(out, torch.nn.Sequential) is adapted
