import os

import numpy as np
import pytest

from labelcast.codec.errors import FrameError, IncompleteError
from labelcast.codec.framing import (
    Reassembler,
    frames_from_stream,
    make_frames,
    parse_frame,
    read_frames_dir,
    write_frames,
)
from labelcast.profiles import list_profiles, load_link
from labelcast.sender.linksim import LinkSim, simulate


def _payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("name", list_profiles("links"))
def test_recovers_at_20_percent_loss_with_34_percent_parity_at_every_profiles_frame_size(name):
    link = load_link(name)
    data = _payload(8000)
    frames = make_frames(data, link.frame_bytes, 34)
    assert all(len(f) == link.frame_bytes for f in frames)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        lost = set(rng.choice(len(frames), size=int(np.ceil(0.2 * len(frames))), replace=False).tolist())
        r = Reassembler()
        for i, f in enumerate(frames):
            if i not in lost:
                r.add(f)
        assert r.payload() == data


def test_reordered_and_duplicated_frames_are_accepted():
    data = _payload(5000, 2)
    frames = make_frames(data, 270, 25)
    got = simulate(frames, LinkSim(loss=0.0, duplicate=0.5, reorder=True, seed=3))
    r = Reassembler()
    for f in got:
        r.add(f)
    assert r.duplicates > 0 and r.payload() == data


def test_corrupted_frame_is_dropped_not_trusted():
    data = _payload(3000, 4)
    frames = make_frames(data, 64, 50)
    bad = bytearray(frames[0])
    bad[20] ^= 0x10
    with pytest.raises(FrameError):
        parse_frame(bytes(bad))
    r = Reassembler()
    r.add(bytes(bad))
    for f in frames[1:]:
        r.add(f)
    assert r.dropped == 1 and r.payload() == data


def test_says_how_many_more_frames_are_needed():
    data = _payload(2700, 5)
    frames = make_frames(data, 270, 0)
    r = Reassembler()
    for f in frames[:-3]:
        r.add(f)
    with pytest.raises(IncompleteError) as e:
        r.payload()
    assert e.value.needed == 3 and "needs 3 more frame" in str(e.value)


def test_frames_of_two_payloads_are_kept_apart():
    a, b = _payload(1000, 6), _payload(1200, 7)
    fa, fb = make_frames(a, 200, 25), make_frames(b, 200, 25)
    r = Reassembler()
    for f in fa + fb:
        r.add(f)
    ids = r.payload_ids()
    assert sorted([r.payload(i) for i in ids]) == sorted([a, b])
    with pytest.raises(FrameError):
        r.payload()  # ambiguous without an id


def test_directory_and_stream_roundtrip(tmp_path):
    data = _payload(4000, 8)
    frames = make_frames(data, 128, 25)
    write_frames(frames, tmp_path / "f")
    assert not [p for p in os.listdir(tmp_path / "f") if p.endswith(".tmp")]
    assert sorted(read_frames_dir(tmp_path / "f")) == sorted(frames)
    assert frames_from_stream(frames_to_stream(frames)) == frames


def test_large_payload_uses_several_stripes():
    data = _payload(100_000, 9)
    frames = make_frames(data, 64, 25)
    r = Reassembler()
    for f in frames[::-1][: int(len(frames) * 0.85)]:
        r.add(f)
    assert r.payload() == data


def test_reassembly_computes_the_frame_order_once_per_payload(monkeypatch):
    # placing a frame was O(frames) (the layout's order rebuilt for each one): reassembly was quadratic
    from labelcast.codec import framing

    calls = []
    real = framing.FrameLayout.order

    def counting(self):
        calls.append(1)
        return real(self)

    frames = make_frames(_payload(300_000), 64, 10)
    assert len(frames) > 5000
    monkeypatch.setattr(framing.FrameLayout, "order", counting)
    r = Reassembler()
    for f in reversed(frames):
        r.add(f)
    assert len(calls) == 1 and r.complete(r.payload_ids()[0])
    assert r.payload() == _payload(300_000)


def test_reassembler_forgets_a_handled_payload():
    r = Reassembler()
    for f in make_frames(_payload(500), 64, 25):
        r.add(f)
    pid = r.payload_ids()[0]
    r.forget(pid)
    assert r.payload_ids() == []


def frames_to_stream(frames: list[bytes]) -> bytes:
    """The frame stream ``reassemble -`` reads: each frame prefixed by its length (2 bytes, little-endian)."""
    return b"".join(len(f).to_bytes(2, "little") + f for f in frames)
