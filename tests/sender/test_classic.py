"""Classic ML teachers (#38): flat pixel-feature inputs, a label output beside probabilities, ZipMap outputs.

The models are what skl2onnx writes for a linear classifier (``LinearClassifier`` + ``ZipMap`` from the
``ai.onnx.ml`` domain, built here with onnx.helper so the suite needs no scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest

from labelcast.codec.preprocess import Preprocess
from labelcast.receiver.errors import ModelError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

D, C = 64, 3  # 8×8 grey images, 3 classes


def _weights():
    rng = np.random.default_rng(0)
    return rng.normal(size=(C, D)).astype(np.float32) * 0.05, rng.normal(size=C).astype(np.float32)


def classic_model(path, *, zipmap: bool = True, label_only: bool = False, string_labels: bool = False) -> None:
    """A LinearClassifier on N×D float features with skl2onnx's outputs: ``output_label`` and
    ``output_probability`` (a ZipMap, or the N×C tensor with zipmap=False)."""
    w, b = _weights()
    labels = (
        {"classlabels_strings": ["dark", "mid", "bright"]} if string_labels else {"classlabels_ints": list(range(C))}
    )
    nodes = [
        helper.make_node(
            "LinearClassifier",
            ["x"],
            ["output_label", "probs"],
            domain="ai.onnx.ml",
            coefficients=w.ravel().tolist(),
            intercepts=b.tolist(),
            post_transform="SOFTMAX",
            **labels,
        )
    ]
    label_type = TensorProto.STRING if string_labels else TensorProto.INT64
    outputs = [helper.make_tensor_value_info("output_label", label_type, ["N"])]
    if zipmap:
        zkeys = (
            {"classlabels_strings": labels["classlabels_strings"]}
            if string_labels
            else {"classlabels_int64s": list(range(C))}
        )
        nodes.append(helper.make_node("ZipMap", ["probs"], ["output_probability"], domain="ai.onnx.ml", **zkeys))
        key = TensorProto.STRING if string_labels else TensorProto.INT64
        outputs.append(
            helper.make_value_info(
                "output_probability",
                helper.make_sequence_type_proto(
                    helper.make_map_type_proto(key, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
                ),
            )
        )
    else:
        nodes.append(helper.make_node("Identity", ["probs"], ["output_probability"]))
        outputs.append(helper.make_tensor_value_info("output_probability", TensorProto.FLOAT, ["N", C]))
    if label_only:
        outputs = outputs[:1]
    graph = helper.make_graph(
        nodes, "classic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])], outputs
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)], ir_version=8
    )
    onnx.save(model, str(path))


def _images(n: int = 20) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (n, 8, 8, 1), dtype=np.uint8)


def _expected(x: np.ndarray) -> np.ndarray:
    w, b = _weights()
    z = x.reshape(len(x), -1).astype(np.float32) / 255 @ w.T + b
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_the_flat_layout_flattens_row_major_over_height_width_channels():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.uint8).reshape(2, 2, 3, 3)
    pp = Preprocess((2, 3), 3, 1.0, (0.0,), (1.0,), "flat")
    assert pp.input_shape() == ("N", 18) and np.array_equal(pp.apply(x), x.reshape(2, 18).astype(np.float32))
    assert pp.describe() == "flat N×18 (2×3×3, row-major H, W, C)"
    assert Preprocess.from_spec({"size": 8, "layout": "flat"}).input_shape(5) == (5, 64)


def test_zipmap_and_tensor_outputs_give_the_same_probabilities(tmp_path):
    from labelcast.sender.teacher import Teacher

    classic_model(tmp_path / "zip.onnx")
    classic_model(tmp_path / "tensor.onnx", zipmap=False)
    x = _images()
    with pytest.warns(UserWarning, match="flat pixel features, 8×8×1"):
        z = Teacher(tmp_path / "zip.onnx")
    with pytest.warns(UserWarning):
        t = Teacher(tmp_path / "tensor.onnx")
    pz, pt = np.exp(z.logits(x)), np.exp(t.logits(x))
    assert np.allclose(pz, pt, atol=1e-6) and np.allclose(pz, _expected(x), atol=1e-5)
    assert z.output_name == t.output_name == "output_probability" and z.num_classes == t.num_classes == C
    assert any("output_label (the predicted label) is not used" in n for n in z.notes)
    assert any("ZipMap" in n for n in z.notes) and z.preprocess.output == t.preprocess.output == "probs"


def test_zipmap_string_keys_give_the_class_names_in_the_models_order(tmp_path):
    from labelcast.sender.teacher import Teacher

    classic_model(tmp_path / "named.onnx", string_labels=True)
    t = Teacher(tmp_path / "named.onnx", {"size": 8, "layout": "flat"})
    assert t.classes == ["dark", "mid", "bright"]  # the ZipMap's order, not the sorted keys
    assert np.allclose(np.exp(t.logits(_images())), _expected(_images()), atol=1e-5)


def test_a_label_only_classifier_is_refused_with_a_typed_error(tmp_path):
    from labelcast.sender.teacher import Teacher

    classic_model(tmp_path / "labels.onnx", label_only=True)
    with pytest.raises(ModelError, match="predicted label.*scores"):
        Teacher(tmp_path / "labels.onnx", {"size": 8, "layout": "flat"})


def test_a_flat_spec_with_the_wrong_width_names_both_sides(tmp_path):
    from labelcast.sender.teacher import Teacher

    classic_model(tmp_path / "zip.onnx")
    with pytest.raises(ModelError, match=r"N×64, spec says flat N×784 \(28×28×1"):
        Teacher(tmp_path / "zip.onnx", {"size": 28, "layout": "flat"})


def test_a_flat_width_that_is_no_square_image_asks_for_a_spec(tmp_path):
    from labelcast.receiver.serve import _guess

    with pytest.raises(ModelError, match="neither H×W nor H×W×3"):
        _guess(["N", 50])
    assert _guess(["N", 3 * 32 * 32])[0].describe() == "flat N×3072 (32×32×3, row-major H, W, C)"


def test_evaluate_runs_a_classic_teacher(tmp_path):
    from labelcast import evaluate

    classic_model(tmp_path / "zip.onnx")
    x = _images(60)
    y = _expected(x).argmax(1)
    res = evaluate(tmp_path / "zip.onnx", x, y, class_names=["0", "1", "2"], preprocess={"size": 8, "layout": "flat"})
    assert res.accuracy == 1.0
