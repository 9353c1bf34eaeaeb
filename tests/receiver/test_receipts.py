"""The device's receipts: one file per return message, the hour's byte cap, counters kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelcast.codec.errors import BudgetError
from labelcast.codec.keys import generate_keypair
from labelcast.codec.receipts import Event, decode_receipt
from labelcast.profiles import ReturnLink, list_profiles, load_link
from labelcast.receiver.receipts import Reporter

PID = b"\1\2\3\4"


def reporter(tmp: Path, **kw) -> Reporter:
    if not (tmp / "k" / "device.key").exists():
        generate_keypair(tmp / "k", role="device")
    return Reporter(tmp / "rx", tmp / "k" / "device.key", tmp / "state", ReturnLink(**kw))


def test_events_become_receipts_within_the_hour_cap_and_the_rest_waits(tmp_path):
    r = reporter(tmp_path, message_bytes=120, bytes_per_hour=250)
    r.add([Event("accepted", bytes([i, 0, 0, 0]), sequence=i) for i in range(1, 30)])
    first = r.flush(now=1000.0)
    assert len(first) == 2 and all(f.stat().st_size <= 120 for f in first)  # the cap holds two messages
    assert r.pending and r.flush(now=1500.0) == []  # still within the hour
    later = r.flush(now=4700.0)  # an hour on: two more
    counters = [decode_receipt(f.read_bytes()).counter for f in first + later]
    assert len(later) == 2 and counters == [1, 2, 3, 4] and r.pending


def test_a_restart_keeps_the_counter_and_what_was_not_sent(tmp_path):
    r = reporter(tmp_path, bytes_per_hour=10_000)
    r.add([Event("partial", PID, needed=(3,))])
    r.flush(now=0.0)
    r.add([Event("accepted", PID, sequence=1)])  # not flushed: a power cut
    again = reporter(tmp_path, bytes_per_hour=10_000)
    assert again.counter == 1 and [e.kind for e in again.pending] == ["accepted"]
    f = again.flush(now=10.0, status=[Event("store", digest=b"r" * 8)])[0]
    got = decode_receipt(f.read_bytes())
    assert got.counter == 2 and [e.kind for e in got.events] == ["accepted", "store"]  # status rides along


def test_a_return_link_too_small_for_a_signed_receipt_is_refused(tmp_path):
    with pytest.raises(BudgetError, match="51 B"):
        reporter(tmp_path, message_bytes=51, bytes_per_hour=612)


def test_a_nak_is_due_after_the_delay_and_not_again_until_as_long_after(tmp_path):
    r = reporter(tmp_path, nak_after_s=600.0)
    assert not r.nak_due(PID, first_seen=0.0, now=599.0)
    assert r.nak_due(PID, first_seen=0.0, now=600.0)
    r.naked(PID, 600.0)
    assert not r.nak_due(PID, first_seen=0.0, now=1000.0) and r.nak_due(PID, first_seen=0.0, now=1200.0)


def test_every_link_profile_has_a_return_section():
    for name in list_profiles("links"):
        ret = load_link(name).return_link
        assert ret.message_bytes >= 51 and ret.bytes_per_hour >= ret.message_bytes and ret.source
    assert load_link("iridium-sbd-mt").return_link.message_bytes == 340  # Iridium SBD MO
