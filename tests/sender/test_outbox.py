"""The outbox: written whole or not at all, and a warning when the device will not be able to compare."""

from __future__ import annotations

import pytest

from labelcast.codec.errors import StorageError
from labelcast.sender import send as send_module
from labelcast.sender.send import SendConfig, comparison_warning, write_outbox


def test_send_holds_back_items_by_default_and_warns_when_a_payload_cannot_be_compared():
    assert SendConfig().validation_every == 10
    assert comparison_warning(10, 3000) is None
    assert "no held-back items (--validation-every 0)" in comparison_warning(0, 3000)
    assert "no held-back items (5 labelled items)" in comparison_warning(10, 5)  # e.g. exemplars only
    assert "only 10 held-back items" in comparison_warning(10, 100)


def test_an_outbox_that_fails_halfway_leaves_nothing_behind(tmp_path, monkeypatch):
    out = tmp_path / "outbox"

    def disk_full(frames, folder):
        (folder).mkdir(parents=True)
        (folder / "half.lcf").write_bytes(b"x")
        raise StorageError("cannot write frame: the disk is full")

    monkeypatch.setattr(send_module, "write_frames", disk_full)
    files = {"payload.lcst": b"p" * 100, "labelled-set.npz": b"s", "send-report.json": b"{}"}
    with pytest.raises(StorageError):
        write_outbox(out, files, [b"f" * 10])
    assert list(out.iterdir()) == []  # no payload, no frames, no staging folder


def test_an_outbox_is_complete_when_its_report_is_there(tmp_path):
    out = tmp_path / "outbox"
    files = {"payload.lcst": b"p", "labelled-set.npz": b"s", "send-report.json": b"{}"}
    from labelcast.codec.framing import make_frames

    frames = make_frames(b"payload bytes " * 10, 64, 1)
    write_outbox(out, files, frames)
    assert sorted(p.name for p in out.iterdir()) == ["frames", "labelled-set.npz", "payload.lcst", "send-report.json"]
    assert len(list((out / "frames").iterdir())) == len(frames)
