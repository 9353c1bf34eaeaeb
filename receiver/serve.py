"""Run a classifier: any ONNX image classifier through ONNX Runtime, or a TensorRT engine.

:class:`OnnxClassifier` is the one place that turns uint8 images into class scores for
every command — the ground's teacher (``sender.teacher.Teacher`` builds on it), ``evaluate``
and the device's serving script. Its :class:`Preprocess` is the model's stored spec
(``labelcast.preprocess``), a given one, or a guess from the input shape (and it says so); it
is checked against the model's real input, and models with a static batch dimension run in
batches of that size. Providers: ``cpu``, ``cuda``, ``tensorrt`` (ONNX Runtime's execution
providers, skipped with a note where absent) or ``auto`` (the best present).

:func:`load_classifier` prefers a TensorRT engine (``student.engine`` beside ``student.onnx``)
when TensorRT imports and the engine deserializes on this platform, and says which it used.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..codec.errors import DecodeError
from ..codec.preprocess import PRESETS, Preprocess, VectorPreprocess
from ..codec.text import TextPreprocess
from .errors import ModelError

__all__ = [
    "GuessedPreprocessWarning",
    "OnnxClassifier",
    "EngineClassifier",
    "load_classifier",
    "providers_for",
    "resolve_spec",
    "shape_text",
    "PROVIDERS",
]

PROVIDERS = ("auto", "cpu", "cuda", "tensorrt")
_ORT = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def providers_for(want: str | list[str] | None) -> tuple[list[str], str]:
    """ONNX Runtime providers for ``want`` and a note when a wanted one is absent (then the CPU)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if isinstance(want, list):
        return want, ""
    want = want or "cpu"
    if want not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
    if want == "auto":
        return [p for p in (_ORT["tensorrt"], _ORT["cuda"], _ORT["cpu"]) if p in have], ""
    if want == "cpu" or _ORT[want] in have:
        chain = {"cpu": ["cpu"], "cuda": ["cuda", "cpu"], "tensorrt": ["tensorrt", "cuda", "cpu"]}[want]
        return [_ORT[c] for c in chain if _ORT[c] in have], ""
    return [_ORT["cpu"]], f"note: ONNX Runtime has no {_ORT[want]} here (it has {', '.join(have)}); using the CPU"


def shape_text(shape) -> str:
    """A model input's or output's shape as people read it: ``N×1×28×28`` (symbolic dimensions are N)."""
    return "×".join(str(d) if isinstance(d, int) else "N" for d in shape)


class GuessedPreprocessWarning(UserWarning):
    """A model's preprocessing was guessed from its input shape (it stores none and none was given): the
    accuracy it reports may be wrong. Store one with ``teacher calibrate`` or pass a spec."""


def _guess_flat(shape: list) -> tuple[Preprocess, str]:
    """A flat (N × D float) input: square grey images when D is a square, square RGB when D/3 is."""
    d = shape[1] if isinstance(shape[1], int) else None
    side = int(round(d**0.5)) if d else 0
    side3 = int(round((d / 3) ** 0.5)) if d and d % 3 == 0 else 0
    if d and side * side == d:
        c, s = 1, side
    elif d and side3 * side3 * 3 == d:
        c, s = 3, side3
    else:
        raise ModelError(
            f"the input is {shape_text(shape)}: flat features, but {d} is neither H×W nor H×W×3 of a square image; "
            'declare it, e.g. --preprocess \'{"size": [H, W], "channels": 1, "layout": "flat"}\''
        )
    why = f"the input is {shape_text(shape)}: flat pixel features, {s}×{s}×{c} row-major (H, W, C)"
    return Preprocess(s, c, 1 / 255, (0.0,), (1.0,), "flat"), why + "; pixels / 255, no mean/std (a guess)"


def _guess(shape: list) -> tuple[Preprocess, str]:
    """A preprocessing guessed from an input shape, and why."""
    if len(shape) == 2:
        return _guess_flat(shape)
    dims = [d if isinstance(d, int) else None for d in shape]
    c1, c3 = dims[1], dims[3]
    if c3 in (1, 3) and c1 not in (1, 3):
        layout, c, h, w = "nhwc", c3, dims[1], dims[2]
    else:
        layout, c, h, w = "nchw", c1 if c1 in (1, 3) else 3, dims[2], dims[3]
    h, w = h or 224, w or h or 224
    why = f"the input is {shape_text(shape)}: {layout}, {c} channel(s), {h}×{w}"
    if (c, h, w) == (3, 224, 224):
        return replace(PRESETS["imagenet"], layout=layout), why + "; 3×224×224 is taken as ImageNet mean/std"
    return Preprocess((h, w), c, 1 / 255, (0.0,), (1.0,), layout), why + "; pixels / 255, no mean/std (a guess)"


