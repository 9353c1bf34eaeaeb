"""The semi-supervised round: what it draws from the store, when it runs, and that `--semi off` is today's path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
from labelcast.receiver import semi as semi_mod
from labelcast.receiver.receive import ReceiveConfig, _student_config, receive
from labelcast.receiver.semi import SemiConfig, knn_graph, propagate, semi_decision, unlabelled_pool
from labelcast.receiver.train import StudentConfig
from tests.conftest import signed_payload
from tests.receiver.test_watch import learnable_store

FAST = StudentConfig(train_samples=800, min_epochs=1)


def _payload(tmp: Path, k: int = 40, val_every: int = 5):
    store, y = learnable_store(tmp / "ref")
    priv, pub = generate_keypair(tmp / "keys")
    idx = np.sort(np.random.default_rng(0).choice(store.n, k, replace=False))
    data = signed_payload(store, load_private_key(priv), idx, y[idx], 4, segments=None, hints={"val_every": val_every})
    (tmp / "p.lcst").write_bytes(data)
    return store, y, idx, TrustSet.from_files(pub)


def test_pool_is_seeded_and_excludes_what_it_is_told():
    ex = np.array([0, 5, 9, 100])
    a = unlabelled_pool(200, ex, 50, 7)
    assert np.array_equal(a, unlabelled_pool(200, ex, 50, 7)) and not np.array_equal(a, unlabelled_pool(200, ex, 50, 8))
    assert a.size == 50 and np.all(np.diff(a) > 0) and not set(a) & set(ex)
    assert np.array_equal(unlabelled_pool(10, ex, 50, 7), [1, 2, 3, 4, 6, 7, 8])  # a small store: all the rest


def test_propagation_follows_the_graph():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.05, (30, 4)) + [1, 0, 0, 0], rng.normal(0, 0.05, (30, 4)) + [0, 1, 0, 0]
    f = np.concatenate([a, b]).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    seeds = np.zeros((60, 2))
    seeds[0, 0] = seeds[30, 1] = 1  # one label per cluster
    z = propagate(*knn_graph(f, 5), seeds, 0.99, 30, 3.0)
    assert np.array_equal(z.argmax(1), np.repeat([0, 1], 30))


def test_the_graph_is_the_exact_k_nearest_and_propagation_the_dense_formula():
    """knn_graph against a full sort of the cosine matrix; propagate against the dense matrix iteration."""
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2500, 16)).astype(np.float32)  # over two similarity blocks
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    idx, sim = knn_graph(f, 7)
    s = f @ f.T
    np.fill_diagonal(s, -np.inf)
    want = np.argsort(-s, axis=1, kind="stable")[:, :7]
    assert all(set(a) == set(b) for a, b in zip(idx, want, strict=True))
    assert np.allclose(sim, np.take_along_axis(s, idx, 1), atol=1e-5) and np.all(np.diff(sim, axis=1) <= 0)
    n, k = 300, 5
    idx, sim = knn_graph(f[:n], k)
    seeds = np.zeros((n, 3))
    seeds[np.arange(12), np.arange(12) % 3] = 1
    w = np.zeros((n, n))
    np.add.at(w, (np.repeat(np.arange(n), k), idx.ravel()), np.maximum(sim, 0).astype(np.float64).ravel() ** 3)
    w += w.T
    d = 1 / np.sqrt(w.sum(1))
    z = seeds.copy()
    for _ in range(20):
        z = 0.99 * d[:, None] * (w @ (d[:, None] * z)) + seeds
    assert np.allclose(propagate(idx, sim, seeds, 0.99, 20, 3.0), z, rtol=1e-10, atol=1e-12)


def test_decision():
    assert semi_decision("off", {"semi": True}, 10, 10, "image") == (False, "--semi off")
    assert semi_decision("on", {}, 10_000, 10, "image")[0]
    assert semi_decision("auto", {"semi": False}, 10, 10, "image")[0] is False
    assert semi_decision("auto", {}, 10 * semi_mod.AUTO_MAX_PER_CLASS, 10, "vector")[0]
    assert not semi_decision("auto", {}, 10 * semi_mod.AUTO_MAX_PER_CLASS + 10, 10, "image")[0]
    small = semi_decision("auto", {}, 10, 10, "image", semi_mod.AUTO_MIN_STORE - 1)
    assert small[0] is False and "store" in small[1]
    assert semi_decision("auto", {"semi": True}, 10, 10, "text", 100)[0]  # the sender's hint wins
    with pytest.raises(ValueError, match="semi must be"):
        semi_decision("sometimes", {}, 10, 10, "image")
    with pytest.raises(ValueError):
        SemiConfig(alpha=1.0)


def test_pool_never_holds_payload_items_nor_held_back_ones(tmp_path, monkeypatch):
    store, y, idx, trust = _payload(tmp_path)
    seen = {}
    real = semi_mod.unlabelled_pool

    def spy(n, exclude, size, seed, weights=None):
        seen["pool"] = real(n, exclude, size, seed, weights)
        return seen["pool"]

    monkeypatch.setattr(semi_mod, "unlabelled_pool", spy)
    cfg = ReceiveConfig(student=FAST, semi="on", semi_recipe=SemiConfig(pool=2000, fraction=0.5))
    rep = receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", cfg, state_dir=tmp_path / "st")
    held_back = idx[4::5]
    assert rep["semi"]["ran"] and rep["validation"]["items"] == held_back.size == 8
    assert seen["pool"].size == store.n - idx.size and not set(seen["pool"]) & set(idx)
    assert rep["semi"]["pool_items"] == seen["pool"].size and 0 < rep["semi"]["kept"] <= seen["pool"].size
    assert rep["semi"]["held_back_round2"] is not None and rep["semi"]["round2"]["items"] > 32
    # the report says what ran: an image store's gradients view, its recipe filled where the config left None
    assert rep["semi"]["recipe"] == {"view": "gradients", "propagation_weight": 0.8, "mass_keep": 0.7, "fraction": 0.5}


def test_graph_view_per_store_kind():
    img, vec, txt = np.zeros((2, 8, 8), np.uint8), np.zeros((2, 4), np.float32), np.array(["a b", "c"], dtype=object)
    assert [semi_mod.graph_view(SemiConfig(), x) for x in (img, vec, txt)] == ["gradients", "input", "student"]
    assert semi_mod.graph_view(SemiConfig(text_input=True), txt) == "input"
    assert semi_mod.graph_view(SemiConfig(features="both"), img) == "both"
    assert SemiConfig().resolved(vec) == SemiConfig(propagation_weight=0.5, mass_keep=1.0, fraction=0.5)
    assert SemiConfig(features="input").resolved(img).mass_keep == 1.0  # the gradients recipe needs its view
    assert SemiConfig().resolved(img).mass_keep == 0.7
    assert (SemiConfig().pool_size(img), SemiConfig().pool_size(txt)) == (20_000, 10_000)


def test_semi_off_is_todays_student_bit_for_bit(tmp_path, monkeypatch):
    """`--semi off` trains exactly what the device trained before the semi-supervised round existed: the
    round-1 student, weights equal to a plain `train_student` on the rebuilt set."""
    from labelcast.codec.preprocess import Preprocess
    from labelcast.receiver.receive import read_input, verify_and_decode
    from labelcast.receiver.train import train_student
    from labelcast.receiver.trainset import training_set

    store, y, idx, trust = _payload(tmp_path)
    monkeypatch.setattr(semi_mod, "semi_round", lambda *a, **k: pytest.fail("semi ran with --semi off"))
    cfg = ReceiveConfig(student=FAST, semi="off")
    rep = receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", cfg, state_dir=tmp_path / "st")
    assert rep["semi"] == {"ran": False, "why": "--semi off"}
    got = torch.load(next((tmp_path / "st" / "chains").rglob("model-*.pt")), weights_only=True)

    data, _ = read_input(tmp_path / "p.lcst")
    p, x, step = verify_and_decode(data, store, trust, None, None, None, True, None)
    ts = training_set(p, x, store.manifest.item_shape, True, step.labelled)
    pp = Preprocess(size=(8, 8), channels=1, mean=(0.0,), std=(1.0,))
    from labelcast.profiles import load_device

    model, _ = train_student(ts.x, ts.targets, 4, pp, load_device("cpu-small"), _student_config(cfg, p.hints, store))
    want = model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_a_dry_run_plans_the_round_and_counts_its_memory(tmp_path):
    store, y, idx, trust = _payload(tmp_path)
    cfg = ReceiveConfig(student=FAST, semi="on", semi_recipe=SemiConfig(pool=500))
    plan = receive(tmp_path / "p.lcst", store, trust, None, cfg, state_dir=tmp_path / "st", dry_run=True)
    sp = plan["would_train"]["semi"]
    assert sp["runs"] and sp["why"] == "--semi on" and sp["pool_items"] == 500
    from labelcast.receiver.students import build_student

    dim = semi_mod.semi_feature_dim(build_student("cnn-small", 1, 4, (8, 8)))
    assert sp["estimated_bytes"] == semi_mod.semi_memory(500, idx.size - 8, 64, dim, 4, SemiConfig(pool=500))
    off = receive(tmp_path / "p.lcst", store, trust, None, ReceiveConfig(), state_dir=tmp_path / "st", dry_run=True)
    assert off["would_train"]["semi"] == {"runs": False, "why": "auto: the image store holds 1,200 items < 5,000"}


def test_the_pool_shrinks_to_fit_half_the_profile():
    kw = dict(labelled=300, item_bytes=784, feature_dim=64, classes=10, cfg=SemiConfig())
    assert semi_mod.fitting_pool(20_000, 60_000, 4 << 30, **kw) == 20_000
    small = semi_mod.fitting_pool(20_000, 60_000, 64 << 20, **kw)
    assert 100 < small < 20_000 and semi_mod.semi_memory(small, **kw) <= 32 << 20


def test_the_devices_field_captures_join_the_pool_first(tmp_path, monkeypatch):
    """`receive --field` with a semi round: the captures are pseudo-labelled beside the store items (all of them
    when they fit, evenly spaced when not), the store fills the rest, the pool's size is unchanged."""
    from types import SimpleNamespace

    from labelcast.codec.preprocess import Preprocess

    store, y = learnable_store(tmp_path / "ref")
    idx = np.arange(0, 40)
    captures = np.full((300, 8, 8, 1), 7, np.uint8)  # marked: no store item is constant 7
    seen: list[np.ndarray] = []
    real = semi_mod.pseudo_labels

    def spy(model, x_lab, y_lab, x_pool, *a, **kw):
        seen.append(x_pool)
        return real(model, x_lab, y_lab, x_pool, *a, **kw)

    monkeypatch.setattr(semi_mod, "pseudo_labels", spy)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    args = (store.read(idx), y[idx], store, idx, 4, Preprocess(8, 1), SimpleNamespace(budget_bytes=1 << 30), FAST)
    trainer = lambda x, t, c, **kw: (model, {"items": len(x)})  # noqa: E731  the round's set, not its training
    for pool, want in ((500, 300), (200, 200)):
        _, info = semi_mod.semi_round(
            model, *args, SemiConfig(pool=pool), seed=1, field=captures, trainer=trainer, root=store.root
        )
        marked = (seen[-1] == 7).all(axis=(1, 2, 3))
        assert len(seen[-1]) == pool and marked.sum() == info["field_items"] == want and marked[:want].all()
        assert info["pool_items"] == pool


