"""Thin, deterministic helpers around constriction's ANS coder.

Every probability both ends must agree on is computed from integers or from a
fixed sequence of IEEE-754 basic operations (+, -, *, /), which are correctly
rounded on every platform; no exp/log/pow from a platform libm is used.
A "program" is a list of operations in *decode* order; the encoder runs it in
reverse because ANS is a stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np

from ._wire import bytes_to_words, words_to_bytes
from .errors import DecodeError

_model = constriction.stream.model


@dataclass
class Op:
    """Symbols coded with one concrete model or a model family with per-symbol params."""

    symbols: np.ndarray
    model: Any
    params: tuple = ()


def categorical(weights: np.ndarray) -> Any:
    w = np.asarray(weights, dtype=np.float64)
    return _model.Categorical(w, perfect=False)


CATEGORICAL_FAMILY = _model.Categorical(perfect=False)
UNIFORM_FAMILY = _model.Uniform()
BINOMIAL_FAMILY = _model.Binomial()


def encode_ops(ops: list[Op]) -> bytes:
    coder = constriction.stream.stack.AnsCoder()
    for op in reversed(ops):
        sym = np.ascontiguousarray(op.symbols, dtype=np.int32)
        if sym.size == 0:
            continue
        coder.encode_reverse(sym, op.model, *op.params)
    return words_to_bytes(coder.get_compressed())


class Decoder:
    """Pulls symbols in forward order; every failure becomes DecodeError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.what = what
        try:
            self._coder = constriction.stream.stack.AnsCoder(bytes_to_words(data))
        except Exception as e:  # constriction rejects some malformed streams up front
            raise DecodeError(f"{what}: the coded stream is malformed ({e})") from e

    def decode(self, model: Any, n: int, *params: Any) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            if params:
                out = self._coder.decode(model, *params)
            else:
                out = self._coder.decode(model, int(n))
        except Exception as e:
            raise DecodeError(f"{self.what}: the coded stream is malformed ({e})") from e
        return np.asarray(out, dtype=np.int64)

    def finish(self) -> None:
        if not self._coder.is_empty():
            raise DecodeError(f"{self.what}: the coded stream has leftover data; it was altered")


def guarded(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """Wrap a decode function so that anything foreign becomes DecodeError."""

    def run(*a: Any, **k: Any) -> Any:
        try:
            return fn(*a, **k)
        except DecodeError:
            raise
        except (ValueError, IndexError, OverflowError, MemoryError, TypeError) as e:
            raise DecodeError(f"{what}: malformed coded data ({type(e).__name__}: {e})") from e

    return run


CHUNK_BITS = 16  # low bits are coded in uniform chunks of at most this many bits
MAX_CHUNKS = 4  # 64-bit values at most


def lowbit_ops(low: np.ndarray, width: np.ndarray) -> list[Op]:
    """Code each ``low[i] < 2**width[i]`` exactly (uniform), in 16-bit chunks, most significant first."""
    ops = []
    for chunk in range(MAX_CHUNKS - 1, -1, -1):
        sel = width > CHUNK_BITS * chunk
        if not sel.any():
            continue
        w = np.minimum(width[sel] - CHUNK_BITS * chunk, CHUNK_BITS)
        sym = (low[sel] >> (CHUNK_BITS * chunk)) & ((np.int64(1) << w) - 1)
        # Uniform needs size >= 2: w >= 1 here since width > 16·chunk >= 0
        ops.append(Op(sym, UNIFORM_FAMILY, ((np.int64(1) << w).astype(np.int32),)))
    return ops


def lowbit_decode(dec: Decoder, width: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lowbit_ops` for the same widths."""
    low = np.zeros(width.size, dtype=np.int64)
    for chunk in range(MAX_CHUNKS - 1, -1, -1):
        sel = width > CHUNK_BITS * chunk
        if not sel.any():
            continue
        w = np.minimum(width[sel] - CHUNK_BITS * chunk, CHUNK_BITS)
        sym = dec.decode(UNIFORM_FAMILY, int(sel.sum()), (np.int64(1) << w).astype(np.int32))
        low[sel] |= sym << (CHUNK_BITS * chunk)
    return low


def bit_length(values: np.ndarray) -> np.ndarray:
    """Exact ``int.bit_length`` of non-negative int64 values, vectorised (integer compares fix log2)."""
    v = np.asarray(values, dtype=np.int64)
    out = np.zeros(v.size, dtype=np.int64)
    pos = v > 0
    if pos.any():
        b = np.floor(np.log2(v[pos].astype(np.float64))).astype(np.int64) + 1
        b = np.where((np.int64(1) << np.minimum(b, 62)) <= v[pos], b + 1, b)
        b = np.where((np.int64(1) << (b - 1)) > v[pos], b - 1, b)
        out[pos] = b
    return out


MAX_ELIAS_BITS = 61


def elias_gamma_ops(values: np.ndarray) -> list[Op]:
    """Code non-negative integers < 2**62 as (bit length, low bits) with uniform models."""
    v = np.asarray(values, dtype=np.int64) + 1
    nbits = bit_length(v) - 1
    ops = [Op(nbits, UNIFORM_FAMILY, (np.full(v.size, 64, dtype=np.int32),))]
    ops.extend(lowbit_ops(v - (np.int64(1) << nbits), nbits))
    return ops


def elias_gamma_decode(dec: Decoder, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    nbits = dec.decode(UNIFORM_FAMILY, n, np.full(n, 64, dtype=np.int32))
    if (nbits > MAX_ELIAS_BITS).any():
        raise DecodeError(f"{dec.what}: integer too large")
    return (np.int64(1) << nbits) + lowbit_decode(dec, nbits) - 1
