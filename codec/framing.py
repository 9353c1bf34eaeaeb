"""Frames: cut a signed payload to the link's MTU, with a k-of-m erasure code.

The payload is split into D data blocks of B bytes (the last zero-padded) and P
parity blocks are added (by default ``ceil(D·overhead/100)``; the sender may
spend spare budget on more). Blocks are dealt round-robin into
S = ceil((D+P)/254) stripes (data block b goes to stripe b mod S; parity is
shared out evenly) so a burst of losses hits every stripe a little. Each stripe
is a zfec Reed–Solomon k-of-m code (m ≤ 256): *any* k of its m blocks rebuild
it. Frames are sent stripe-interleaved.

Frame layout (little-endian)::

    1        magic/version 0xA1
    4        payload id: first 4 bytes of SHA-256 of the payload
    uvarint  payload length L (≤ 64 MiB)
    uvarint  P, parity blocks in all (≤ 65,536)
    2        frame number (in transmission order; at most 65,536 frames per payload)
    B        block
    4        CRC-32 of every byte above (a corrupted frame is dropped, never trusted)

B is the frame size minus the header; all frames of a payload have one size.

Repair frames (sent after a device reported what it still needs, docs/receipts.md) carry a *fresh*
erasure-code block of one stripe: block number j of the stripe's k-of-256 code, where the first send
used only 0..m-1 (any k distinct blocks of a stripe rebuild it, whichever send they came from)::

    1        magic/version 0xA2
    4        payload id
    uvarint  payload length L
    uvarint  P, parity blocks of the first send (with L and B, the layout)
    1        j, block number within the stripe (0..255)
    uvarint  s, stripe number
    B        block
    4        CRC-32

For a payload of fewer than 128 stripes (32,512 frames) a repair frame has the size of a data frame.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import zfec

from ._wire import Reader, Writer
from .errors import DecodeError, FrameError, IncompleteError, LimitError, StorageError
from .storage import atomic_write

__all__ = [
    "FrameLayout",
    "make_frames",
    "make_repair_frames",
    "parse_frame",
    "payload_id",
    "frame_name",
    "Reassembler",
    "write_frames",
    "read_frames_dir",
    "FrameInfo",
]

FRAME_MAGIC = 0xA1
REPAIR_MAGIC = 0xA2
CODE_BLOCKS = 256  # blocks a stripe's code can make (zfec: n ≤ 256); repairs use those the first send did not
MAX_PAYLOAD = 64 << 20  # bytes of one payload (the container's own limit)
MAX_FRAME = 1 << 20  # bytes of one frame
MIN_BLOCK = 8  # smallest useful block; a frame size leaving less is refused
MAX_FRAMES = 1 << 16  # frames per payload (the 2-byte frame number)
STRIPE_BLOCKS = 254  # blocks per erasure-code stripe (zfec codes at most 256 blocks)
CRC_LEN = 4
ID_LEN = 4  # payload id: first bytes of the payload's SHA-256
MIN_FRAME = 1 + ID_LEN + 1 + 1 + 2 + CRC_LEN  # magic, id, two one-byte varints, number, CRC


def _header_len(length: int, parity: int) -> int:
    w = Writer()
    w.uvarint(length)
    w.uvarint(parity)
    return 1 + ID_LEN + len(w.getvalue()) + 2


@dataclass(frozen=True)
class FrameLayout:
    """Everything both ends derive from (L, B, P)."""

    length: int
    block: int
    parity: int

    @property
    def data_blocks(self) -> int:
        return max(1, math.ceil(self.length / self.block))

    @property
    def stripes(self) -> int:
        return max(1, math.ceil((self.data_blocks + self.parity) / STRIPE_BLOCKS))

    def stripe_k(self, s: int) -> int:
        d, st = self.data_blocks, self.stripes
        return d // st + (1 if s < d % st else 0)

    def stripe_m(self, s: int) -> int:
        p, st = self.parity, self.stripes
        return self.stripe_k(s) + p // st + (1 if s < p % st else 0)

    @property
    def total_frames(self) -> int:
        return self.data_blocks + self.parity

    def order(self) -> list[tuple[int, int]]:
        """(stripe, block number within stripe) for each frame number; O(frames), so callers that
        place many frames compute it once per payload (the :class:`Reassembler` does)."""
        ms = [self.stripe_m(s) for s in range(self.stripes)]
        return [(s, j) for j in range(max(ms)) for s in range(self.stripes) if j < ms[s]]


def layout_for(length: int, frame_size: int, overhead: int = 25, parity: int | None = None) -> FrameLayout:
    """Layout of a payload in frames of ``frame_size``; ``parity`` overrides ``overhead``."""
    if length <= 0 or length > MAX_PAYLOAD:
        raise ValueError("payload length out of range")
    if parity is None:
        if not 0 <= overhead <= 1000:
            raise ValueError("overhead must be 0..1000 parity frames per 100 data frames")
        block = frame_size - CRC_LEN - _header_len(length, 0)
        d = max(1, math.ceil(length / max(block, 1)))
        parity = math.ceil(d * overhead / 100)
    if parity < 0:
        raise ValueError("parity must be non-negative")
    block = frame_size - CRC_LEN - _header_len(length, parity)
    if block < MIN_BLOCK:
        raise ValueError(f"frame size {frame_size} leaves no room for data; use a link with larger frames")
    lay = FrameLayout(length, block, parity)
    if lay.total_frames > MAX_FRAMES:
        raise ValueError(
            f"a {length}-byte payload needs {lay.total_frames} frames of {frame_size} B; the limit is {MAX_FRAMES}"
        )
    return lay


def make_frames(payload: bytes, frame_size: int, overhead: int = 25, parity: int | None = None) -> list[bytes]:
    """Cut ``payload`` into frames of exactly ``frame_size`` bytes."""
    lay = layout_for(len(payload), frame_size, overhead, parity)
    pid = payload_id(payload)
    padded = payload + b"\0" * (lay.data_blocks * lay.block - len(payload))
    blocks = [padded[i * lay.block : (i + 1) * lay.block] for i in range(lay.data_blocks)]
    coded: dict[tuple[int, int], bytes] = {}
    for s in range(lay.stripes):
        mine = tuple(blocks[s :: lay.stripes])
        k, m = len(mine), lay.stripe_m(s)
        out = zfec.Encoder(k, m).encode(mine) if m > k else list(mine)
        for j, b in enumerate(out):
            coded[(s, j)] = bytes(b)
    return [_frame(FRAME_MAGIC, pid, lay, lambda w, no=no: w.u16(no), coded[key]) for no, key in enumerate(lay.order())]


def _frame(magic: int, pid: bytes, lay: FrameLayout, where, block: bytes) -> bytes:
    """One frame: the header both kinds share, ``where`` the block sits (a frame number, or a repair's stripe
    and block number), the block, the CRC."""
    w = Writer()
    w.u8(magic)
    w.raw(pid)
    w.uvarint(lay.length)
    w.uvarint(lay.parity)
    where(w)
    w.raw(block)
    body = w.getvalue()
    return body + zlib.crc32(body).to_bytes(CRC_LEN, "little")


def _stripe_blocks(payload: bytes, lay: FrameLayout, s: int) -> tuple[bytes, ...]:
    padded = payload + b"\0" * (lay.data_blocks * lay.block - len(payload))
    blocks = [padded[i * lay.block : (i + 1) * lay.block] for i in range(lay.data_blocks)]
    return tuple(blocks[s :: lay.stripes])


def make_repair_frames(payload: bytes, frame_size: int, parity: int, wanted: dict[int, list[int]]) -> list[bytes]:
    """Repair frames of ``payload`` (first sent as ``make_frames(payload, frame_size, parity=parity)``): for
    each stripe ``s`` of ``wanted``, the blocks numbered ``wanted[s]`` (0..255) of its k-of-256 code."""
    lay = layout_for(len(payload), frame_size, parity=parity)
    pid = payload_id(payload)
    frames = []
    for s, nums in sorted(wanted.items()):
        if not 0 <= s < lay.stripes or any(not 0 <= j < CODE_BLOCKS for j in nums):
            raise ValueError(f"stripe {s} / blocks {nums} are outside the payload's {lay.stripes} stripes")
        mine = _stripe_blocks(payload, lay, s)
        coded = zfec.Encoder(len(mine), CODE_BLOCKS).encode(mine, list(nums))
        for j, block in zip(nums, coded, strict=True):
            frames.append(_frame(REPAIR_MAGIC, pid, lay, lambda w, j=j, s=s: (w.u8(j), w.uvarint(s)), bytes(block)))
    return frames


@dataclass(frozen=True)
class FrameInfo:
    payload_id: bytes
    layout: FrameLayout
    number: int  # frame number of the first send; -1 for a repair frame
    block: bytes
    stripe: int = -1  # a repair frame's stripe and block number within it
    index: int = -1

    @property
    def repair(self) -> bool:
        return self.number < 0


def parse_frame(frame: bytes) -> FrameInfo:
    """Check a frame's CRC and header; raises FrameError when it must be dropped."""
    if len(frame) > MAX_FRAME or len(frame) < MIN_FRAME:
        raise FrameError(f"frame of {len(frame)} bytes is not a labelcast frame")
    body, crc = frame[:-CRC_LEN], frame[-CRC_LEN:]
    if zlib.crc32(body).to_bytes(CRC_LEN, "little") != crc:
        raise FrameError("frame checksum mismatch (corrupted on the link); dropped")
    r = Reader(body, "frame")
    try:
        magic = r.u8()
        if magic not in (FRAME_MAGIC, REPAIR_MAGIC):
            raise FrameError("not a labelcast frame (bad magic)")
        pid = r.raw(ID_LEN)
        length = r.uvarint(limit=MAX_PAYLOAD, name="payload length")
        parity = r.uvarint(limit=MAX_FRAMES, name="parity")
        if magic == FRAME_MAGIC:
            no, stripe, index = r.u16(), -1, -1
        else:
            no, index, stripe = -1, r.u8(), r.uvarint(limit=MAX_FRAMES, name="stripe")
    except FrameError:
        raise
    except DecodeError as e:
        raise FrameError(f"malformed frame header: {e}") from e
    block = r.raw(r.remaining())
    if length == 0 or len(block) < MIN_BLOCK:
        raise FrameError("malformed frame header")
    lay = FrameLayout(length, len(block), parity)
    if lay.total_frames > MAX_FRAMES or no >= lay.total_frames:
        raise FrameError(f"frame number {no} beyond the {lay.total_frames} frames of its payload")
    if no < 0 and stripe >= lay.stripes:
        raise FrameError(f"repair frame for stripe {stripe} beyond the {lay.stripes} stripes of its payload")
    return FrameInfo(pid, lay, no, block, stripe, index)


