"""The error tree's shape, the one atomic write, and the shared low-bit coder."""

from __future__ import annotations

import os

import numpy as np
import pytest

from labelcast.codec import errors
from labelcast.codec._ans import Decoder, encode_ops, lowbit_decode, lowbit_ops
from labelcast.codec.storage import atomic_write


def test_rollback_and_replay_are_siblings_not_nested():
    # a rollback (StaleError) is an attack, a replay a harmless repeat: no handler of one may catch the other
    assert not issubclass(errors.StaleError, errors.ReplayError)
    assert not issubclass(errors.ReplayError, errors.StaleError)
    for cls in (errors.StaleError, errors.ReplayError, errors.SignatureError, errors.ExpiredError):
        assert issubclass(cls, errors.TrustError)
    assert not issubclass(errors.UnknownKeyError, errors.RevokedKeyError)
    assert not issubclass(errors.RevokedKeyError, errors.UnknownKeyError)
    assert errors.StaleError.exit_code != errors.ReplayError.exit_code


def test_every_error_is_a_labelcast_error_with_a_message_for_the_operator():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.LabelcastError) and cls.__doc__ and isinstance(cls.exit_code, int)


def test_atomic_write_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    atomic_write(target, "old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(errors.StorageError, match="No space left"):
        atomic_write(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left behind


def test_atomic_write_sets_the_mode_before_the_file_appears(tmp_path):
    p = atomic_write(tmp_path / "k", b"secret", mode=0o600)
    assert oct(p.stat().st_mode & 0o777) == "0o600" and p.read_bytes() == b"secret"


@pytest.mark.parametrize("max_width", [1, 15, 16, 17, 33, 61])
def test_lowbit_coder_round_trips_every_width(max_width):
    rng = np.random.default_rng(max_width)
    width = rng.integers(0, max_width + 1, 500)
    low = np.array([int(rng.integers(0, 1 << int(w))) if w else 0 for w in width], dtype=np.int64)
    data = encode_ops(lowbit_ops(low, width))
    dec = Decoder(data, "test")
    assert np.array_equal(lowbit_decode(dec, width), low)
    dec.finish()
