"""What a signed payload can still ask of the device (#32): its hints choose among the device's registered
students only, each with a type and a range; the memory its training set takes is checked against the
device profile before any of it is allocated; a training run past the profile stops, its checkpoint kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from labelcast.codec.framing import make_frames, write_frames
from labelcast.receiver.hints import HintError, check_hints
from labelcast.receiver.receive import ReceiveConfig, receive
from labelcast.receiver.train import StudentConfig
from labelcast.receiver.watch import WatchConfig, Watcher
from tests.conftest import signed_payload

FAST = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1))


def _payload(store, key, hints: dict) -> bytes:
    data = signed_payload(store, key, np.arange(0, 60), np.arange(60) % 3, 3, hints=hints)
    return data


def test_a_hint_cannot_make_the_device_import_code(store, keys, tmp_path):
    key, trust, _, _ = keys
    sys.modules.pop("tests.receiver.user_student", None)
    data = _payload(store, key, {"student": {"arch": "tests.receiver.user_student:make"}})
    (tmp_path / "p.lcst").write_bytes(data)
    with pytest.raises(HintError, match="student.arch = 'tests.receiver.user_student:make' is not a registered"):
        receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", FAST, state_dir=tmp_path / "st")
    assert "tests.receiver.user_student" not in sys.modules  # never imported
    assert not (tmp_path / "out" / "student.onnx").exists()


@pytest.mark.parametrize(
    "hints",
    [
        {"student": {"train_samples": "lots"}},
        {"student": {"train_samples": 10**12}},
        {"student": {"flip": 1}},
        {"student": {"lr": -0.1}},
        {"student": {"augment": "rotate"}},
        {"student": {"finetune": "last:x"}},
        {"student": "cnn-small"},
        {"val_every": "10"},
        {"val_every": 1},
        {"semi": "yes"},
        {"semi": 1},
    ],
)
def test_a_hint_of_the_wrong_type_or_range_is_a_hint_error(hints):
    with pytest.raises(HintError, match="refused"):
        check_hints(hints)


def test_registered_students_and_sane_values_pass():
    check_hints({"student": {"arch": "resnet8", "flip": False, "lr": 0.01, "finetune": "last:2"}, "val_every": 10})
    check_hints({"semi": False})
    check_hints({"student": {"arch": "fasttext-small", "future_knob": [1, 2]}})  # a newer sender's: ignored


def test_the_watcher_refuses_a_payload_with_a_bad_hint_for_good(store, keys, tmp_path):
    key, trust, _, _ = keys
    write_frames(make_frames(_payload(store, key, {"student": {"arch": "os:system"}}), 64, 34), tmp_path / "in")
    w = Watcher(tmp_path / "in", store, trust, FAST, WatchConfig(once=True), state_dir=tmp_path / "st")
    w.run()
    (rec,) = w.done.values()
    assert rec["outcome"] == "refused" and rec["error"] == "HintError" and "retry_when" not in rec


def test_a_payload_whose_training_set_would_not_fit_is_refused_before_allocating(store, keys, tmp_path, monkeypatch):
    from labelcast.codec.errors import BudgetError
    from labelcast.codec.softlabels import SoftLabels, soft_from_probs

    key, trust, _, _ = keys
    k, classes = 600, 3000  # dense soft targets: 600 × 3,000 cells, ~43 MiB while built
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(classes), k)
    hard = probs.argmax(1)
    data = signed_payload(store, key, np.arange(k), hard, classes, soft=soft_from_probs(probs, hard))
    (tmp_path / "p.lcst").write_bytes(data)
    (tmp_path / "small.toml").write_text('memory_mb = 32\nusable_fraction = 0.5\nprecision = "fp32"\n')

    def dense(*a, **k):
        raise AssertionError("the dense soft targets were allocated before the budget check")

    monkeypatch.setattr(SoftLabels, "dense", dense)
    cfg = ReceiveConfig(device=str(tmp_path / "small.toml"), student=FAST.student)
    with pytest.raises(BudgetError, match="needs ~4[0-9] MiB; the device profile allows 16 MiB. Nothing was allocated"):
        receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", cfg, state_dir=tmp_path / "st")


def test_exemplar_targets_are_rows_not_a_classes_by_classes_identity(monkeypatch):
    from labelcast.receiver import trainset

    monkeypatch.setattr(np, "eye", lambda *a, **k: pytest.fail("np.eye(classes) allocates classes²"))
    t = trainset._one_hot(np.array([3, 0, 65535]), 65536)
    assert t.shape == (3, 65536) and t.sum() == 3 and t[2, 65535] == 1


def test_training_over_the_memory_budget_stops_with_the_checkpoint_kept(tmp_path, monkeypatch):
    from labelcast.codec.errors import BudgetError
    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import load_device
    from labelcast.receiver import train as train_module

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8), rng.integers(0, 3, 200)
    steps = []
    real_anon, real_step = train_module.anon_bytes, train_module._train_step

    def step(*a, **k):  # the plan's probe measured honestly; from the first real step on, 8 GiB leak
        steps.append(1)
        return real_step(*a, **k)

    monkeypatch.setattr(train_module, "_train_step", step)
    monkeypatch.setattr(train_module, "anon_bytes", lambda: real_anon() + (8 << 30 if steps else 0))
    pp = Preprocess(size=(8, 8), channels=1, mean=(0.0,), std=(1.0,))
    ck = tmp_path / "checkpoint.pt"
    with pytest.raises(BudgetError, match="over the profile cpu-small's 2048 MiB .* stopped with the checkpoint kept"):
        cfg = StudentConfig(train_samples=20000)
        train_module.train_student(x, y, 3, pp, load_device("cpu-small"), cfg, checkpoint=ck)
    assert ck.exists() and 0 < train_module.load_checkpoint(ck)["step"] < 200


@pytest.mark.parametrize(
    "change, words",
    [
        ({"accelerator": "cuda"}, "trains on the CPU"),
        ({"finetune": "head"}, "applies to image students"),
        ({"init": "backbone.safetensors"}, "pretrained backbones are image students'"),
    ],
)
def test_the_text_student_refuses_what_it_cannot_honour(change, words):
    from labelcast.receiver.errors import ModelError
    from labelcast.receiver.text_models import _refuse_unsupported

    with pytest.raises(ModelError, match=words):
        _refuse_unsupported(StudentConfig(**change))
    _refuse_unsupported(StudentConfig(accelerator="cpu"))  # what it can do passes


def test_a_text_warm_start_keeps_the_old_weights_and_grows_the_head_never_restarts_silently():
    import torch

    from labelcast.receiver.errors import ModelError
    from labelcast.receiver.text_models import build_text_model
    from labelcast.receiver.train import warm_start

    old = build_text_model("fasttext-small", 500, 3)
    new = build_text_model("fasttext-small", 500, 4)  # a delta added a class
    warm_start(new, old.state_dict())
    assert torch.equal(new.head.weight[:3], old.head.weight) and torch.equal(new.embed.weight, old.embed.weight)
    with pytest.raises(ModelError, match="cannot warm-start"):
        warm_start(build_text_model("textcnn", 500, 4), old.state_dict())  # another arch: refused, not ignored


def test_a_text_student_resumed_from_its_checkpoint_ends_at_the_same_weights(tmp_path):
    import torch

    from labelcast.receiver.text_models import TextTrainConfig, build_text_model, train_text

    rng = np.random.default_rng(0)
    tokens, y = rng.integers(0, 500, (120, 16)), rng.integers(0, 3, 120)
    cfg = TextTrainConfig(train_samples=3600, min_epochs=1, checkpoint_every=4, threads=1)  # 30 steps of 120

    def fresh():
        torch.manual_seed(0)
        return build_text_model("fasttext-small", 500, 3)

    whole = fresh()
    train_text(whole, tokens, y, cfg)
    cut = fresh()
    ck = tmp_path / "ck.pt"
    train_text(cut, tokens, y, cfg, checkpoint=ck, tag="p", stop_after=10)  # killed after step 10 (checkpoint at 8)
    resumed = fresh()
    info = train_text(resumed, tokens, y, cfg, checkpoint=ck, tag="p", resume=True)
    assert info["resumed_at_step"] == 8
    pairs = zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
