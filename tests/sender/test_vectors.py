"""Vector stores (#38): ``npy:`` stores of N × D float features, the ``mlp`` teacher and students, and a
classic model over vectors — from the store's bytes to a trained student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labelcast.codec.errors import ReferenceMismatchError, SourceError
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.preprocess import VectorPreprocess
from labelcast.receiver.errors import ModelError
from labelcast.sender.reference import BuildConfig, build_store

D, C = 24, 4


def blobs(n: int, seed: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """C Gaussian classes in D dimensions, with features on unlike scales (as sensor features are)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(C, D)) * 2.0
    y = rng.integers(0, C, n)
    x = centres[y] + rng.normal(size=(n, D))
    scale = np.geomspace(0.01, 100.0, D)
    return (x * scale).astype(dtype), y


def vector_store(tmp_path: Path, n: int = 1500, dtype=np.float32, clusters: int | None = 4) -> Path:
    x, _ = blobs(n, 1, dtype)
    tmp_path.mkdir(parents=True, exist_ok=True)
    np.save(tmp_path / "pool.npy", x)
    build_store(f"npy:{tmp_path / 'pool.npy'}", tmp_path / "ref", BuildConfig(clusters=clusters))
    return tmp_path / "ref"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_vector_store_verifies_and_refuses_a_changed_byte(tmp_path, dtype):
    ref = vector_store(tmp_path, 600, dtype)
    store = ReferenceStore(ref)
    assert store.kind == "vector" and store.items.shape == (600, D) and store.items.dtype == np.dtype(dtype)
    assert store.manifest.item_shape == (D, np.dtype(dtype).itemsize)
    assert store.check_items() == []
    src = np.load(tmp_path / "pool.npy")
    held = {r.tobytes() for r in src}
    assert {r.tobytes() for r in store.read(np.arange(600))} == held  # the same vectors, in cluster order
    item = 123
    with open(ref / "items.u8", "r+b") as f:
        f.seek(item * D * np.dtype(dtype).itemsize + 5)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    bad = ReferenceStore(ref).check_items()
    assert [p.index for p in bad] == [item]
    with pytest.raises(ReferenceMismatchError, match="differ from the manifest"):
        ReferenceStore(ref).require_items(np.array([item, 7]))
    from labelcast.cli import cli

    res = CliRunner().invoke(cli, ["reference", "verify", str(ref), "--full"])
    assert res.exit_code != 0 and "123" in res.output


def test_the_same_vectors_build_the_same_root_and_another_dtype_another(tmp_path):
    a = json.loads((vector_store(tmp_path / "a", 400)).joinpath("store.json").read_text())
    b = json.loads((vector_store(tmp_path / "b", 400)).joinpath("store.json").read_text())
    c = json.loads((vector_store(tmp_path / "c", 400, np.float16)).joinpath("store.json").read_text())
    assert a["root"] == b["root"] != c["root"]
    assert a["modality"] == "vector" and a["grouping"] == "clusters" and a["groups"] == 4


