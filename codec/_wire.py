"""Little-endian, length-prefixed primitives shared by every container.

The reader checks each declared length against the bytes that remain and against
caller-given limits *before* slicing or allocating, and raises only DecodeError.
"""

from __future__ import annotations

import numpy as np

from .errors import DecodeError, LimitError


class Writer:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, b: bytes) -> None:
        self._parts.append(bytes(b))

    def u8(self, v: int) -> None:
        self._parts.append(int(v).to_bytes(1, "little"))

    def u16(self, v: int) -> None:
        self._parts.append(int(v).to_bytes(2, "little"))

    def u32(self, v: int) -> None:
        self._parts.append(int(v).to_bytes(4, "little"))

    def u64(self, v: int) -> None:
        self._parts.append(int(v).to_bytes(8, "little"))

    def uvarint(self, v: int) -> None:
        v = int(v)
        if v < 0:
            raise ValueError("uvarint must be non-negative")
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
        self._parts.append(bytes(out))

    def blob(self, b: bytes) -> None:
        self.uvarint(len(b))
        self.raw(b)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    def __init__(self, data: bytes, what: str = "payload") -> None:
        self._d = memoryview(bytes(data))
        self._p = 0
        self.what = what

    @property
    def pos(self) -> int:
        return self._p

    def remaining(self) -> int:
        return len(self._d) - self._p

    def raw(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise DecodeError(
                f"{self.what} is truncated: needs {n} more bytes at offset {self._p}, "
                f"{self.remaining()} left; ask the sender to resend"
            )
        b = bytes(self._d[self._p : self._p + n])
        self._p += n
        return b

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.raw(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.raw(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.raw(8), "little")

    def uvarint(self, limit: int = (1 << 64) - 1, name: str = "value") -> int:
        v = 0
        shift = 0
        for _ in range(10):
            b = self.u8()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and shift:
                    raise DecodeError(f"{self.what}: non-canonical varint for {name}")
                if v > limit:
                    raise LimitError(f"{self.what}: {name} = {v} exceeds the limit {limit}")
                return v
            shift += 7
        raise DecodeError(f"{self.what}: varint for {name} is too long")

    def blob(self, limit: int, name: str = "section") -> bytes:
        n = self.uvarint(limit=limit, name=f"length of {name}")
        return self.raw(n)

    def end(self) -> None:
        if self.remaining():
            raise DecodeError(f"{self.what} has {self.remaining()} trailing bytes; it was altered or mis-framed")


def words_to_bytes(words: np.ndarray) -> bytes:
    """ANS words (uint32) to bytes, dropping zero high bytes of the last word."""
    b = np.asarray(words, dtype="<u4").tobytes()
    while b and b[-1] == 0:
        b = b[:-1]
    return b


def bytes_to_words(b: bytes) -> np.ndarray:
    pad = (-len(b)) % 4
    return np.frombuffer(b + b"\0" * pad, dtype="<u4").astype(np.uint32)