@dataclass
class _Pending:
    layout: FrameLayout
    order: list[tuple[int, int]]  # the layout's frame order, computed once per payload
    blocks: dict[int, dict[int, bytes]] = field(default_factory=dict)  # stripe -> {blocknum: bytes}
    seen: int = 0
    received: int = 0  # distinct blocks held


class Reassembler:
    """Collects frames of any number of payloads, in any order, with duplicates and junk."""

    def __init__(self) -> None:
        self._p: dict[bytes, _Pending] = {}
        self.dropped = 0
        self.duplicates = 0

    def add(self, frame: bytes) -> bytes | None:
        """Add one frame; returns the payload id it belongs to, or None if dropped."""
        try:
            info = parse_frame(frame)
        except FrameError:
            self.dropped += 1
            return None
        p = self._p.get(info.payload_id)
        if p is None:
            p = self._p[info.payload_id] = _Pending(info.layout, info.layout.order())
        elif p.layout != info.layout:
            self.dropped += 1  # same id, other layout: a collision or a forgery; ignore
            return None
        s, j = (info.stripe, info.index) if info.repair else p.order[info.number]
        st = p.blocks.setdefault(s, {})
        if j in st:
            self.duplicates += 1
        else:
            p.received += 1
        st[j] = info.block
        p.seen += 1
        return info.payload_id

    def forget(self, pid: bytes) -> None:
        """Drop what is held for a payload (once it is handled), so memory follows what is pending."""
        self._p.pop(pid, None)

    def payload_ids(self) -> list[bytes]:
        return list(self._p)

    def layout(self, pid: bytes) -> FrameLayout:
        """The layout the frames of ``pid`` declare."""
        return self._p[pid].layout

    def missing(self, pid: bytes) -> int:
        return sum(self.needs(pid))

    def needs(self, pid: bytes) -> list[int]:
        """Blocks each stripe still needs (what a partial receipt reports)."""
        p = self._p[pid]
        lay = p.layout
        return [max(0, lay.stripe_k(s) - len(p.blocks.get(s, {}))) for s in range(lay.stripes)]

    def held(self, pid: bytes) -> tuple[int, bytes]:
        """(frames of the first send, a bitmap: bit f set when frame f is held)."""
        p = self._p[pid]
        bits = bytearray((len(p.order) + 7) // 8)
        for f, (s, j) in enumerate(p.order):
            if j in p.blocks.get(s, {}):
                bits[f >> 3] |= 1 << (f & 7)
        return len(p.order), bytes(bits)

    def status(self, pid: bytes) -> dict:
        p = self._p[pid]
        lay = p.layout
        return {
            "payload_id": pid.hex(),
            "payload_bytes": lay.length,
            "frames_total": lay.total_frames,
            "frames_received": p.received,
            "frames_needed_more": self.missing(pid),
        }

    def complete(self, pid: bytes) -> bool:
        return self.missing(pid) == 0

    def payload(self, pid: bytes | None = None) -> bytes:
        """Rebuild a payload; IncompleteError says how many more frames are needed."""
        if pid is None:
            if not self._p:
                raise IncompleteError("no valid frame received yet", needed=0)
            ready = [q for q in self._p if self.complete(q)]
            if len(self._p) > 1 and not ready:
                raise IncompleteError(
                    f"frames of {len(self._p)} payloads received; none complete "
                    f"(need {min(self.missing(q) for q in self._p)} more frames at least)",
                    needed=min(self.missing(q) for q in self._p),
                )
            if len(ready) > 1:
                raise FrameError(
                    f"frames of {len(ready)} complete payloads are mixed; pass one payload id "
                    f"(`reassemble --payload-id ID`; here: {', '.join(q.hex() for q in ready)})"
                )
            pid = ready[0] if ready else next(iter(self._p))
        p = self._p[pid]
        lay = p.layout
        need = self.missing(pid)
        if need:
            raise IncompleteError(
                f"payload {pid.hex()} needs {need} more frame(s) "
                f"({self.status(pid)['frames_received']} of {lay.total_frames} received)",
                needed=need,
            )
        stripes = []
        for s in range(lay.stripes):
            k, m = lay.stripe_k(s), lay.stripe_m(s)
            have = p.blocks[s]
            nums = sorted(have)[:k]
            if nums == list(range(k)):
                stripes.append([have[i] for i in range(k)])
            else:  # repair frames may hold blocks beyond the first send's m: the k-of-256 code reads both
                dec = zfec.Decoder(k, max(m, nums[-1] + 1))
                stripes.append([bytes(b) for b in dec.decode(tuple(have[i] for i in nums), tuple(nums))])
        blocks = [b""] * lay.data_blocks
        for s in range(lay.stripes):
            for j, b in enumerate(stripes[s]):
                blocks[j * lay.stripes + s] = b
        data = b"".join(blocks)
        tail = data[lay.length :]
        data = data[: lay.length]
        if tail.strip(b"\0") or payload_id(data) != pid:
            raise FrameError(f"payload {pid.hex()} rebuilt from frames does not match its id; frames were forged")
        return data


def payload_id(payload: bytes) -> bytes:
    """The 4-byte id every frame of a payload carries: the start of the payload's SHA-256."""
    return hashlib.sha256(payload).digest()[:ID_LEN]


def frame_name(frame: bytes) -> str:
    """The file name a frame is stored under: ``<payload id>-<frame number>.lcf``."""
    info = parse_frame(frame)
    if info.repair:
        return f"{info.payload_id.hex()}-r{info.stripe:05d}-{info.index:03d}.lcf"
    return f"{info.payload_id.hex()}-{info.number:06d}.lcf"


def write_frames(frames: Iterable[bytes], out_dir: str | os.PathLike) -> list[Path]:
    """One file per frame, each written atomically (a reader never sees half a frame)."""
    out = Path(out_dir)
    return [atomic_write(out / frame_name(f), f, what=f"frame in {out}") for f in frames]


def read_frames_dir(path: str | os.PathLike) -> list[bytes]:
    """Every ``.lcf`` file of a folder; one larger than any frame is refused by its size, never read."""
    p = Path(path)
    try:
        files = [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix == ".lcf"]
        big = [f for f in files if f.stat().st_size > MAX_FRAME]
        if big:
            size = big[0].stat().st_size
            raise LimitError(f"{big[0]} is {size:,} bytes, larger than any frame ({MAX_FRAME:,}); not read")
        return [f.read_bytes() for f in files]
    except OSError as e:
        raise StorageError(f"cannot read frames from {p}: {e.strerror}") from e


def frames_from_stream(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 2 <= len(data):
        n = int.from_bytes(data[i : i + 2], "little")
        out.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return out
