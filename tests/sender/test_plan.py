"""The planner and hybrid payloads (issue #20): the choice is the best prediction (the first candidate in
prior order within one standard error of the argmax), the chosen
payload fits the framed budget, exemplars reach the device's training set and never touch its store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.manifest import ReferenceStore
from tests.conftest import run_cli

torch = pytest.importorskip("torch")


def _scene(tmp: Path):
    """A far-pool task: 4 classes of bright-bar images the pool does not contain (it holds noise)."""
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 80, (1500, 16, 16), dtype=np.uint8)
    np.save(tmp / "pool.npy", pool)
    y = np.arange(400) % 4
    x = rng.integers(0, 40, (400, 16, 16), dtype=np.uint8)
    for i, c in enumerate(y):
        x[i, 2 + 3 * c : 5 + 3 * c, 2:14] = 220
    np.save(tmp / "target.npy", x)
    np.save(tmp / "target-labels.npy", y)
    assert run_cli("reference", "build", "npy:pool.npy", "--out", "ref", cwd=tmp)[0] == 0
    assert run_cli("keygen", "--out", "keys", cwd=tmp)[0] == 0
    code, _, err = run_cli(
        "teacher", "train", "--data", "npy:target.npy", "--out", "t.onnx", "--epochs", "20", "--width", "8", cwd=tmp
    )
    assert code == 0, err


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_send_plan_reports_every_candidate_and_sends_the_best_within_the_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("LABELCAST_CACHE_DIR", str(tmp_path / "cache"))
    _scene(tmp_path)
    args = [
        "send",
        "--teacher",
        "t.onnx",
        "--reference",
        "ref",
        "--key",
        "keys/sender.key",
        "--budget",
        "1350",
        "--target",
        "npy:target.npy",
        # the plan's shape, choice rule, budget and cache are what is checked here, not how long each simulated
        # student trains: short simulations and a short distillation (the bench runs the defaults)
        "--plan-train-samples",
        "3000",
        "--distill-iters",
        "50",
        "--json",
    ]
    code, out, err = run_cli(*args, "--out", "outbox", cwd=tmp_path)
    assert code == 0, err
    rep = json.loads(out.splitlines()[-1])
    plan = rep["plan"]
    names = [c["name"] for c in plan["candidates"]]
    assert any(n.startswith("labels:") for n in names) and any(n.startswith("hybrid:") for n in names)
    assert "exemplars only" in names
    scored = [c for c in plan["candidates"] if c["predicted_accuracy"] is not None]
    top = max(c["predicted_accuracy"] for c in scored)
    se = (top * (1 - top) / plan["validation_items"]) ** 0.5
    best = next(c for c in scored if c["predicted_accuracy"] >= top - se - 1e-12)  # first in prior order
    assert plan["choice"] == best["name"] and rep["auto"]["chose"] == best["name"]
    assert plan["predicted_accuracy"] == best["predicted_accuracy"] >= top - se - 1e-12
    assert rep["framed_bytes"] <= 1350 and rep["payload_bytes"] == best["payload_bytes"]
    assert all(c["framed_bytes"] is None or c["framed_bytes"] <= 1350 for c in plan["candidates"])
    # the same plan again comes from the cache, with the same choice and payload size
    code, out, _ = run_cli(*args, "--out", "outbox2", cwd=tmp_path)
    again = json.loads(out.splitlines()[-1])
    assert again["plan"]["cached"] and again["plan"]["choice"] == plan["choice"]
    assert again["payload_bytes"] == rep["payload_bytes"]


@pytest.mark.slow
def test_the_same_send_on_a_loaded_machine_writes_the_same_payload_bytes(tmp_path):
    """The planner is bounded by work, not by the clock: a second run beside two CPU-bound processes (and
    with its own plan cache, so it plans again) writes byte for byte the payload of the first."""
    import subprocess
    import sys

    from labelcast import LinkSettings, PlanConfig, PlanSettings, SendConfig, send

    _scene(tmp_path)
    plan = PlanConfig(train_samples=500, distill_iters=5, distill_ipc=4, candidates=4)  # labels, DM, exemplars, hybrid
    target = (np.load(tmp_path / "target.npy")[..., None], np.load(tmp_path / "target-labels.npy"), list("abcd"))

    def run(name: str) -> bytes:
        cfg = SendConfig(
            link=LinkSettings(budget=1350),
            plan=PlanSettings(target=target, config=PlanConfig(**{**plan.__dict__, "cache_dir": tmp_path / name})),
            sequence=1,
        )
        rep = send(tmp_path / "t.onnx", tmp_path / "ref", tmp_path / "keys/sender.key", tmp_path / name, cfg, now=1e9)
        assert rep["plan"]["cached"] is False and rep["plan"]["choice"]
        return (tmp_path / name / "payload.lcst").read_bytes()

    quiet = run("idle")
    burn = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = run("loaded")
    finally:
        for p in burn:
            p.kill()
    assert loaded == quiet


def test_without_target_data_auto_says_the_planner_is_off(tmp_path):
    _scene(tmp_path)
    code, out, err = run_cli(
        "send",
        "--teacher",
        "t.onnx",
        "--reference",
        "ref",
        "--key",
        "keys/sender.key",
        "--budget",
        "1350",
        "--out",
        "o",
        "--json",
        cwd=tmp_path,
    )
    assert code == 0, err
    assert "no --target" in json.loads(out.splitlines()[-1])["auto"]["planner"]
    code, _, err = run_cli(
        "send",
        "--teacher",
        "t.onnx",
        "--reference",
        "ref",
        "--key",
        "keys/sender.key",
        "--plan",
        "--out",
        "o2",
        cwd=tmp_path,
    )
    assert code == 2 and "--target" in err


def test_a_hybrid_payload_trains_on_labels_and_exemplars_and_leaves_the_store_alone(tmp_path):
    import time

    from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
    from labelcast.codec.payload import build_payload
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.receiver.train import StudentConfig
    from labelcast.sender.exemplars import make_exemplars
    from tests.conftest import make_store

    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    before = (tmp_path / "ref" / "items.u8").read_bytes()
    priv, pub = generate_keypair(tmp_path / "keys")
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (12, 8, 8, 1), dtype=np.uint8)
    ex = make_exemplars(imgs, np.arange(12) % 3, "png", 0)
    data, sizes = build_payload(
        np.arange(0, 300, 10),
        np.arange(30) % 3,
        n_items=300,
        classes=3,
        root=store.root,
        key=load_private_key(priv),
        sequence=1,
        expires_at=int(time.time()) + 600,
        exemplars=ex,
    )
    assert sizes["exemplars"] > 0
    (tmp_path / "p.lcst").write_bytes(data)
    rep = receive(
        tmp_path / "p.lcst",
        store,
        TrustSet.from_files([pub]),
        tmp_path / "dev",
        ReceiveConfig(student=StudentConfig(train_samples=300)),
        state_dir=tmp_path / "state",
    )
    ts = rep["training"]["training_set"]
    assert rep["exemplars"] == 12 and ts == {
        "reference_items": 30,
        "held_back": 0,
        "exemplars": 12,
        "exemplar_repeats": 3,
    }
    assert rep["training"]["items"] == 30 + 12 * 3
    assert (tmp_path / "ref" / "items.u8").read_bytes() == before


def test_an_exemplars_only_payload_trains_through_receive(tmp_path):
    """The planner may send no labels at all ("exemplars only", "distilled only"): the device trains on the
    exemplars alone through the real receive (an empty read of the store is no error)."""
    import time

    from labelcast.codec.keys import TrustSet, generate_keypair, load_private_key
    from labelcast.codec.payload import build_payload
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.receiver.train import StudentConfig
    from labelcast.sender.exemplars import make_exemplars
    from tests.conftest import make_store

    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    assert store.read(np.zeros(0, np.int64)).shape == (0, *store.manifest.item_shape)
    priv, pub = generate_keypair(tmp_path / "keys")
    imgs = np.random.default_rng(1).integers(0, 255, (12, 8, 8, 1), dtype=np.uint8)
    data, _ = build_payload(
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        n_items=300,
        classes=3,
        root=store.root,
        key=load_private_key(priv),
        sequence=1,
        expires_at=int(time.time()) + 600,
        exemplars=make_exemplars(imgs, np.arange(12) % 3, "png", 0),
    )
    (tmp_path / "p.lcst").write_bytes(data)
    rep = receive(
        tmp_path / "p.lcst",
        store,
        TrustSet.from_files([pub]),
        tmp_path / "dev",
        ReceiveConfig(student=StudentConfig(train_samples=300)),
        state_dir=tmp_path / "state",
    )
    assert rep["training"]["training_set"]["reference_items"] == 0 and rep["exemplars"] == 12
    assert (tmp_path / "dev" / "student.onnx").is_file()


def test_a_v1_payload_from_the_previous_release_opens_and_trains_unchanged(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from labelcast.codec.keys import TrustSet, key_id
    from labelcast.receiver.receive import ReceiveConfig, receive
    from labelcast.receiver.train import StudentConfig
    from tests.conftest import make_store

    store = ReferenceStore(make_store(tmp_path / "ref"))
    assert store.root.hex() == "54068a267c0aa1f29233b4435cc6db3bf254bf7bd872b922d724fd75cec64242"
    pub = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    data = (Path(__file__).parents[1] / "data" / "v1-payload.lcst").read_bytes()
    rep = receive(
        data and Path(__file__).parents[1] / "data" / "v1-payload.lcst",
        store,
        TrustSet({key_id(pub): pub}),
        tmp_path / "dev",
        ReceiveConfig(student=StudentConfig(train_samples=300)),
        state_dir=tmp_path / "s",
    )
    assert rep["format_version"] == 1 and rep["selected_items"] == 120 and rep["soft_labels"]
    assert rep["validation"]["items"] == 12  # its hint val_every = 10 still holds back every tenth item
    assert (tmp_path / "dev" / "student.onnx").exists()


def test_the_exemplar_codec_is_the_most_images_within_the_proxys_tolerance():
    from labelcast.sender.plan import PROXY_TOLERANCE, pick_exemplar_codec

    cands = [
        {"codec": "webp", "quality": 50, "n": 5, "proxy": 0.568},  # the proxy's favourite, on five images
        {"codec": "webp", "quality": 0, "n": 19, "proxy": 0.556},  # within the tolerance, four times as many
        {"codec": "jpeg", "quality": 5, "n": 30, "proxy": 0.568 - PROXY_TOLERANCE - 0.01},  # more, but too poor
    ]
    assert pick_exemplar_codec(cands)["quality"] == 0
    assert pick_exemplar_codec(cands, tolerance=0.0)["quality"] == 50
    assert pick_exemplar_codec([]) is None


def test_exemplar_candidates_come_before_the_other_label_recipes():
    from labelcast.sender.plan import PlanConfig, _candidates

    far = [c.name for c in _candidates(PlanConfig(), {"far": True})]
    assert far[:4] == ["labels: far", "distilled only", "exemplars only", "hybrid: 90 % distilled + far_easy"]
    assert far[-4:] == ["labels: near", "labels: near_soft", "labels: far_small", "labels: far_easy"]
    near = [c.name for c in _candidates(PlanConfig(), {"far": False})]
    assert near[:4] == ["labels: near", "distilled only", "exemplars only", "hybrid: 25 % distilled + near"]
    # without distillation the hybrids carry the target's own images
    real = [c.name for c in _candidates(PlanConfig(distill_iters=0), {"far": True})]
    assert "distilled only" not in real and real[2] == "hybrid: 90 % exemplars + far_easy"


def test_a_plan_capped_at_one_candidate_tries_one_and_is_not_cached(tmp_path):
    import hashlib
    from types import SimpleNamespace

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from labelcast.profiles import load_device, load_link
    from labelcast.sender.budget import LinkBudget
    from labelcast.sender.plan import PlanConfig, plan_payload, split_target
    from labelcast.sender.selection import SelectConfig
    from labelcast.sender.send import PayloadSpec, Scored

    rng = np.random.default_rng(0)
    pool = rng.integers(0, 255, (400, 8, 8, 1), dtype=np.uint8)
    store = SimpleNamespace(read=lambda idx: pool[np.asarray(idx)], manifest=SimpleNamespace(item_shape=(8, 8, 1)))
    scored = Scored(store, None, rng.normal(size=(400, 3)).astype(np.float32))
    y = np.arange(300) % 3
    target = split_target(rng.integers(0, 255, (300, 8, 8, 1), dtype=np.uint8), y, ["a", "b", "c"], val=60)
    root = hashlib.sha256(b"store").digest()
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    spec = PayloadSpec(key, root, 400, np.array([400]), 1, 2**33)
    budget = LinkBudget(load_link("iridium-sbd-mt"), 1350)
    cfg = PlanConfig(candidates=1, train_samples=500, distill_iters=3, distill_ipc=4, cache_dir=str(tmp_path / "plans"))
    res = plan_payload(scored, spec, budget, target, SelectConfig(strategy="auto"), load_device("cpu-small"), cfg)
    tried = [c for c in res["candidates"] if c["predicted_accuracy"] is not None]
    assert len(tried) == 1 and res["choice"] == tried[0]["name"] == res["candidates"][0]["name"]
    assert all(c["note"].startswith("skipped") for c in res["candidates"][1:])
    assert not list((tmp_path / "plans").glob("*.json"))  # no plan cached (the distilled set may be)
    assert res["distillation"]["iters"] == 3 and target.distilled[0].shape == (12, 8, 8, 1)


def test_the_choice_is_the_argmax_unless_an_earlier_candidate_is_within_one_standard_error():
    from labelcast.codec.errors import BudgetError
    from labelcast.sender.plan import choose_candidate

    def rows(*preds):
        return [{"name": f"c{i}", "predicted_accuracy": p} for i, p in enumerate(preds)]

    # digits at 16 KiB: 0.959 (distilled only) is within sqrt(.964 × .036 / 1000) = 0.0059 of 0.964
    assert choose_candidate(rows(0.727, 0.959, 0.958, 0.964), 1000)["name"] == "c1"
    # a clear gain wins wherever it is in the order; candidates not simulated are passed over
    assert choose_candidate(rows(0.601, None, 0.671, 0.641), 1000)["name"] == "c2"
    assert choose_candidate(rows(0.90, 0.95), 1000)["name"] == "c1"
    # with a larger validation slice the margin shrinks
    assert choose_candidate(rows(0.959, 0.964), 1000)["name"] == "c0"
    assert choose_candidate(rows(0.959, 0.964), 100_000)["name"] == "c1"
    with pytest.raises(BudgetError):
        choose_candidate(rows(None, None), 1000)


def test_the_planner_simulates_the_devices_semi_round_by_the_devices_own_rule(monkeypatch):
    """``_simulate`` runs the device's semi-supervised round exactly when the device would (its rule, the
    payload's hint, ``PlanConfig.semi``), over the plan's pool size, never on an in-memory pool."""
    from types import SimpleNamespace

    from labelcast.receiver import semi
    from labelcast.sender import plan

    calls: list[dict] = []

    def fake_round(model, x, y, store, exclude, classes, pp, profile, sc, rc, seed, root, guard, seen=None):
        calls.append({"pool": rc.pool, "exclude": np.asarray(exclude).tolist(), "guard": guard, "seen": seen})
        return "round-2 model", {}

    monkeypatch.setattr(semi, "semi_round", fake_round)
    store = SimpleNamespace(n=60_000, kind="image", root=b"r" * 32, read=lambda i: None)
    few = SimpleNamespace(x=np.zeros((100, 4, 4, 1), np.uint8), targets=np.arange(100) % 10)
    many = SimpleNamespace(x=np.zeros((1000, 4, 4, 1), np.uint8), targets=np.arange(1000) % 10)

    def sim(ts, store=store, hints=None, **cfg):
        p = SimpleNamespace(hints=hints or {}, indices=np.arange(len(ts.x)))
        return plan._simulate_semi("round-1 model", ts, p, store, 10, None, None, None, plan.PlanConfig(**cfg), 3000)

    assert sim(few) == "round-2 model"  # auto: 10 labelled items per class
    assert calls[-1]["seen"] == 3000  # round 2 is sized by what the simulated round 1 saw, as on the device
    assert calls[-1]["pool"] == plan.PlanConfig().semi_pool and calls[-1]["exclude"] == list(range(100))
    assert calls[-1]["guard"]  # auto's rule: the agreement check after propagation, as on the device
    assert sim(many) == "round-1 model"  # auto: 100 per class is over the device's threshold
    assert sim(many, semi="on") == "round-2 model" and not calls[-1]["guard"]
    assert sim(few, semi="off") == "round-1 model"
    assert sim(few, hints={"semi": False}) == "round-1 model"  # the payload's hint, as on the device
    assert sim(few, store=SimpleNamespace(x=None, read=lambda i: None)) == "round-1 model"  # a bench's in-memory pool
    assert len(calls) == 2


def test_a_field_class_mix_weights_the_planners_validation_accuracy():
    """With a device's field class mix the prediction is the accuracy that device would see: per class,
    weighted by the mix; an even mix is plain accuracy; the choice rule's slice shrinks to its effective size."""
    from labelcast.sender.plan import effective_items, item_weights

    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    right = np.isin(y, [0, 1])  # classes 0 and 1 right, 2 and 3 wrong
    assert np.isclose(item_weights(y, None) @ right, 0.3)
    assert np.isclose(item_weights(y, (0.25, 0.25, 0.25, 0.25)) @ right, 0.5)  # each class counts alike
    assert np.isclose(item_weights(y, (0.5, 0.5, 0.0, 0.0)) @ right, 1.0)  # a device that only meets 0 and 1
    assert np.isclose(item_weights(y, (0.0, 0.0, 0.0, 0.0)) @ right, 0.3)  # nothing to weight by: even
    assert np.isclose(item_weights(y, (0.2, 0.2, 0.2, 0.2, 0.2)).sum(), 1.0)  # a class the slice lacks
    assert effective_items(y, None) == 100
    assert effective_items(y, (0.5, 0.5, 0.0, 0.0)) == 27  # 1 / (10 (0.05)² + 20 (0.025)²) = 26.7