def test_the_field_pool_draws_store_items_by_the_devices_own_sketch(tmp_path):
    """``SemiConfig.field_pool``: a group's odds are its share of the device's captures, tempered as the sender's
    quota is, so a group the field never meets keeps a floor; the draw follows them."""
    from labelcast.codec.field import FIELD_FLOOR
    from labelcast.receiver.receive import _field_pool_weights
    from tests.codec.test_field import _field, _store

    store = _store(tmp_path / "ref", per=50)  # 32 groups of 50
    w = _field_pool_weights(_field([3, 4]), store)
    groups = np.asarray(store.manifest.groups, dtype=np.int64)
    per_group = np.bincount(groups, weights=w)
    assert np.isclose(w.sum(), 1) and np.allclose(per_group[[0, 10, 31]], FIELD_FLOOR / 32)
    assert per_group[3] + per_group[4] > 0.7  # (1 − floor) of the odds, less the sketch's 4-bit rounding
    pool = unlabelled_pool(store.n, np.zeros(0, np.int64), 100, 5, w)
    assert np.isin(groups[pool], [3, 4]).mean() > 0.5  # against 1/16 of an even draw


def test_under_auto_round_2_waits_for_propagation_to_agree_with_the_student(tmp_path, monkeypatch):
    """``SemiConfig.min_agreement``: where propagation and the round-1 student disagree on most of the pool (a far
    pool) the rule's round keeps the round-1 model and says why; ``--semi on`` (no guard) trains round 2."""
    from types import SimpleNamespace

    from labelcast.codec.preprocess import Preprocess

    store, y = learnable_store(tmp_path / "ref")
    idx = np.arange(0, 40)
    real = semi_mod.pseudo_labels

    def disagreeing(*a, **kw):
        pos, t, info = real(*a, **kw)
        return pos, t, {**info, "propagation_agrees_with_student": 0.3}

    monkeypatch.setattr(semi_mod, "pseudo_labels", disagreeing)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    trained = []
    trainer = lambda x, t, c, **kw: (trained.append(len(x)) or "round 2", {"items": len(x)})  # noqa: E731
    args = (store.read(idx), y[idx], store, idx, 4, Preprocess(8, 1), SimpleNamespace(budget_bytes=1 << 30), FAST)
    kw = dict(seed=1, trainer=trainer, root=store.root)
    out, info = semi_mod.semi_round(model, *args, SemiConfig(pool=300), guard=True, **kw)
    assert out is model and not info["ran"] and "30%" in info["why"] and not trained
    out, info = semi_mod.semi_round(model, *args, SemiConfig(pool=300, min_agreement=0.25), guard=True, **kw)
    assert out == "round 2" and info["ran"] and len(trained) == 1
    out, info = semi_mod.semi_round(model, *args, SemiConfig(pool=300), guard=False, **kw)
    assert out == "round 2" and info["ran"] and len(trained) == 2