def _is_label(o) -> bool:
    """A predicted-label output: a rank-1 int64 or string tensor (a classic classifier's ``label``)."""
    return o.type in ("tensor(int64)", "tensor(string)") and len(o.shape) == 1


def _is_zipmap(o) -> bool:
    return o.type.startswith("seq(map(")


def resolve_spec(spec) -> Preprocess | TextPreprocess | VectorPreprocess | None:
    """The one reading of a preprocessing spec, for every command on both ends: ``None``; a
    :class:`Preprocess` or :class:`TextPreprocess` as given; an image preset name; or a dict, inline JSON
    or a ``.json`` file — a text model's ``{"tokenizer": {…}}`` (docs/text.md), a vector model's
    ``{"vector": {"dim": D, …}}`` or an image spec (docs/teachers.md). An image or vector spec it cannot
    read is a ``ValueError`` (a bad argument) saying what would do; a tokenizer spec or a file it cannot
    read is a ``ModelError``."""
    if spec is None or isinstance(spec, Preprocess | TextPreprocess | VectorPreprocess):
        return spec
    d = spec
    if isinstance(spec, str | Path):
        text = str(spec).strip()
        if text.endswith(".json") and not text.startswith("{"):
            try:
                text = Path(text).read_text()
            except OSError as e:
                raise ModelError(f"cannot read the preprocessing spec {spec}: {e.strerror}") from e
        try:
            d = json.loads(text) if text.startswith("{") else text
        except ValueError as e:
            raise ValueError(f"preprocessing spec {spec!r} is not valid JSON: {e}") from e
    if isinstance(d, dict) and "vector" in d:
        return VectorPreprocess.from_json(d)
    if isinstance(d, dict) and "tokenizer" in d:
        try:
            return TextPreprocess.from_json(d)
        except (ValueError, TypeError) as e:
            raise ModelError(f"tokenizer spec: {e}") from e
    return Preprocess.from_spec(d)


