"""Sending the model instead: ONNX slimmed, fp16 weights or int8 dynamic quantisation, compressed."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np

__all__ = ["onnx_slim", "onnx_fp16", "onnx_int8", "compressed_size"]


def onnx_slim(src: Path, dst: Path) -> None:
    """Drop what inference does not need (exporter stack traces, doc strings, shape hints)."""
    import onnx

    m = onnx.load(str(src))
    for n in m.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    del m.graph.value_info[:]
    m.doc_string = ""
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def onnx_fp16(src: Path, dst: Path) -> None:
    """Store float weights as fp16 with a Cast back to float (ONNX Runtime runs it as is)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    casts, keep = [], []
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 1:
            keep.append(numpy_helper.from_array(a.astype(np.float16), t.name + "_fp16"))
            casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name], to=TensorProto.FLOAT))
        else:
            keep.append(t)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def onnx_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of weights (ONNX Runtime's quantization tool)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)


def compressed_size(data: bytes) -> tuple[int, str]:
    import zstandard

    z = len(zstandard.ZstdCompressor(level=19).compress(data))
    x = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    return (z, "zstd-19") if z <= x else (x, "xz-9e")