def test_round_2_is_a_share_of_the_images_round_1_actually_saw(tmp_path):
    """``SemiConfig.fraction`` is of what round 1 saw: a few labels capped by ``max_epochs`` see fewer images than
    ``train_samples`` asks, and round 2 follows them, not the larger figure."""
    from types import SimpleNamespace

    from labelcast.codec.preprocess import Preprocess

    store, y = learnable_store(tmp_path / "ref")
    idx = np.arange(0, 40)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    asked = []
    trainer = lambda x, t, c, **kw: (asked.append(c.train_samples) or model, {"items": len(x)})  # noqa: E731
    args = (store.read(idx), y[idx], store, idx, 4, Preprocess(8, 1), SimpleNamespace(budget_bytes=1 << 30))
    sc = replace(FAST, train_samples=100_000)
    cfg = SemiConfig(pool=300, fraction=0.5)
    for seen, want in ((None, 50_000), (12_000, 6_000), (400_000, 50_000)):
        semi_mod.semi_round(model, *args, sc, cfg, seed=1, trainer=trainer, root=store.root, seen=seen)
        assert asked[-1] == want


@pytest.mark.parametrize("device", ["jetson-nano-4gb", "jetson-orin-nano-8gb", "jetson-agx-orin-64gb"])
def test_a_gpu_profile_plans_the_same_round_within_its_own_memory(tmp_path, device):
    """The round's code path is the same on a GPU profile: its pool and memory plan follow that profile's budget
    (the selection logic, checked on CPU; the training itself runs where the profile's accelerator is)."""
    from labelcast.profiles import load_device
    from labelcast.receiver.students import build_student

    store, y, idx, trust = _payload(tmp_path)
    cfg = ReceiveConfig(device=device, student=FAST, semi="on")
    plan = receive(tmp_path / "p.lcst", store, trust, None, cfg, state_dir=tmp_path / "st", dry_run=True)
    sp, budget = plan["would_train"]["semi"], load_device(device).budget_bytes
    dim = semi_mod.semi_feature_dim(build_student(plan["would_train"]["arch"], 1, 4, (8, 8)))
    kw = dict(labelled=idx.size - 8, item_bytes=64, feature_dim=dim, classes=4, cfg=SemiConfig())
    assert sp["runs"] and sp["pool_items"] == semi_mod.fitting_pool(20_000, store.n - idx.size, budget, **kw)
    assert sp["estimated_bytes"] <= budget // 2


