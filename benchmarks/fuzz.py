"""Fuzz the decoders: random and mutated payloads, frames (repair frames too) and receipts must raise only
labelcast errors.

    python benchmarks/fuzz.py --cases 1000000 [--seed 0] [--json out/bench/fuzz.json]

Mutations of a valid payload are *re-signed* with the trusted key, so they get
past the signature and exercise every parser behind it (a holder of the key who
sends nonsense must not crash the device). Any exception that is not a
``LabelcastError`` is a failure and is printed with the input (hex) to turn
into a regression test. Decoding time per case is bounded by the format's
limits; the slowest case is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from _common import table, write_json  # noqa: E402

from labelcast.codec.delta import Changes, Relabel  # noqa: E402
from labelcast.codec.errors import LabelcastError  # noqa: E402
from labelcast.codec.exemplars import Exemplars  # noqa: E402
from labelcast.codec.framing import Reassembler, make_frames, make_repair_frames, parse_frame  # noqa: E402
from labelcast.codec.indexset import prefix_select  # noqa: E402
from labelcast.codec.keys import TrustSet, key_id  # noqa: E402
from labelcast.codec.payload import DOMAIN, SIG_LEN, build_payload, open_payload  # noqa: E402
from labelcast.codec.receipts import Event, decode_receipt, encode_receipt, verify_receipt  # noqa: E402
from labelcast.codec.softlabels import soft_from_probs  # noqa: E402

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
TRUST = TrustSet({key_id(KEY.public_key()): KEY.public_key()})
ROOT = hashlib.sha256(b"fuzz").digest()
SEGMENTS = np.array([300, 500, 200])
BASE = np.arange(0, 1000, 7)  # the labelled set a delta seed extends (given to the decoder)


def seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for k, c, soft in ((5, 3, False), (60, 10, True), (200, 40, False), (0, 1, False)):
        idx = np.sort(rng.choice(1000, k, replace=False))
        lab = rng.integers(0, c, k)
        s = soft_from_probs(rng.dirichlet(np.ones(c), k), lab, 2, 8) if soft and c > 2 else None
        p, _ = build_payload(
            idx,
            lab,
            n_items=1000,
            classes=c,
            root=ROOT,
            key=KEY,
            sequence=3,
            expires_at=2**33,
            segments=SEGMENTS,
            soft=s,
            class_names=[f"c{i}" for i in range(c)],
            hints={"a": 1},
        )
        out.append(p)
    # a PREFIX-coded selection (positions implied by the keyed order)
    idx = prefix_select(1000, np.array([40, 0, 25]), 77, SEGMENTS)
    p, _ = build_payload(
        idx,
        rng.integers(0, 4, idx.size),
        n_items=1000,
        classes=4,
        root=ROOT,
        key=KEY,
        sequence=3,
        expires_at=2**33,
        segments=SEGMENTS,
        prefix_key=77,
    )
    out.append(p)
    # v2 sections: exemplars (the image bytes are opaque to the codec) and a delta on BASE
    ex = Exemplars("png", 0, 6, 4, 4, 1, np.arange(6) % 3, bytes(range(40)))
    lab = rng.integers(0, 4, 20)
    p, _ = build_payload(
        idx[:20], lab, n_items=1000, classes=4, root=ROOT, key=KEY, sequence=4, expires_at=2**33, exemplars=ex
    )
    out.append(p)
    add = prefix_select(1000, np.array([10, 5, 3]), 77, SEGMENTS, BASE)
    changes = Changes(BASE.size, Relabel(np.array([1, 5, 9]), np.array([0, 2, 1])), np.array([3, 4]))
    delta = {"parent": hashlib.sha256(b"parent").digest(), "changes": changes, "base": BASE}
    p, _ = build_payload(
        add,
        rng.integers(0, 4, add.size),
        n_items=1000,
        classes=4,
        root=ROOT,
        key=KEY,
        sequence=5,
        expires_at=2**33,
        segments=SEGMENTS,
        prefix_key=77,
        delta=delta,
    )
    out.append(p)
    return out


def mutate(rng: np.random.Generator, body: bytes) -> bytes:
    b = bytearray(body)
    op = rng.integers(0, 6)
    if op == 0 and b:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b) * 8))
            b[i // 8] ^= 1 << (i % 8)
    elif op == 1:  # truncation
        b = b[: int(rng.integers(0, len(b) + 1))]
    elif op == 2:  # extension
        b += rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
    elif op == 3 and len(b) > 14:  # length/count field edits: large varints in the header region
        i = int(rng.integers(14, min(len(b), 40)))
        b[i : i + 1] = bytes([0xFF, 0xFF, 0xFF, 0xFF, int(rng.integers(0, 16))])
    elif op == 4 and b:  # random byte overwrite anywhere
        i = int(rng.integers(0, len(b)))
        b[i] = int(rng.integers(0, 256))
    else:  # splice from random bytes
        i = int(rng.integers(0, len(b) + 1))
        b[i:] = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
    return bytes(b)


def _receipts() -> list[bytes]:
    """Valid receipts carrying every event (signed with the fuzzer's key)."""
    pid = b"\1\2\3\4"
    events = [
        Event("store", digest=b"r" * 8),
        Event("accepted", pid, sequence=3),
        Event("partial", pid, needed=(2, 0, 1), frames=40, held=b"\xff\x0f\xf0\x00\x01"),
        Event("trained", pid, digest=b"d" * 8, accuracy=0.5, seconds=9, peak_mb=77),
        Event("model", pid, action="kept aside"),
        Event("head", sender=b"s" * 8, sequence=3, digest=b"h" * 8),
        Event("refused", pid, code=19, retryable=True),
    ]
    return [encode_receipt(KEY, i + 1, 1000, events[: i + 1]) for i in range(len(events))]


def run(cases: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    base = seeds()
    frames = make_frames(base[2], 64, 34)
    frames += make_repair_frames(base[2], 64, 34, {0: [250, 251, 3]})  # fresh blocks and a resent one
    receipts = _receipts()
    stats = {"payload_resigned": 0, "payload_raw": 0, "frame": 0, "receipt": 0, "typed_errors": 0, "accepted": 0}
    failures, slowest = [], 0.0
    t0 = time.time()
    for n in range(cases):
        kind = n % 5
        try:
            t = time.perf_counter()
            if kind in (0, 1):
                p = base[int(rng.integers(0, len(base)))]
                body = mutate(rng, p[:-SIG_LEN])
                data = body + KEY.sign(DOMAIN + ROOT + body)
                stats["payload_resigned"] += 1
                open_payload(data, TRUST, ROOT, n_items=1000, segments=SEGMENTS, now=0, base=BASE)
            elif kind == 2:
                data = mutate(rng, base[int(rng.integers(0, len(base)))])
                stats["payload_raw"] += 1
                open_payload(data, TRUST, ROOT, n_items=1000, segments=SEGMENTS, now=0, base=BASE)
            elif kind == 4:
                stats["receipt"] += 1
                r = decode_receipt(mutate(rng, receipts[int(rng.integers(0, len(receipts)))]))
                verify_receipt(r, KEY.public_key())
            else:
                stats["frame"] += 1
                f = mutate(rng, frames[int(rng.integers(0, len(frames)))])
                f = (
                    f[:-4] + __import__("zlib").crc32(f[:-4]).to_bytes(4, "little")
                    if len(f) > 4 and rng.random() < 0.7
                    else f
                )
                parse_frame(f)
                r = Reassembler()
                r.add(f)
                for g in frames[: int(rng.integers(0, len(frames)))]:
                    r.add(g)
                for pid in r.payload_ids():
                    r.payload(pid)
            stats["accepted"] += 1
        except LabelcastError:
            stats["typed_errors"] += 1
        except Exception as e:  # noqa: BLE001 - the point of a fuzzer
            failures.append({"case": n, "kind": kind, "error": f"{type(e).__name__}: {e}"})
            if len(failures) <= 5:
                print("FAILURE", failures[-1], flush=True)
        slowest = max(slowest, time.perf_counter() - t)
        if n and n % 100_000 == 0:
            print(f"{n:,} cases, {len(failures)} untyped, {time.time() - t0:.0f} s", flush=True)
    return {
        **stats,
        "cases": cases,
        "untyped_exceptions": len(failures),
        "slowest_case_s": round(slowest, 4),
        "seconds": round(time.time() - t0, 1),
        "failures": failures[:20],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = run(a.cases, a.seed)
    table([{k: v for k, v in res.items() if k != "failures"}], [k for k in res if k != "failures"], "fuzz")
    write_json(a.json, res)
    sys.exit(1 if res["untyped_exceptions"] else 0)


if __name__ == "__main__":
    main()
