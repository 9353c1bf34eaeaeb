"""The field sketch end to end (#36): a device that sees two of four classes sketches its captures, `send
--field` leans the labels toward them (every class keeping its floor), and `receive --field` corrects the
student's outputs to the field's class mix."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from labelcast import (
    LinkSettings,
    ReceiveConfig,
    SendConfig,
    StudentConfig,
    TeacherConfig,
    TrustSet,
    generate_keypair,
    receive,
    send,
    train_and_export,
)
from labelcast.codec.field import encode_sketch
from labelcast.receiver.field import field_sketch
from tests.codec.test_field import _field, _store


@pytest.mark.slow
def test_send_and_receive_with_a_field_sketch(tmp_path):
    store = _store(tmp_path / "ref", per=200)
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 32, 800)
    x = np.clip(8 * levels[:, None, None, None] + rng.integers(-3, 4, (800, 8, 8, 1)), 0, 255).astype(np.uint8)
    train_and_export(x, levels // 8, ["a", "b", "c", "d"], tmp_path / "t.onnx", TeacherConfig(epochs=3, width=8))
    priv, pub = generate_keypair(tmp_path / "keys")
    field = _field(list(range(0, 16)), n=300)  # the device only sees classes a and b
    sketch = encode_sketch(field_sketch(field, store, tmp_path / "field.lcfs"))
    assert (tmp_path / "field.lcfs").read_bytes() == sketch and len(sketch) <= 64
    # the teacher's view of the pool: mostly its brightness quarter, a fifth of the labels anything (so that labels
    # cost bytes and a 270-byte payload holds a few hundred of them)
    g = np.asarray(store.manifest.groups).astype(np.int64)
    lab = np.where(rng.random(g.size) < 0.8, g // 8, rng.integers(0, 4, g.size))
    logits = (4.0 * np.eye(4)[lab] + rng.normal(0, 0.5, (g.size, 4))).astype(np.float32)
    cfg = SendConfig(LinkSettings(budget=270), field=tmp_path / "field.lcfs", validation_every=0)
    rep = send(tmp_path / "t.onnx", store, priv, tmp_path / "out", cfg, logits=logits)
    counts, without = np.array(rep["class_counts"]), np.array(rep["field"]["class_counts_without"])
    assert counts[:2].sum() > without[:2].sum() and (counts[2:] > 0).all()  # leaned, never starved
    assert rep["field"]["class_mix"][0] + rep["field"]["class_mix"][1] > 0.85  # 0.8 + 0.2 · 2/4 of the labels there
    got = receive(
        tmp_path / "out" / "frames",
        store,
        TrustSet.from_files(pub),
        tmp_path / "dev",
        ReceiveConfig(student=StudentConfig(train_samples=400), field=field),
        state_dir=tmp_path / "state",
    )
    f = got["field"]
    assert f["prior_adapt"] and f["images"] == 300 and sum(f["field_prior"][:2]) > 0.9
    assert json.loads((tmp_path / "dev" / "receive-report.json").read_text())["field"]["em_steps"] >= 1


@pytest.mark.slow
def test_a_text_device_sketches_its_captures_and_adapts_its_student(tmp_path, monkeypatch):
    """The same loop on a text store: the device sees one topic of three."""
    monkeypatch.setattr("labelcast.receiver.field.PRIOR_MIN_CONFIDENCE", 0.0)  # a toy student: the loop, not EM
    from labelcast.sender.reference import BuildConfig, build_store
    from tests.codec.test_field import TOPICS, _texts

    topics = list(TOPICS)
    (tmp_path / "pool.txt").write_text("\n".join(_texts(topics, 600, 0)))
    build_store(f"lines:{tmp_path / 'pool.txt'}", tmp_path / "ref", BuildConfig(clusters=3))
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    x = np.array(
        [_texts([topics[c]], 1, int(s))[0].encode() for c, s in zip(y, rng.integers(0, 1 << 30, 300), strict=True)]
    )
    train_and_export(x.astype(object), y, topics, tmp_path / "t.onnx", TeacherConfig(epochs=3))
    priv, pub = generate_keypair(tmp_path / "keys")
    field = _texts(["birds"], 200, 5)
    sketch = encode_sketch(field_sketch(field, tmp_path / "ref", tmp_path / "field.lcfs"))
    assert len(sketch) <= 64
    cfg = SendConfig(LinkSettings(budget=270), field=tmp_path / "field.lcfs", validation_every=0)
    rep = send(tmp_path / "t.onnx", tmp_path / "ref", priv, tmp_path / "out", cfg)
    assert rep["field"]["class_mix"][1] > 0.9 and min(rep["class_counts"]) > 0  # leaned to birds, none starved
    got = receive(
        tmp_path / "out" / "frames",
        tmp_path / "ref",
        TrustSet.from_files(pub),
        tmp_path / "dev",
        ReceiveConfig(student=StudentConfig(train_samples=2000), field=field),
        state_dir=tmp_path / "state",
    )
    assert got["field"]["prior_adapt"] and got["field"]["field_prior"][1] > 0.9


def test_a_planned_send_with_a_field_sketch_weights_the_planners_validation_by_its_class_mix(tmp_path, monkeypatch):
    """`send --field --target`: the planner scores its simulations on the class mix the device sees."""
    from labelcast import PlanSettings
    from labelcast.sender import plan

    store = _store(tmp_path / "ref", per=50)
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 32, 400)
    x = np.clip(8 * levels[:, None, None, None] + rng.integers(-3, 4, (400, 8, 8, 1)), 0, 255).astype(np.uint8)
    names = ["a", "b", "c", "d"]
    train_and_export(x, levels // 8, names, tmp_path / "t.onnx", TeacherConfig(epochs=3, width=8))
    priv, _ = generate_keypair(tmp_path / "keys")
    field_sketch(_field(list(range(0, 16)), n=300), store, tmp_path / "field.lcfs")  # only classes a and b
    seen: list = []

    class Planned(Exception):
        pass

    def capture(*args, **_kw):
        seen.append(args[6])  # the PlanConfig
        raise Planned

    monkeypatch.setattr(plan, "plan_payload", capture)
    g = np.asarray(store.manifest.groups).astype(np.int64)
    logits = (4.0 * np.eye(4)[g // 8] + rng.normal(0, 0.5, (g.size, 4))).astype(np.float32)
    cfg = SendConfig(
        LinkSettings(budget=270),
        field=tmp_path / "field.lcfs",
        plan=PlanSettings(target=(x, levels // 8, names)),
        validation_every=0,
    )
    with pytest.raises(Planned):
        send(tmp_path / "t.onnx", store, priv, tmp_path / "out", cfg, logits=logits)
    mix = np.asarray(seen[0].class_mix)
    assert mix.shape == (4,) and np.isclose(mix.sum(), 1, atol=1e-3) and mix[:2].sum() > 0.95
    with pytest.raises(Planned):  # no sketch: the plain slice
        send(tmp_path / "t.onnx", store, priv, tmp_path / "out", replace(cfg, field=None), logits=logits)
    assert seen[1].class_mix is None