def test_a_field_source_the_device_cannot_read_fails_before_any_training(tmp_path, monkeypatch):
    """`receive --field` reads the captures once, before training: a source it cannot read is a SourceError
    that costs no training and leaves no student behind."""
    from labelcast.codec.errors import SourceError
    from labelcast.receiver import train as train_mod

    store, _, _, trust = _payload(tmp_path)

    def trained(*a, **kw):
        raise AssertionError("the device trained before reading its field")

    monkeypatch.setattr(train_mod, "train_student", trained)
    cfg = ReceiveConfig(student=FAST, field=tmp_path / "no-such-captures")
    with pytest.raises(SourceError):
        receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", cfg, state_dir=tmp_path / "st")
    assert not (tmp_path / "out" / "student.onnx").exists()


def test_mass_keep_drops_the_pool_items_the_labels_do_not_reach():
    """Two labelled clusters and a third the payload labels nowhere: with ``mass_keep`` the round keeps the items
    propagation links to the labels, and the unreached cluster is what it drops."""
    from labelcast.codec.preprocess import Preprocess

    rng = np.random.default_rng(3)

    def cluster(value: int, n: int) -> np.ndarray:
        base = np.zeros((n, 8, 8, 1), np.float64)
        base[:, value % 8, :, 0] = 200.0  # a bright row each cluster puts in its own place
        return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)

    x_lab = np.concatenate([cluster(1, 5), cluster(5, 5)])
    y_lab = np.repeat([0, 1], 5)
    x_pool = np.concatenate([cluster(1, 60), cluster(5, 60), cluster(3, 60)])  # the last: no label reaches it
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    pp = Preprocess((8, 8), 1)
    base = SemiConfig(input_dims=16, neighbours=5, mass_keep=1.0)
    pos_all, _, _ = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, base)
    pos, _, info = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, replace(base, mass_keep=2 / 3))
    assert pos_all.size == 180 and pos.size == info["kept"] <= 121
    assert np.mean(pos < 120) > 0.9  # what is kept is the labelled clusters' items
    dropped = np.setdiff1d(np.arange(180), pos)
    assert dropped.size >= 59 and np.mean(dropped >= 120) > 0.9  # what is dropped is the unreached cluster
    with pytest.raises(ValueError):
        SemiConfig(mass_keep=0)