def test_vector_sources_refuse_what_is_not_finite_float32_or_float16(tmp_path):
    from labelcast.datasets.sources import open_source

    np.save(tmp_path / "f64.npy", np.zeros((5, 3)))
    with pytest.raises(SourceError, match="float32/float16"):
        open_source(f"npy:{tmp_path / 'f64.npy'}")
    x = np.zeros((5, 3), np.float32)
    x[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(SourceError, match="vector 2 holds NaN"):
        build_store(f"npy:{tmp_path / 'nan.npy'}", tmp_path / "ref", BuildConfig(clusters=0))
    with pytest.raises(SourceError, match="--size and --channels apply to images"):
        open_source(f"npy:{tmp_path / 'nan.npy'}", size=8)


def test_the_vector_spec_round_trips_and_a_wrong_width_names_both_sides():
    pp = VectorPreprocess.fitted(blobs(200, 0)[0])
    assert VectorPreprocess.from_json(pp.to_json()).dim == D
    z = pp.apply(blobs(300, 2)[0])
    assert z.dtype == np.float32 and abs(float(z.mean())) < 0.2 and 0.8 < float(z.std()) < 1.2
    assert VectorPreprocess.from_json({"vector": 7}) == VectorPreprocess(7)
    with pytest.raises(SourceError, match=rf"1×{D + 1}.*vectors of {D}"):
        pp.apply(np.zeros((1, D + 1), np.float32))
    with pytest.raises(ValueError, match="1 or 3 finite values"):
        VectorPreprocess(3, mean=(0.0, 1.0))


def test_a_classic_model_over_vectors_scores_a_vector_store_and_a_wrong_width_is_refused(tmp_path):
    from labelcast.sender.send import _check_modality
    from labelcast.sender.teacher import Teacher
    from tests.sender.test_classic import D as CD
    from tests.sender.test_classic import classic_model

    classic_model(tmp_path / "clf.onnx", zipmap=True)
    x = np.random.default_rng(0).random((300, CD)).astype(np.float32)
    np.save(tmp_path / "pool.npy", x)
    build_store(f"npy:{tmp_path / 'pool.npy'}", tmp_path / "ref", BuildConfig(clusters=0))
    store = ReferenceStore(tmp_path / "ref")
    with pytest.warns(UserWarning):
        tea = Teacher(tmp_path / "clf.onnx")
    _check_modality(store, tea)  # a guessed flat-pixel input becomes a vector input of the store's width
    assert tea.modality == "vector" and tea.preprocess.dim == CD and tea.preprocess.output == "probs"
    p = np.exp(tea.logits(store.read(np.arange(5))))
    assert np.allclose(p.sum(1), 1.0, atol=1e-4)
    with pytest.raises(ModelError, match=f"is N×{CD}, spec says vector N×{CD + 1}.*its dim"):
        Teacher(tmp_path / "clf.onnx", {"vector": CD + 1})
    with pytest.warns(UserWarning):
        other = Teacher(tmp_path / "clf.onnx")
    with pytest.raises(ModelError, match=f"takes {CD} features per item; the vectors have {CD + 3}"):
        other.use_vectors(CD + 3)


@pytest.mark.slow  # trains and exports: make test-slow (make test keeps within its 6 minutes)
def test_an_mlp_student_trains_on_vectors_and_exports_a_features_input(tmp_path):
    from labelcast.profiles import load_device
    from labelcast.receiver.export import export_onnx
    from labelcast.receiver.serve import OnnxClassifier
    from labelcast.receiver.train import StudentConfig, train_student

    x, y = blobs(256, 5)
    pp = VectorPreprocess.fitted(x)
    cfg = StudentConfig(arch="mlp-small", train_samples=2048, min_epochs=1, augment="none")
    model, info = train_student(x, y, C, pp, load_device("cpu-small"), cfg)
    assert info["epochs"] == 8 and info["memory_plan"]["batch"] >= 16
    export_onnx(model, tmp_path / "s.onnx", pp, C)
    clf = OnnxClassifier(tmp_path / "s.onnx")
    assert clf.modality == "vector" and clf.input_name == "features" and clf.preprocess == pp  # exactly
    xt, yt = blobs(200, 6)
    assert float((clf.predict(xt) == yt).mean()) > 0.8


@pytest.mark.slow  # ~15 s: make test-slow
def test_a_vector_store_trains_an_mlp_from_a_payload_end_to_end(tmp_path, keys):
    """mlp teacher → send over the vector store → receive: the device's mlp student, exported and served."""
    from labelcast import LinkSettings, ReceiveConfig, Recipe, SelectConfig, SendConfig, receive, send
    from labelcast.receiver.evaluate import evaluate
    from labelcast.receiver.train import StudentConfig
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    _, trust, priv, _ = keys
    ref = vector_store(tmp_path, 20_000)
    x, y = blobs(800, 3)
    res = train_and_export(x, y, [f"c{i}" for i in range(C)], tmp_path / "t.onnx", TeacherConfig(epochs=4, batch=64))
    xt, yt = blobs(400, 4)
    teacher_acc = evaluate(tmp_path / "t.onnx", xt, yt)["accuracy"]
    assert teacher_acc > 0.9 and res.n_items == 800
    first = SendConfig(link=LinkSettings(budget=270), recipe=Recipe(SelectConfig("random")))  # explicit positions
    sent = send(tmp_path / "t.onnx", ref, priv, tmp_path / "outbox", first)
    assert 50 < sent.labels < 1000
    cfg = ReceiveConfig(student=StudentConfig(train_samples=4000, min_epochs=2))
    rep = receive(tmp_path / "outbox" / "frames", ref, trust, tmp_path / "dev", cfg, state_dir=tmp_path / "st")
    assert rep["training"]["arch"] == "mlp"
    student_acc = evaluate(tmp_path / "dev" / "student.onnx", xt, yt)["accuracy"]
    assert student_acc > 0.85 * teacher_acc, (student_acc, teacher_acc)
    # a delta on the chain: the next budget adds labels to the set the device holds and warm-starts its mlp
    delta = SendConfig(link=LinkSettings(budget=1024), parent=tmp_path / "outbox")
    send(tmp_path / "t.onnx", ref, priv, tmp_path / "outbox2", delta)
    rep2 = receive(tmp_path / "outbox2" / "frames", ref, trust, tmp_path / "dev3", cfg, state_dir=tmp_path / "st")
    assert rep2["chain"]["warm_start"] and rep2["chain"]["items"] > rep["chain"]["items"]
    assert evaluate(tmp_path / "dev3" / "student.onnx", xt, yt)["accuracy"] > 0.85 * teacher_acc
    with pytest.raises(ValueError, match="is for images; a vector store trains mlp or mlp-small"):
        receive(
            tmp_path / "outbox" / "frames",
            ref,
            trust,
            tmp_path / "dev2",
            ReceiveConfig(student=StudentConfig(arch="resnet8")),
            state_dir=tmp_path / "st2",
        )


def test_every_selection_strategy_sends_over_a_vector_store_and_the_device_plans_an_mlp(tmp_path, keys):
    from labelcast import LinkSettings, ReceiveConfig, Recipe, SelectConfig, SendConfig, receive, send
    from labelcast.sender.selection import STRATEGIES
    from tests.sender.test_classic import D as CD
    from tests.sender.test_classic import classic_model

    _, trust, priv, _ = keys
    classic_model(tmp_path / "clf.onnx", zipmap=False)
    np.save(tmp_path / "pool.npy", np.random.default_rng(1).random((400, CD)).astype(np.float16))
    build_store(f"npy:{tmp_path / 'pool.npy'}", tmp_path / "ref", BuildConfig(clusters=4))
    for i, strategy in enumerate(STRATEGIES):
        cfg = SendConfig(link=LinkSettings(budget=512), recipe=Recipe(SelectConfig(strategy)), force=True)
        with pytest.warns(UserWarning):  # the model stores no spec: its flat input is guessed, then read as vectors
            sent = send(tmp_path / "clf.onnx", tmp_path / "ref", priv, tmp_path / "out", cfg)
        assert sent.labels > 20 and sent["strategy"].startswith(strategy), (strategy, sent.labels)
        rep = receive(
            tmp_path / "out" / "frames",
            tmp_path / "ref",
            trust,
            None,
            ReceiveConfig(),
            state_dir=tmp_path / f"s{i}",
            dry_run=True,
        )
        assert rep["would_train"]["arch"] == "mlp" and rep["selected_items"] == sent.labels


def test_evaluate_reads_a_guessed_flat_model_as_vectors_when_given_vectors(tmp_path):
    from labelcast.receiver.evaluate import evaluate
    from tests.sender.test_classic import D as CD
    from tests.sender.test_classic import classic_model

    classic_model(tmp_path / "clf.onnx", zipmap=True)
    x = np.random.default_rng(0).random((50, CD)).astype(np.float32)
    with pytest.warns(UserWarning):
        res = evaluate(tmp_path / "clf.onnx", x, np.zeros(50, np.int64), providers="cpu")
    assert 0.0 <= res["accuracy"] <= 1.0 and res["items"] == 50
