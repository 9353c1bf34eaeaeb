"""Keys over a device's life, through the watcher: a new sender key announced under the old one, the old
one revoked, and a payload sealed to a device key the device no longer holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelcast.codec.framing import make_frames, write_frames
from labelcast.codec.keys import TrustSet, generate_keypair, key_id, load_private_key, load_public_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver.receive import ReceiveConfig
from labelcast.receiver.train import StudentConfig
from labelcast.receiver.watch import WatchConfig, Watcher
from tests.conftest import make_store, signed_payload

FAST = ReceiveConfig(student=StudentConfig(train_samples=200, min_epochs=1))


@pytest.mark.slow  # an end-to-end run through the CLI or the watcher (make test-slow)
def test_rotation_revocation_and_a_lost_device_key_through_the_watcher(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization as s

    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    for name in ("old", "new"):
        generate_keypair(tmp_path / name)
    generate_keypair(tmp_path / "dev", role="device")
    old, new = (load_private_key(tmp_path / n / "sender.key") for n in ("old", "new"))
    raw_new = new.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex()
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    rng = np.random.default_rng(0)

    def deliver(key, seq, **kw):
        idx = np.sort(rng.choice(store.n, 60, replace=False))
        data = signed_payload(store, key, idx, rng.integers(0, 3, 60), 3, sequence=seq, **kw)
        write_frames(make_frames(data, 96, 0), inbox)  # named by payload id: no two collide

    def watch(revoked=()):
        trust = TrustSet.from_files([tmp_path / "old" / "sender.pub"], revoked)
        trust.with_device(tmp_path / "dev" / "device.key")
        w = Watcher(inbox, store, trust, FAST, WatchConfig(once=True), state_dir=state)
        w.run()
        return w

    # 1. the old key announces the new one; 2. the new key's first payload goes through, no file touched
    deliver(old, 1, hints={"announce_key": raw_new})
    assert watch().summary["promoted"] == 1
    assert (state / "trust" / f"announced-{key_id(new.public_key()).hex()}.pub").exists()
    deliver(new, 1)
    w = watch()
    assert w.summary["processed"] == 1 and w.summary["refused"] == 0
    # 3. the old key revoked: its next payload is refused by name, the new key still goes through
    old_id = key_id(old.public_key()).hex()
    deliver(old, 2)
    deliver(new, 2)
    w = watch(revoked=[old_id])
    errors = sorted(r.get("error", r["outcome"]) for r in w.done.values() if r["outcome"] != "promoted")
    assert "RevokedKeyError" in errors and w.summary["processed"] == 1
    # 4. a payload sealed to this device's former key: refused, naming both keys
    generate_keypair(tmp_path / "formerdev", role="device")
    former = load_public_key(tmp_path / "formerdev" / "device.pub")
    deliver(new, 3, seal_to=former)
    w = watch(revoked=[old_id])
    sealed = [r for r in w.done.values() if r.get("error") == "SealError"]
    assert sealed and f"sealed to device {key_id(former).hex()}" in sealed[0]["message"]
