"""Repair frames: fresh erasure-code blocks of the short stripes complete a payload with what a device holds."""

from __future__ import annotations

import os

import numpy as np
import pytest

from labelcast.codec.errors import FrameError
from labelcast.codec.framing import (
    CODE_BLOCKS,
    Reassembler,
    frame_name,
    layout_for,
    make_frames,
    make_repair_frames,
    parse_frame,
)


def test_fresh_blocks_complete_a_payload_whatever_was_lost():
    rng = np.random.default_rng(1)
    payload = os.urandom(80_000)
    frames = make_frames(payload, 200, parity=0)  # no parity: every loss must be repaired
    lay = layout_for(len(payload), 200, parity=0)
    assert lay.stripes >= 2
    r = Reassembler()
    kept = [f for f in frames if rng.random() > 0.3]
    for f in kept:
        pid = r.add(f)
    needs = r.needs(pid)
    assert sum(needs) == len(frames) - len(kept) and not r.complete(pid)
    # fresh blocks first (numbers the first send never used), then — a stripe's 256-block code having only
    # 256 - m fresh ones — the very blocks the device lacks (its bitmap says which), re-encoded
    frames_total, held = r.held(pid)
    assert frames_total == len(frames) and sum(bin(b).count("1") for b in held) == len(kept)
    lacking: dict[int, list[int]] = {}
    for f, (s, j) in enumerate(lay.order()):
        if not (held[f >> 3] >> (f & 7)) & 1:
            lacking.setdefault(s, []).append(j)
    wanted = {}
    for s, n in enumerate(needs):
        fresh = list(range(lay.stripe_m(s), min(CODE_BLOCKS, lay.stripe_m(s) + n)))
        wanted[s] = fresh + lacking[s][: n - len(fresh)]
    repair = make_repair_frames(payload, 200, 0, wanted)
    assert len(repair) == sum(needs) and {len(f) for f in repair} == {200}  # the link's frame size
    for f in repair:
        assert r.add(f) == pid
    assert r.complete(pid) and r.payload(pid) == payload


def test_a_repair_frame_is_named_checked_and_bounded():
    payload = os.urandom(3000)
    f = make_repair_frames(payload, 120, 2, {0: [250]})[0]
    info = parse_frame(f)
    assert info.repair and info.stripe == 0 and info.index == 250 and frame_name(f).endswith("-r00000-250.lcf")
    bad = bytearray(f)
    bad[30] ^= 1
    with pytest.raises(FrameError, match="checksum"):
        parse_frame(bytes(bad))
    with pytest.raises(ValueError, match="outside"):
        make_repair_frames(payload, 120, 2, {0: [CODE_BLOCKS]})
    with pytest.raises(ValueError, match="outside"):
        make_repair_frames(payload, 120, 2, {5: [3]})


def test_a_resent_block_the_device_holds_is_a_duplicate():
    payload = os.urandom(2000)
    frames = make_frames(payload, 100, parity=0)
    r = Reassembler()
    for f in frames[1:]:
        pid = r.add(f)
    r.add(make_repair_frames(payload, 100, 0, {0: [1]})[0])  # block 1 of stripe 0 is frame 1: held already
    assert r.duplicates == 1 and not r.complete(pid)
    r.add(make_repair_frames(payload, 100, 0, {0: [0]})[0])  # the lost block itself, re-encoded
    assert r.payload(pid) == payload
