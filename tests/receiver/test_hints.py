"""A signed payload's hints are still input: they choose among the device's registered students only,
and each has a type and a range (#32)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.payload import build_payload
from labelcast.receiver.hints import HintError, check_hints
from labelcast.receiver.receive import ReceiveConfig, receive
from labelcast.receiver.train import StudentConfig
from labelcast.receiver.watch import WatchConfig, Watcher

FAST = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1))


def _payload(store, key, hints: dict) -> bytes:
    data, _ = build_payload(
        np.arange(0, 60), np.arange(60) % 3, n_items=store.n, classes=3, root=store.root, key=key, sequence=1,
        expires_at=int(time.time()) + 3600, segments=store.manifest.segments, hints=hints,
    )  # fmt: skip
    return data


def test_a_hint_cannot_make_the_device_import_code(store, keys, tmp_path):
    key, trust, _, _ = keys
    sys.modules.pop("tests.receiver.user_student", None)
    data = _payload(store, key, {"student": {"arch": "tests.receiver.user_student:make"}})
    (tmp_path / "p.lcst").write_bytes(data)
    with pytest.raises(HintError, match="student.arch = 'tests.receiver.user_student:make' is not a registered"):
        receive(tmp_path / "p.lcst", store, trust, tmp_path / "out", FAST, state_dir=tmp_path / "st")
    assert "tests.receiver.user_student" not in sys.modules  # never imported
    assert not (tmp_path / "out" / "student.onnx").exists()


@pytest.mark.parametrize(
    "hints",
    [
        {"student": {"train_samples": "lots"}},
        {"student": {"train_samples": 10**12}},
        {"student": {"flip": 1}},
        {"student": {"lr": -0.1}},
        {"student": {"augment": "rotate"}},
        {"student": {"finetune": "last:x"}},
        {"student": "cnn-small"},
        {"val_every": "10"},
        {"val_every": 1},
    ],
)
def test_a_hint_of_the_wrong_type_or_range_is_a_hint_error(hints):
    with pytest.raises(HintError, match="refused"):
        check_hints(hints)


def test_registered_students_and_sane_values_pass():
    check_hints({"student": {"arch": "resnet8", "flip": False, "lr": 0.01, "finetune": "last:2"}, "val_every": 10})
    check_hints({"student": {"arch": "fasttext-small", "future_knob": [1, 2]}})  # a newer sender's: ignored


def test_the_watcher_refuses_a_payload_with_a_bad_hint_for_good(store, keys, tmp_path):
    key, trust, _, _ = keys
    write_frames(make_frames(_payload(store, key, {"student": {"arch": "os:system"}}), 64, 34), tmp_path / "in")
    w = Watcher(tmp_path / "in", store, trust, FAST, WatchConfig(once=True), state_dir=tmp_path / "st")
    w.run()
    (rec,) = w.done.values()
    assert rec["outcome"] == "refused" and rec["error"] == "HintError" and "retry_when" not in rec