def _stored_preprocess(text: str) -> Preprocess | VectorPreprocess:
    """A model's stored ``labelcast.preprocess``: an image spec, or a vector one (``{"vector": …}``)."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ModelError(f"the model's stored preprocessing is not JSON: {e}") from e
    return VectorPreprocess.from_json(d) if isinstance(d, dict) and "vector" in d else Preprocess.from_dict(d)


class OnnxClassifier:
    """An ONNX Runtime session over an image classifier, with its checked preprocessing."""

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike,
        preprocess: Preprocess | str | dict | None = None,
        threads: int = 0,
        *,
        input_name: str | None = None,
        output_name: str | None = None,
        providers: str | list[str] | None = "cpu",
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.notes: list[str] = []
        self._classic = False  # a label output beside the scores: a classic classifier's probabilities
        chain, note = providers_for(providers)
        if note:
            self.notes.append(note)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=chain)
        except Exception as e:  # onnxruntime raises its own types
            raise DecodeError(f"cannot load {self.path} with ONNX Runtime: {e}") from e
        self.provider = self.session.get_providers()[0]
        self.meta = self.session.get_modelmeta().custom_metadata_map
        inp = self._pick(self.session.get_inputs(), input_name or self._stored("input"), "input", "--input")
        out = self._pick_output(self.session.get_outputs(), output_name or self._stored("output"))
        self.input_name, self.output_name = inp.name, out.name
        self.zipmap: list | None = None  # a ZipMap output's class keys, in the model's class order
        self.input_shape = list(inp.shape)
        text = "int64" in inp.type or "labelcast.tokenizer" in self.meta or isinstance(preprocess, TextPreprocess)
        self.preprocess, self.spec_source = self._resolve_text(preprocess) if text else self._resolve(preprocess)
        self.modality = "text" if text else getattr(self.preprocess, "modality", "image")
        self._check_text_input(inp) if text else self._check_input(inp)
        if (
            self._classic
            and self.spec_source == "guessed"
            and self.preprocess.output == "logits"
            and not _is_zipmap(out)
        ):
            self.preprocess = replace(self.preprocess, output="probs")
            self.notes.append(f"guessed: {out.name} beside a label output holds probabilities")
        b = self.input_shape[0]
        self.static_batch = b if isinstance(b, int) and b > 0 else None
        names = self._stored("classes")
        self.classes: list[str] | None = names if isinstance(names, list) else None
        if _is_zipmap(out):
            self._use_zipmap(out)
            return
        oshape = list(out.shape)
        if len(oshape) != 2:
            raise ModelError(f"{self.path}: output {out.name} is {shape_text(oshape)}; a classifier outputs N×classes")
        stored_n = self._stored("num_classes")
        self.num_classes = (
            oshape[1]
            if isinstance(oshape[1], int)
            else (len(self.classes) if self.classes else (stored_n if isinstance(stored_n, int) else None))
        )

    def _stored(self, key: str):
        raw = self.meta.get(f"labelcast.{key}")
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _pick(self, items, name: str | None, what: str, flag: str):
        names = [i.name for i in items]
        if name is not None:
            for i in items:
                if i.name == name:
                    return i
            raise ModelError(f"{self.path} has no {what} named {name!r}; its {what}s: {', '.join(names)}")
        if len(items) != 1:
            raise ModelError(f"{self.path} has {len(items)} {what}s ({', '.join(names)}); choose one with {flag} NAME")
        return items[0]

    def _pick_output(self, items, name: str | None):
        """The scores output: the named one; else the only one; else, for a classic classifier (skl2onnx,
        onnxmltools) with a predicted-label output beside its probabilities, the probabilities (said in a
        note). A model that outputs labels only is refused: selection ranks items by their scores."""
        if name is not None or len(items) == 1:
            out = self._pick(items, name, "output", "--output")
            if _is_label(out):
                raise ModelError(
                    f"{self.path}: output {out.name} is a predicted label ({out.type}), not class scores; labelcast "
                    "ranks reference items by the teacher's scores: export the model with its probabilities "
                    "(skl2onnx and onnxmltools do by default)"
                )
            return out
        scores = [o for o in items if not _is_label(o)]
        labels = [o.name for o in items if _is_label(o)]
        if not scores:
            raise ModelError(
                f"{self.path} outputs predicted labels only ({', '.join(labels)}); labelcast ranks reference items "
                "by the teacher's scores: export the model with its probabilities"
            )
        if len(scores) == 1 and labels:
            self.notes.append(
                f"note: using output {scores[0].name} (class probabilities); {', '.join(labels)} (the predicted "
                "label) is not used"
            )
            self._classic = True
            return scores[0]
        return self._pick(items, None, "output", "--output")

    def _use_zipmap(self, out) -> None:
        """A ZipMap output (a sequence of maps from class to probability): probabilities in the model's class
        order, taken from the ZipMap node (skl2onnx's ``classlabels_*``); class names from its string keys when
        the model stores none."""
        import onnx

        keys = None
        for node in onnx.load(str(self.path), load_external_data=False).graph.node:
            if node.op_type == "ZipMap" and out.name in node.output:
                for a in node.attribute:
                    if a.name == "classlabels_int64s":
                        keys = list(a.ints)
                    elif a.name == "classlabels_strings":
                        keys = [s.decode() for s in a.strings]
        if not keys:
            raise ModelError(f"{self.path}: output {out.name} is a ZipMap without class labels; cannot order them")
        self.zipmap = keys
        self.num_classes = len(keys)
        if isinstance(keys[0], str):  # names; integer keys are class numbers, compared by number
            self.classes = self.classes or keys
        if self.preprocess.output != "probs":
            if self.spec_source == "given" and self.preprocess.output != "logits":
                raise ModelError(
                    f"{self.path}: a ZipMap output holds probabilities; the spec says {self.preprocess.output}"
                )
            self.preprocess = replace(self.preprocess, output="probs")
        self.notes.append(f"note: output {out.name} is a ZipMap: read as probabilities over {len(keys)} classes")

    def _resolve(self, spec) -> tuple[Preprocess | VectorPreprocess, str]:
        stored = self.meta.get("labelcast.preprocess")
        if spec is not None:
            pp = resolve_spec(spec)
            if isinstance(pp, TextPreprocess):
                raise ModelError(f"{self.path} takes images: a tokenizer spec does not apply")
            if stored is not None and _stored_preprocess(stored) != pp:
                self.notes.append(f"note: the given preprocessing overrides the one stored in {self.path.name}")
            return pp, "given"
        if stored is not None:
            return _stored_preprocess(stored), "stored"
        if len(self.input_shape) not in (2, 4):
            raise ModelError(
                f"{self.path}: input is {shape_text(self.input_shape)}; an image input is 4-D (or 2-D flat features)"
            )
        pp, why = _guess(self.input_shape)
        note = f"guessed: {why}; declare it with `teacher calibrate --preprocess SPEC`"
        self.notes.append(note)
        warnings.warn(f"{self.path.name}: {note}", GuessedPreprocessWarning, stacklevel=3)
        return pp, "guessed"

    def _resolve_text(self, spec) -> tuple[TextPreprocess, str]:
        stored = self.meta.get("labelcast.tokenizer")
        if spec is not None:
            if isinstance(spec, Preprocess) or (isinstance(spec, str) and spec in PRESETS):
                raise ModelError(f"{self.path} is a text model (token ids in): an image preprocessing does not apply")
            tp = resolve_spec(spec)
            if not isinstance(tp, TextPreprocess):
                raise ModelError(f"{self.path} is a text model (token ids in): an image preprocessing does not apply")
            if stored is not None and TextPreprocess.from_json(stored) != tp:
                self.notes.append(f"note: the given tokenizer overrides the one stored in {self.path.name}")
            return tp, "given"
        if stored is not None:
            return TextPreprocess.from_json(stored), "stored"
        self.notes.append(
            "guessed: int64 input taken as labelcast's default tokenizer; declare yours with --preprocess "
            "'{\"tokenizer\": {…}}'"
        )
        return TextPreprocess(), "guessed"

    def _check_text_input(self, inp) -> None:
        want = self.preprocess.tokenizer.length
        if "int64" not in inp.type or len(self.input_shape) != 2:
            raise ModelError(
                f"{self.path}: input {inp.name} is {inp.type} {shape_text(self.input_shape)}; a text model takes "
                "N × length int64 token ids"
            )
        if isinstance(self.input_shape[1], int) and self.input_shape[1] != want:
            raise ModelError(
                f"model input {inp.name} takes {self.input_shape[1]} ids per item, the tokenizer gives {want}; "
                "fix the tokenizer's length"
            )

    def _check_input(self, inp) -> None:
        pp = self.preprocess
        if "float" not in inp.type:
            raise ModelError(f"{self.path}: input {inp.name} takes {inp.type}; labelcast feeds float32 images")
        want = pp.input_shape()
        if len(self.input_shape) != len(want) or any(
            isinstance(m, int) and m != w for m, w in zip(self.input_shape[1:], want[1:], strict=True)
        ):
            said = (
                pp.describe()
                if pp.layout in ("flat", "vector")
                else f"{pp.layout} {'×'.join(str(d) for d in want[1:])}"
            )
            raise ModelError(
                f"model input {inp.name} is {shape_text(self.input_shape)}, spec says {said}; "
                f"fix --preprocess ({'its dim' if pp.layout == 'vector' else 'size, channels, layout'})"
            )

    def use_vectors(self, dim: int) -> None:
        """Read a model whose 2-D float input was guessed as flat pixels as a vector model over ``dim``
        features instead (a vector store's teacher); a stored or given spec is kept, and must agree."""
        if self.modality == "vector" or self.modality == "text":
            return
        if self.spec_source != "guessed" or len(self.input_shape) != 2:
            raise ModelError(
                f"{self.path} takes {self.preprocess.describe()}, not vectors: give it a vector spec, "
                f"--preprocess '{{\"vector\": {dim}}}'"
            )
        want = self.input_shape[1]
        if isinstance(want, int) and want != dim:
            raise ModelError(f"{self.path} takes {want} features per item; the vectors have {dim}")
        self.preprocess = VectorPreprocess(dim, output=self.preprocess.output)
        self.modality = "vector"
        self.notes = [n for n in self.notes if not n.startswith("guessed: the input")]
        self.notes.append(f"guessed: the input is {shape_text(self.input_shape)}: vectors of {dim} features, as given")

    def _scores(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        if self.zipmap is not None:  # a list of {class: probability}, one per item
            keys = self.zipmap
            return np.array([[m[k] for k in keys] for m in out], dtype=np.float32).reshape(len(out), len(keys))
        return out

    def run(self, x: np.ndarray) -> np.ndarray:
        """Scores for preprocessed input ``x``, in batches of the model's static batch size if it has one."""
        if self.static_batch is None:
            out = self._scores(x)
        else:
            b, n = self.static_batch, x.shape[0]
            parts = []
            for s in range(0, n, b):
                chunk = x[s : s + b]
                if chunk.shape[0] < b:  # pad the last batch; the padding's scores are dropped
                    chunk = np.concatenate([chunk, np.zeros((b - chunk.shape[0], *chunk.shape[1:]), chunk.dtype)])
                parts.append(self._scores(chunk))
            out = np.concatenate(parts)[:n] if parts else np.zeros((0, self.num_classes or 0), np.float32)
        return self.preprocess.as_logits(out)

    def logits(self, x_uint8: np.ndarray, batch: int = 1024) -> np.ndarray:
        """Class scores whose softmax is the model's distribution, for uint8 N×H×W×C images (a text model:
        an object array or list of UTF-8 items). Run ``batch`` items at a time: one call over a whole pool
        would ask ONNX Runtime for activations of every item at once (gigabytes per layer)."""
        n = len(x_uint8)
        if n <= batch:
            return self.run(self.preprocess.apply(x_uint8))
        parts = [self.run(self.preprocess.apply(x_uint8[s : s + batch])) for s in range(0, n, batch)]
        return np.concatenate(parts)

    def predict(self, x_uint8: np.ndarray, batch: int = 512) -> np.ndarray:
        return (
            np.concatenate(
                [self.logits(np.asarray(x_uint8[s : s + batch])).argmax(1) for s in range(0, len(x_uint8), batch)]
            )
            if len(x_uint8)
            else np.zeros(0, dtype=np.int64)
        )


class EngineClassifier:
    """A serialized TensorRT engine (TensorRT 10 Python API, torch for device buffers)."""

    backend = "tensorrt"

    def __init__(self, engine: Path, onnx_model: OnnxClassifier) -> None:
        import tensorrt as trt
        import torch

        self.path = engine
        self.preprocess = onnx_model.preprocess
        self.classes, self.num_classes = onnx_model.classes, onnx_model.num_classes
        self.notes: list[str] = []
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(engine.read_bytes())
        if self.engine is None:
            raise ModelError(f"{engine} does not deserialize on this platform (built for another GPU or TensorRT)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self._torch = torch

    def logits(self, x_uint8: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(self.preprocess.apply(x_uint8)).cuda().contiguous()
        self.context.set_input_shape(self.input_name, tuple(x.shape))
        out = torch.empty((x.shape[0], self.num_classes), dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ModelError(f"TensorRT execution of {self.path} failed")
        stream.synchronize()
        return self.preprocess.as_logits(out.cpu().numpy())

    def predict(self, x_uint8: np.ndarray, batch: int = 256) -> np.ndarray:
        return np.concatenate([self.logits(x_uint8[s : s + batch]).argmax(1) for s in range(0, len(x_uint8), batch)])


def load_classifier(
    path: str | os.PathLike,
    preprocess: Preprocess | str | dict | None = None,
    *,
    providers: str | list[str] | None = "auto",
    engine: bool = True,
    input_name: str | None = None,
    output_name: str | None = None,
) -> OnnxClassifier | EngineClassifier:
    """The model at ``path``, served by its TensorRT engine (``.engine`` beside it) when TensorRT imports
    and the engine loads here, else by ONNX Runtime; ``.backend`` and ``.notes`` say which and why."""
    onnx_model = OnnxClassifier(path, preprocess, input_name=input_name, output_name=output_name, providers=providers)
    eng = Path(path).with_suffix(".engine")
    if not engine or not eng.exists():
        return onnx_model
    try:
        import tensorrt  # noqa: F401
    except Exception:
        onnx_model.notes.append(f"note: {eng.name} is here but TensorRT does not import; serving with ONNX Runtime")
        return onnx_model
    try:
        return EngineClassifier(eng, onnx_model)
    except Exception as e:  # a stale or foreign engine: fall back, and say so
        onnx_model.notes.append(f"note: {eng.name} did not load ({e}); serving with ONNX Runtime")
        return onnx_model
