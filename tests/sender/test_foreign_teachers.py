"""Teachers labelcast did not export (issue #18): built by hand with onnx.helper and by a plain
torch.onnx.export of a user-style model — NHWC input, mean/std 0.5, non-square 24×32, static batch 1,
a softmax output, other input/output names, BGR order — each scored to the same logits as the
equivalent computation on the same pixels; a wrong spec is a typed error naming both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelcast.receiver.errors import ModelError
from labelcast.sender.teacher import Teacher

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
H, W, C, K = 24, 32, 3, 5
SPEC = {"size": [H, W], "channels": 3, "mean": 0.5, "std": 0.5, "layout": "nhwc", "order": "bgr", "output": "probs"}


def _pixels(n: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, C), dtype=np.uint8)


def _by_hand(x: np.ndarray) -> np.ndarray:
    """What the user's own pipeline feeds the model: BGR, (x/255 − 0.5)/0.5, NHWC."""
    return ((x[..., ::-1].astype(np.float32) / 255 - 0.5) / 0.5).astype(np.float32)


def _helper_model(path: Path) -> np.ndarray:
    """logits = flatten(NHWC input) · W + b, then a Softmax; static batch 1; names pixel_values/probabilities."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = (rng.normal(size=(H * W * C, K)) * 0.01).astype(np.float32)
    b = rng.normal(size=(K,)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["pixel_values", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "user_model",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, H, W, C])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, K])],
        [
            numpy_helper.from_array(np.array([1, H * W * C], np.int64), "shape"),
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(b, "b"),
        ],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return w, b


class UserNet(torch.nn.Module):
    """A user-style model: takes NHWC BGR in [-1, 1], ends in a softmax."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(C, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, K)

    def forward(self, x):
        z = torch.relu(self.conv(x.permute(0, 3, 1, 2))).mean((2, 3))
        return torch.softmax(self.fc(z), dim=1)


def _torch_model(path: Path) -> UserNet:
    net = UserNet().eval()
    torch.onnx.export(
        net, (torch.zeros(1, H, W, C),), str(path), input_names=["input_1"], output_names=["output_0"], dynamo=False
    )
    return net


def test_a_hand_built_nhwc_bgr_softmax_model_with_static_batch_1_scores_like_the_same_math(tmp_path):
    w, b = _helper_model(tmp_path / "m.onnx")
    t = Teacher(tmp_path / "m.onnx", SPEC)
    assert t.static_batch == 1 and t.input_name == "pixel_values" and t.output_name == "probabilities"
    x = _pixels()
    z = _by_hand(x).reshape(len(x), -1) @ w + b
    want = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    assert np.abs(t.logits(x) - want).max() < 1e-4  # log-probabilities, not probabilities taken as logits


def test_a_torch_exported_user_model_scores_like_torch_on_the_same_pixels(tmp_path):
    net = _torch_model(tmp_path / "u.onnx")
    t = Teacher(tmp_path / "u.onnx", SPEC)
    x = _pixels(5, seed=2)
    with torch.no_grad():
        want = torch.log(net(torch.from_numpy(_by_hand(x)))).numpy()
    assert np.abs(t.logits(x) - want).max() < 1e-4


def test_the_spec_stored_by_calibrate_is_used_by_every_later_command(tmp_path):
    from labelcast.sender.teacher import calibrate

    _torch_model(tmp_path / "u.onnx")
    calibrate(tmp_path / "u.onnx", _pixels(20), tmp_path / "c.onnx", preprocess=SPEC)
    t = Teacher(tmp_path / "c.onnx")
    assert t.spec_source == "stored" and t.preprocess.layout == "nhwc" and t.preprocess.order == "bgr"
    assert np.allclose(t.logits(_pixels()), Teacher(tmp_path / "u.onnx", SPEC).logits(_pixels()), atol=1e-6)
    over = Teacher(tmp_path / "c.onnx", {**SPEC, "mean": 0.4})
    assert any("overrides" in n for n in over.notes)


@pytest.mark.parametrize(
    "wrong,words",
    [
        ({**SPEC, "layout": "nchw"}, "1×24×32×3"),
        ({**SPEC, "size": 32}, "nhwc 32×32×3"),
        ({**SPEC, "channels": 1}, "nhwc 24×32×1"),
    ],
)
def test_a_wrong_spec_is_a_typed_error_naming_both_sides(tmp_path, wrong, words):
    _helper_model(tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=words) as e:
        Teacher(tmp_path / "m.onnx", wrong)
    assert "pixel_values" in str(e.value)


def test_without_a_spec_the_guess_is_said_in_words(tmp_path):
    _helper_model(tmp_path / "m.onnx")
    t = Teacher(tmp_path / "m.onnx")
    assert t.spec_source == "guessed" and t.preprocess.layout == "nhwc" and t.preprocess.hw == (H, W)
    assert any("guessed" in n and "nhwc" in n for n in t.notes)


def test_a_model_with_two_outputs_asks_which_and_takes_it(tmp_path):
    from onnx import helper

    _helper_model(tmp_path / "m.onnx")
    m = onnx.load(str(tmp_path / "m.onnx"))
    m.graph.output.append(helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, K]))
    onnx.save(m, str(tmp_path / "two.onnx"))
    with pytest.raises(ModelError, match="--output"):
        Teacher(tmp_path / "two.onnx", SPEC)
    t = Teacher(tmp_path / "two.onnx", {**SPEC, "output": "logits"}, output_name="logits")
    x = _pixels(3)
    assert np.allclose(
        np.exp(t.logits(x)) / np.exp(t.logits(x)).sum(1, keepdims=True),
        np.exp(Teacher(tmp_path / "m.onnx", SPEC).logits(x)),
        atol=1e-5,
    )


def test_resizing_shrinks_by_area_averaging_the_same_way_everywhere():
    from labelcast.codec.preprocess import Preprocess, resize

    img = np.zeros((1, 4, 4), np.float32)
    img[0, :2, :2] = 1.0  # a 2×2 block in a 4×4 image: area averaging gives exactly 1 in its 2×2 → 1×1 cell
    assert resize(img, 2, 2)[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    pp = Preprocess((H, W), 3)
    small = pp.apply(x)
    assert small.shape == (2, 3, H, W)
    assert np.allclose(small[:, 0], x[..., 0].reshape(2, H, 2, W, 2).mean((2, 4)) / 255, atol=1e-5)