def _clusters(seed: int = 3):
    from labelcast.codec.preprocess import Preprocess

    rng = np.random.default_rng(seed)

    def cluster(value: int, n: int) -> np.ndarray:
        base = np.zeros((n, 8, 8, 1), np.float64)
        base[:, value % 8, :, 0] = 200.0
        return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)

    x_lab = np.concatenate([cluster(1, 5), cluster(5, 5)])
    x_pool = np.concatenate([cluster(1, 60), cluster(5, 60)])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    return x_lab, np.repeat([0, 1], 5), x_pool, model, Preprocess((8, 8), 1)


def test_agree_only_keeps_just_the_items_propagation_and_the_student_agree_on():
    x_lab, y_lab, x_pool, model, pp = _clusters()
    cfg = SemiConfig(input_dims=16, neighbours=5, features="input", mass_keep=1.0, propagation_weight=0.5)
    pos_all, _, info = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, cfg)
    pos, lab, _ = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, replace(cfg, agree_only=True))
    agree = info["propagation_agrees_with_student"]
    assert pos_all.size == 120 and 0 < pos.size == round(agree * 120) < 120  # an untrained student disagrees
    student = semi_mod.embed(model, x_pool, pp)[1].argmax(1)
    assert np.array_equal(lab, student[pos])  # every kept item: the student's class, which propagation shares
    # propagation alone (weight 1) labels each cluster by its own labels; this untrained student gets them all wrong
    sharp = replace(cfg, input_dims=4)
    for w, want in ((1.0, 1.0), (0.0, 0.0)):
        p1, lab1, _ = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, replace(sharp, propagation_weight=w))
        assert np.mean(lab1 == np.repeat([0, 1], 60)[p1]) == want


