"""Coverage-guided fuzzing (atheris / libFuzzer) of the payload decoder, the frame
reassembler and the manifest reader.

    python benchmarks/atheris_fuzz.py payload -runs=200000
    python benchmarks/atheris_fuzz.py frames -runs=200000
    python benchmarks/atheris_fuzz.py manifest -runs=50000

Any exception that is not a ``LabelcastError`` aborts with the crashing input
saved by libFuzzer (turn it into a regression test). ``make fuzz`` runs all three.
The payload target re-signs every input with the trusted key, so the fuzzer
reaches the parsers behind the signature check.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from labelcast.codec.errors import LabelcastError
    from labelcast.codec.framing import Reassembler, make_frames
    from labelcast.codec.keys import TrustSet, key_id
    from labelcast.codec.manifest import Manifest
    from labelcast.codec.payload import DOMAIN, SIG_LEN, build_payload, open_payload

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
TRUST = TrustSet({key_id(KEY.public_key()): KEY.public_key()})
ROOT = hashlib.sha256(b"atheris").digest()
SEG = np.array([100, 300, 100])
TMP = tempfile.mkdtemp()


def payload_target(data: bytes) -> None:
    body = bytes(data)
    try:
        open_payload(body + KEY.sign(DOMAIN + ROOT + body), TRUST, ROOT, n_items=500, segments=SEG, now=0)
    except LabelcastError:
        pass


def frames_target(data: bytes) -> None:
    r = Reassembler()
    fdp = atheris.FuzzedDataProvider(data)
    while fdp.remaining_bytes():
        r.add(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)))
    for pid in r.payload_ids():
        try:
            r.payload(pid)
        except LabelcastError:
            pass


def manifest_target(data: bytes) -> None:
    path = os.path.join(TMP, "manifest.lcm")
    with open(path, "wb") as f:
        f.write(data)
    try:
        Manifest(path)
    except LabelcastError:
        pass


def seeds(target: str) -> None:
    """Write a few valid inputs as the corpus the fuzzer starts from."""
    d = os.path.join(TMP, f"corpus-{target}")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(500, 40, replace=False))
    p, _ = build_payload(
        idx,
        rng.integers(0, 5, 40),
        n_items=500,
        classes=5,
        root=ROOT,
        key=KEY,
        sequence=1,
        expires_at=2**33,
        segments=SEG,
    )
    if target == "payload":
        data = [p[:-SIG_LEN]]
    elif target == "frames":
        data = [b"".join(make_frames(p, 64, 34))]
    else:
        from labelcast.codec.manifest import hash_items, write_manifest

        items = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
        write_manifest(os.path.join(TMP, "seed.lcm"), hash_items(items), np.zeros(20, np.uint32), ["g"], (4, 4, 1))
        data = [open(os.path.join(TMP, "seed.lcm"), "rb").read()]
    for i, b in enumerate(data):
        with open(os.path.join(d, f"seed{i}"), "wb") as f:
            f.write(b)
    sys.argv.append(d)


def main() -> None:
    target = sys.argv.pop(1) if len(sys.argv) > 1 else "payload"
    fn = {"payload": payload_target, "frames": frames_target, "manifest": manifest_target}[target]
    seeds(target)
    atheris.Setup(sys.argv, fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