def test_the_plan_cache_key_holds_the_devices_exemplar_share_rule(monkeypatch):
    """A device that mixes exemplars into a hybrid at another share trains another student: no cached plan of
    the old rule is reused, and the repeats follow the share."""
    from dataclasses import make_dataclass
    from types import SimpleNamespace

    from labelcast.profiles import load_device
    from labelcast.receiver import trainset
    from labelcast.sender import plan as P
    from labelcast.sender.selection import SelectConfig

    link = make_dataclass("Link", [("name", str)])("iridium-sbd-mt")
    budget = SimpleNamespace(budget_bytes=1024, link=link, delivery=0.99, overhead=0)
    scored = SimpleNamespace(logits=np.zeros((4, 3), np.float32))
    spec = SimpleNamespace(root=b"\0" * 32, class_names=["a", "b", "c"], hints={}, seal_to=None)
    target = SimpleNamespace(digest=lambda: "t")
    args = (scored, spec, budget, target, P.PlanConfig(), load_device("cpu-small"), SelectConfig("auto"), (4, 2, 2.0))
    half = P._key(*args)
    assert trainset.exemplar_repeats(300, 20) == 15 and trainset.exemplar_repeats(10, 20) == 1
    monkeypatch.setattr(trainset, "EXEMPLAR_SHARE", 0.75)
    assert P._key(*args) != half
    assert trainset.exemplar_repeats(300, 20) == 45  # three times the labels: ¾ of the images