def test_features_both_and_flip_views_change_only_what_they_say():
    x_lab, y_lab, x_pool, model, pp = _clusters()
    cfg = SemiConfig(input_dims=4, neighbours=5, propagation_weight=1.0, features="input", mass_keep=1.0)
    for variant in (replace(cfg, features="both"), replace(cfg, flip_views=True)):
        pos, lab, _ = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, variant, flip=True)
        assert pos.size == 120 and np.mean(lab == np.repeat([0, 1], 60)) >= 0.9
    # flip_views averages the student's posteriors of each image and its mirror: a student that only looks at the
    # left half then sees both halves; without the task's flip permission it is the plain student's
    w = torch.zeros(2, 64)
    w[0, [r * 8 + c for r in range(8) for c in range(4)]] = 1.0
    half = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    with torch.no_grad():
        half[1].weight.copy_(w)
        half[1].bias.zero_()
    x = np.zeros((4, 8, 8, 1), np.uint8)
    x[:, :, 6:, 0] = 255  # bright only on the right
    plain = semi_mod.embed(half, x, pp)[1]
    args = (half, x[:2], np.array([0, 1]), x[2:], pp, 2, replace(cfg, flip_views=True, propagation_weight=0.0))
    _, soft_off, _ = semi_mod.pseudo_labels(*args[:6], replace(args[6], targets="soft"), flip=False)
    _, soft_on, _ = semi_mod.pseudo_labels(*args[:6], replace(args[6], targets="soft"), flip=True)
    sharp = plain[2:] ** 2
    assert np.allclose(soft_off, sharp / sharp.sum(1, keepdims=True), atol=1e-6)
    assert not np.allclose(soft_on, soft_off, atol=1e-3)  # the mirror puts the bright half under the student
    with pytest.raises(ValueError):
        SemiConfig(propagation_weight=1.5)
    with pytest.raises(ValueError):
        SemiConfig(features="pixels")
    with pytest.raises(ValueError):
        SemiConfig(erase=2.0)


