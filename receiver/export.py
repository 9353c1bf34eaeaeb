"""Export the student: one self-contained ONNX file (checked, matched against torch),
and a TensorRT engine where TensorRT exists.

The TensorRT path is written against the TensorRT 10 Python API (``OnnxParser``,
``set_memory_pool_limit(WORKSPACE, …)``, FP16 when the profile asks for it) and
is skipped with a note when ``import tensorrt`` fails — as on the CI machines.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..codec.errors import StorageError
from ..codec.preprocess import Preprocess
from ..codec.storage import atomic_write
from ..profiles import DeviceProfile
from .errors import ExportError

__all__ = ["export_onnx", "build_tensorrt_engine", "tensorrt_available"]


def _torch_export(model: torch.nn.Module, dummy: torch.Tensor, path: Path, input_name: str = "image") -> None:
    """torch.export-based ONNX export to one self-contained file (no .onnx.data side file), quietly."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(path),
            input_names=[input_name],
            output_names=["logits"],
            dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _example(preprocess, n: int) -> tuple[torch.Tensor, np.ndarray, str, dict]:
    """(export dummy, check input, input name, modality metadata) for an image, a vector or a text model
    (a vector model's input is ``features``, N × D float32)."""
    if getattr(preprocess, "modality", "image") == "text":
        t = preprocess.tokenizer
        x = np.random.default_rng(0).integers(0, t.vocab, (n, t.length), dtype=np.int64)
        x[:, t.length // 2 :] = 0  # padding, as real items have
        meta = {"labelcast.tokenizer": preprocess.to_json(), "labelcast.modality": "text"}
        return torch.ones(2, t.length, dtype=torch.int64), x, "tokens", meta
    if getattr(preprocess, "modality", "image") == "vector":
        x = np.random.default_rng(0).standard_normal((n, preprocess.dim)).astype(np.float32)
        meta = {"labelcast.preprocess": preprocess.to_json(), "labelcast.modality": "vector"}
        return torch.zeros(2, preprocess.dim), x, "features", meta
    size = preprocess.hw
    x = np.random.default_rng(0).random((n, preprocess.channels, *size), np.float32)
    meta = {"labelcast.preprocess": preprocess.to_json()}
    return torch.zeros(2, preprocess.channels, *size), x, "image", meta


def export_onnx(
    model: torch.nn.Module, path: str | os.PathLike, preprocess: Preprocess, classes: int, meta: dict | None = None
) -> dict:
    """Export a classifier to one self-contained ONNX file, written atomically, with labelcast metadata:
    ``labelcast.preprocess`` (a text model: ``labelcast.tokenizer`` and ``labelcast.modality``, input
    ``tokens`` N × length int64), ``labelcast.num_classes`` and ``labelcast.<key>`` = JSON of each ``meta``
    item (teachers and students alike: ``classes`` holds the class names where known).

    The file is checked (onnx checker, one file, ONNX Runtime output within 1e-3 of torch) before it
    replaces ``path``; returns the check results. Failures are :class:`ExportError`/:class:`StorageError`."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.export.onnx")
    side = Path(str(tmp) + ".data")
    dummy, x, input_name, kind_meta = _example(preprocess, 4)
    try:
        try:
            _torch_export(model, dummy, tmp, input_name)
        except OSError as e:
            raise StorageError(f"cannot write the model {path}: {e.strerror}") from e
        except Exception as e:  # torch.export raises many types for unsupported models
            raise ExportError(f"the model could not be exported to ONNX: {type(e).__name__}: {e}") from e
        if side.exists():  # must be one file: a student that travels cannot lose its weights
            raise ExportError("ONNX export wrote external weights; the model is too large for one file")
        m = onnx.load(str(tmp))
        props = {**kind_meta, "labelcast.num_classes": str(classes)}
        props.update({f"labelcast.{k}": json.dumps(v) for k, v in (meta or {}).items()})
        del m.metadata_props[:]
        for k, v in props.items():
            e = m.metadata_props.add()
            e.key, e.value = k, v
        onnx.checker.check_model(m)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).float().numpy()
        diff = float(np.abs(got - want).max())
        if diff > 1e-3:
            raise ExportError(f"the exported ONNX model differs from torch by {diff:.2g}; not written")
        atomic_write(path, m.SerializeToString(), what=f"model {path}")
    finally:
        tmp.unlink(missing_ok=True)
        side.unlink(missing_ok=True)
    return {"onnx": str(path), "onnx_bytes": path.stat().st_size, "max_abs_diff_vs_torch": diff}


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


def build_tensorrt_engine(onnx_path: str | os.PathLike, out: str | os.PathLike, profile: DeviceProfile) -> dict:
    """Build a serialized TensorRT engine from the ONNX student (TensorRT 10 API)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.workspace_mb << 20)
    if profile.precision == "fp16" and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    inp = network.get_input(0)
    rest = tuple(int(d) for d in inp.shape[1:])  # C, H, W for images; the token length for text
    opt = builder.create_optimization_profile()
    opt.set_shape(inp.name, (1, *rest), (32, *rest), (max(1, profile.max_batch), *rest))
    config.add_optimization_profile(opt)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ExportError("TensorRT engine build failed (see the TensorRT log above)")
    out = Path(out)
    atomic_write(out, bytes(blob), what=f"TensorRT engine {out}")
    return {"engine": str(out), "engine_bytes": out.stat().st_size, "fp16": profile.precision == "fp16"}
