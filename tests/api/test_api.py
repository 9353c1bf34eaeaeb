"""The Python API as an ML engineer meets it: top-level names, the array contract checked before any work,
no silent wrong answers. One test per item of the API pass, named after it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import labelcast
from labelcast import (
    LabelcastError,
    ReceiveConfig,
    TeacherConfig,
    TrustSet,
    evaluate,
    generate_keypair,
    train_and_export,
)
from labelcast.codec.errors import SourceError

TINY = TeacherConfig(epochs=1, width=4)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = (rng.integers(0, 60, (240, 8, 8, 1)) + 80 * y[:, None, None, None]).astype(np.uint8)
    return x, y, ["dark", "mid", "bright"]


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    x, y, names = data
    out = tmp_path_factory.mktemp("t") / "t.onnx"
    train_and_export(x, y, names, out, TINY)
    return out


def test_the_readme_names_import_from_the_top_level_package():
    for name in ("build_store", "Teacher", "train_and_export", "send", "SendConfig", "receive", "ReceiveConfig",
                 "evaluate", "TrustSet", "generate_keypair"):  # fmt: skip
        assert name in labelcast.__all__ and getattr(labelcast, name) is not None
    with pytest.raises(AttributeError):
        labelcast.no_such_name  # noqa: B018


def test_the_package_ships_py_typed():
    assert (Path(labelcast.__file__).parent / "py.typed").exists()


def test_float_pixels_are_refused_with_how_to_convert(data, teacher, tmp_path):
    x, y, names = data
    with pytest.raises(SourceError, match=r"\(x \* 255\)\.round\(\)\.astype\('uint8'\)"):
        evaluate(teacher, x.astype("float32") / 255, y, class_names=names)
    with pytest.raises(SourceError, match="uint8"):
        train_and_export(x.astype("float32") / 255, y, names, tmp_path / "t.onnx", TINY)


def test_channels_first_arrays_are_refused(data, teacher):
    x, y, names = data
    with pytest.raises(SourceError, match=r"transpose\(0, 2, 3, 1\)"):
        evaluate(teacher, x.transpose(0, 3, 1, 2), y, class_names=names)


def test_x_and_y_of_different_lengths_are_refused_before_training(data, tmp_path):
    x, y, names = data
    with pytest.raises(SourceError, match="240 images but the labels"):
        train_and_export(x, y[:-5], names, tmp_path / "t.onnx", TINY)
    assert not (tmp_path / "t.onnx").exists()


def test_names_shorter_than_the_classes_are_refused(data, tmp_path):
    x, y, names = data
    with pytest.raises(SourceError, match="2 class names"):
        train_and_export(x, y, names[:2], tmp_path / "t.onnx", TINY)


def test_an_output_folder_that_cannot_be_written_is_refused_before_training(data, tmp_path, tiny_disk):
    x, y, names = data
    with pytest.raises(ValueError, match="is a folder"):
        train_and_export(x, y, names, tmp_path, TINY)
    (tiny_disk / "fill").write_bytes(b"\0" * ((2 << 20) - (64 << 10)))  # a full disk: refused before training
    with pytest.raises(LabelcastError, match="not enough space"):
        train_and_export(x, y, names, tiny_disk / "t.onnx", TINY)
    assert not (tiny_disk / "t.onnx").exists()


def test_a_guessed_preprocessing_warns_as_well_as_notes(data, tmp_path):
    import onnx

    from labelcast.receiver.serve import GuessedPreprocessWarning

    x, y, names = data
    out = tmp_path / "t.onnx"
    train_and_export(x, y, names, out, TINY)
    m = onnx.load(out)
    del m.metadata_props[:]  # a model of someone else's: no stored spec, no names
    onnx.save(m, out)
    with pytest.warns(GuessedPreprocessWarning):
        r = evaluate(out, x, y)
    assert any("guessed" in n for n in r["notes"])


def test_a_class_count_mismatch_without_names_is_refused(data, tmp_path):
    import onnx

    x, y, names = data
    out = tmp_path / "t.onnx"
    train_and_export(x, y, names, out, TINY)
    m = onnx.load(out)
    keep = [p for p in m.metadata_props if p.key == "labelcast.preprocess"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)  # its spec, but no class names
    onnx.save(m, out)
    with pytest.raises(SourceError, match="3 classes and the data 5"):
        evaluate(out, x, y, class_names=[*names, "four", "five"])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = evaluate(out, x[y < 2], y[y < 2])  # labels that reach only 2 of its 3 classes: said, not refused
    assert any("compared by number" in str(m.message) for m in w) and "compared by number" in r["notes"][-1]


def test_receive_config_takes_a_student_by_name():
    from labelcast.receiver.receive import _student_config

    assert _student_config(ReceiveConfig(student="resnet8"), {}).arch == "resnet8"


def test_trust_set_takes_one_path_as_one_path(tmp_path):
    _, pub = generate_keypair(tmp_path)
    assert len(TrustSet.from_files(str(pub)).keys) == 1


class _Calibrated:
    def __init__(self, confidence):
        self.confidence = confidence


def _far_pool(confidence):
    from labelcast.sender.send import Scored

    logits = np.random.default_rng(0).normal(0, 0.1, (500, 4)).astype(np.float32)  # a pool the teacher doubts
    return Scored(None, _Calibrated(confidence), logits)


def test_auto_never_overrides_an_explicit_setting_without_saying_so():
    from labelcast import Recipe, SelectConfig, SendConfig
    from labelcast.sender.send import recipes_for

    cfg = SendConfig(recipe=Recipe(SelectConfig("auto"), soft=True, soft_extra=3))
    recipes, auto = recipes_for(cfg, _far_pool(0.95))
    assert auto["far"] and recipes[0].soft and recipes[0].soft_extra == 3  # yours, not auto's 4
    assert recipes[0].soft_temperature == 2.0  # what you left alone, auto chooses
    assert auto["kept"] == {"soft_extra": "3 (auto: 4)"}


def test_auto_with_an_uncalibrated_teacher_warns():
    from labelcast import SendConfig
    from labelcast.sender.send import recipes_for

    _, auto = recipes_for(SendConfig(), _far_pool(None))
    assert not auto["far"] and "teacher calibrate" in auto["warning"]


def test_a_decompression_bomb_says_that_skip_bad_skips_it(monkeypatch):
    import io

    from PIL import Image

    from labelcast.datasets.base import decode_image

    buf = io.BytesIO()
    Image.new("L", (64, 64)).save(buf, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64×64 is then over twice the limit: a "bomb"
    with pytest.raises(SourceError, match="skip_bad=True .*--skip-bad"):
        decode_image(buf.getvalue(), (8, 8), 1, "huge.png")


def bad_factory(channels, classes, size):
    import torch.nn as nn

    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, classes))  # written for 28×28 grey only


def test_a_student_factory_that_fails_on_the_store_shape_names_it():
    from labelcast.receiver.errors import ModelError
    from labelcast.receiver.students import build_student

    with pytest.raises(ModelError, match=r"2×3×32×32 \(3 channel\(s\), 10 classes, size 32×32"):
        build_student("tests.api.test_api:bad_factory", 3, 10, (32, 32))


def test_send_config_target_also_takes_arrays(data):
    from types import SimpleNamespace

    from labelcast import PlanSettings, SendConfig
    from labelcast.sender.send import _config_record, load_target

    x, y, names = data
    store = SimpleNamespace(manifest=SimpleNamespace(item_shape=(8, 8, 1)))
    cfg = SendConfig(plan=PlanSettings(target=(x, y, names)))
    t = load_target(cfg, store)
    assert len(t.y_pool) + len(t.y_val) == len(y) and t.classes == names and t.source == "arrays"
    assert _config_record(cfg)["plan"]["target"] == "arrays: 240 images, 3 classes"
    with pytest.raises(SourceError, match=r"the store's items \(16, 16, 1\)"):
        load_target(cfg, SimpleNamespace(manifest=SimpleNamespace(item_shape=(16, 16, 1))))
    with pytest.raises(SourceError, match="uint8"):
        load_target(SendConfig(plan=PlanSettings(target=(x / 255, y, names))), store)


def test_results_are_typed_objects_with_to_json(data, teacher, tmp_path):
    import json

    from labelcast import EvaluateResult

    x, y, names = data
    res = evaluate(teacher, x, y, class_names=names)
    assert isinstance(res, EvaluateResult) and res.accuracy == res["accuracy"] and res.n_items == len(x)
    assert set(res.per_class_accuracy) == set(names)
    assert json.loads(res.to_json(tmp_path / "eval.json")) == json.loads((tmp_path / "eval.json").read_text())
    assert json.loads(res.to_json())["accuracy"] == res.accuracy


def test_train_and_export_returns_the_model_its_validation_accuracy_and_epochs(data, tmp_path):
    import torch

    from labelcast import TrainResult

    x, y, names = data
    got = train_and_export(x, y, names, tmp_path / "t.onnx", TINY, validation=0.2)
    assert isinstance(got, TrainResult) and isinstance(got.model, torch.nn.Module)
    assert got.epochs == TINY.epochs and got.path == tmp_path / "t.onnx"
    assert got.validation_items == 48 and got.n_items == 192 and 0 <= got.validation_accuracy <= 1
    assert "model" not in got.to_json()  # the JSON is the report; the model rides beside it
    assert evaluate(got.path, x, y).n_items == 240  # the file it names is the exported model


def test_calibrate_classes_stores_names_a_payload_carries(data, teacher, tmp_path):
    from labelcast import Calibration, Teacher, calibrate

    x, _, _ = data
    named = ["low", "middle", "high"]
    got = calibrate(teacher, x, tmp_path / "named.onnx", classes=named)
    assert isinstance(got, Calibration) and got.classes == named
    assert Teacher(tmp_path / "named.onnx").classes == named
    with pytest.raises(ValueError, match="2 class names for a model with 3 outputs"):
        calibrate(teacher, x, tmp_path / "bad.onnx", classes=named[:2])


def test_class_names_travel_by_default_when_they_fit_a_share_of_the_budget():
    from labelcast import SendConfig
    from labelcast.sender.send import NAMES_SHARE, class_names_for

    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    cost = len("\n".join(names).encode()) + 2
    sent, info = class_names_for(SendConfig(), names, 2560)
    assert sent == names and info["sent"] and info["bytes"] == cost and "default" in info["why"]
    sent, info = class_names_for(SendConfig(), names, 270)  # one SBD message: the labels need the bytes
    assert sent is None and not info["sent"] and cost > NAMES_SHARE * 270
    assert class_names_for(SendConfig(class_names=True), names, 270)[0] == names
    assert class_names_for(SendConfig(class_names=False), names, 1 << 20)[0] is None
    assert "teacher calibrate --classes" in class_names_for(SendConfig(), None, 4096)[1]["why"]


def test_the_planner_cache_folder_is_a_parameter(tmp_path, monkeypatch):
    from labelcast import PlanConfig
    from labelcast.sender.plan import _cache_root

    monkeypatch.setenv("LABELCAST_CACHE_DIR", str(tmp_path / "env"))
    assert _cache_root(PlanConfig(cache_dir=tmp_path / "mine")) == tmp_path / "mine"
    assert _cache_root(PlanConfig()) == tmp_path / "env" / "plans"
    assert "cache_dir" in PlanConfig.__doc__


def _public():
    import inspect

    for name in labelcast.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(labelcast, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for mname, m in vars(obj).items():
                if inspect.isfunction(m) and not mname.startswith("_"):
                    yield f"{name}.{mname}", m


def test_every_public_function_has_a_return_annotation():
    import inspect

    missing = [n for n, f in _public() if inspect.signature(f).return_annotation is inspect.Signature.empty]
    assert not missing, missing


def test_config_fields_are_documented_in_their_docstrings():
    import dataclasses

    for name in labelcast.__all__:
        obj = getattr(labelcast, name, None)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and name.endswith(("Config", "Settings", "Recipe")):
            doc = obj.__doc__ or ""
            undocumented = [f.name for f in dataclasses.fields(obj) if f"\n        {f.name}: " not in doc]
            assert "Attributes:" in doc and not undocumented, (name, undocumented)


def test_the_api_reference_lists_every_public_name_and_is_current():
    from labelcast._apidoc import SECTIONS, render

    listed = {n for _, names in SECTIONS for n in names}
    assert set(labelcast.__all__) - {"__version__"} <= listed
    committed = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert render() == committed, "docs/api.md is stale: run `make docs`"