def test_random_erase_is_a_function_of_its_stream_and_stays_inside_the_image():
    from labelcast.receiver.train import random_erase

    xb = torch.ones(64, 1, 28, 28)
    a = random_erase(xb, 0.5, np.random.default_rng(7))
    b = random_erase(xb, 0.5, np.random.default_rng(7))
    assert torch.equal(a, b)  # a resumed step erases the same pixels
    erased = (a == 0).flatten(1).float().mean(1)
    hit = erased > 0
    assert 16 <= int(hit.sum()) <= 48  # about half the images
    assert bool(((erased[hit] >= 0.01) & (erased[hit] <= 0.3)).all())  # 2–25 % of the area, rounded to pixels
    assert torch.equal(random_erase(xb, 0.0, np.random.default_rng(7)), xb)


def test_a_text_store_draws_the_text_pool_and_an_image_store_the_image_pool(monkeypatch):
    from types import SimpleNamespace

    from labelcast.profiles import load_device

    wanted: list[int] = []

    class Stop(Exception):
        pass

    def capture(want, *_a, **_k):
        wanted.append(want)
        raise Stop

    monkeypatch.setattr(semi_mod, "fitting_pool", capture)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    cfg = SemiConfig(pool=700, text_pool=300)
    store = SimpleNamespace(n=1000)
    texts = np.array(["a b", "c d"], dtype=object)
    images = np.zeros((2, 2, 2, 1), np.uint8)
    for x in (texts, images):
        with pytest.raises(Stop):
            semi_mod.semi_round(model, x, np.array([0, 1]), store, np.arange(2), 2, None, load_device("cpu-small"),
                                FAST, cfg, seed=0)  # fmt: skip
    assert wanted == [300, 700]
    assert SemiConfig().text_pool < SemiConfig().pool  # chosen on validation: docs/results.md "Semi-supervised"


def test_gradient_features_are_fixed_size_deterministic_and_see_orientation_not_brightness():
    rng = np.random.default_rng(5)

    def stripes(n: int, vertical: bool, size: int = 28) -> np.ndarray:
        period = rng.integers(4, 8, n)[:, None]
        phase = rng.integers(0, 8, n)[:, None]
        wave = (((np.arange(size)[None, :] + phase) // (period // 2)) % 2) * 180 + 30  # n × size
        img = np.repeat(wave[:, None, :], size, axis=1) if vertical else np.repeat(wave[:, :, None], size, axis=2)
        return np.clip(img + rng.normal(0, 5, img.shape), 0, 230).astype(np.uint8)

    x = np.concatenate([stripes(40, True), stripes(40, False)])
    h = semi_mod.gradient_histograms(x)
    assert h.shape == (80, 3600) and h.dtype == np.float32
    colour = np.repeat(stripes(3, True, 32)[..., None], 3, axis=3)
    assert semi_mod.gradient_histograms(colour).shape == (3, 3600)  # any image size, grey or colour: same dims
    brighter = np.clip(x.astype(np.int64) + 20, 0, 255).astype(np.uint8)
    assert np.allclose(semi_mod.gradient_histograms(brighter), h, atol=0.05)  # an offset moves no gradient
    f = semi_mod.gradient_features(x, 16)
    assert f.shape == (80, 16) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-4)
    assert np.array_equal(f, semi_mod.gradient_features(x, 16))  # a seeded randomised PCA: the same every run
    idx, _ = knn_graph(f, 5)
    same = (idx < 40) == (np.arange(80) < 40)[:, None]
    assert same.mean() > 0.95  # stripes find stripes of their own orientation, whatever their phase and period
    assert semi_mod.gradient_features(x[:0], 16).shape == (0, 16)
    # on an image store the round's default view is the gradients; the same call with features="input" differs
    x_lab, y_lab, x_pool, model, pp = _clusters()
    cfg = SemiConfig(input_dims=4, neighbours=5, propagation_weight=1.0, mass_keep=1.0)
    pos, lab, _ = semi_mod.pseudo_labels(model, x_lab, y_lab, x_pool, pp, 2, cfg)
    assert pos.size == 120 and np.mean(lab == np.repeat([0, 1], 60)) >= 0.9
