"""Reliability and security suite: every attack and fault tried, how many cases, the outcome.

    python benchmarks/reliability.py [--kills 20] [--doc docs/reliability.md] [--json out/bench/reliability.json]

Regenerates the table in docs/reliability.md. Everything runs on a synthetic
reference store made here (2,000 items of 8×8), real keys, real payloads and
frames, and the real `labelcast receive` in subprocesses for the power cuts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_table, splice_block, table, write_json  # noqa: E402

from labelcast.codec.errors import (  # noqa: E402
    ExpiredError,
    FrameError,
    KeyFileError,
    LabelcastError,
    LimitError,
    ReplayError,
    RevokedKeyError,
    SignatureError,
    StaleError,
    UnknownKeyError,
)
from labelcast.codec.framing import Reassembler, make_frames, parse_frame, write_frames  # noqa: E402
from labelcast.codec.keys import TrustSet, generate_keypair, key_id, load_private_key  # noqa: E402
from labelcast.codec.manifest import ReferenceStore, hash_items, write_manifest  # noqa: E402
from labelcast.codec.payload import DOMAIN, SIG_LEN, build_payload, open_payload  # noqa: E402
from labelcast.receiver.state import ReplayState  # noqa: E402


def make_store(path: Path, n: int = 2000) -> ReferenceStore:
    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    items = rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)
    items.tofile(path / "items.u8")
    g = np.sort(rng.integers(0, 5, size=n)).astype(np.uint32)
    write_manifest(path / "manifest.lcm", hash_items(items), g, [f"g{i}" for i in range(5)], (8, 8, 1))
    return ReferenceStore(path)


def outcome(ok: int, total: int, what: str) -> str:
    return f"all {what} ({ok}/{total})" if ok == total else f"FAILED: {ok}/{total} {what}"


def run(kills: int, work: Path) -> list[dict]:
    rows = []
    store = make_store(work / "ref")
    priv_p, pub_p = generate_keypair(work / "keys")
    key = load_private_key(priv_p)
    trust = TrustSet.from_files([pub_p])
    rng = np.random.default_rng(1)
    idx = np.sort(rng.choice(store.n, 400, replace=False))
    lab = rng.integers(0, 4, 400)
    now = int(time.time())

    def payload(seq=5, exp=None, k=key, root=None):
        return build_payload(
            idx,
            lab,
            n_items=store.n,
            classes=4,
            root=root or store.root,
            key=k,
            sequence=seq,
            expires_at=exp or now + 86400,
            segments=store.manifest.segments,
        )[0]

    p = payload()

    def refused(data, err=LabelcastError) -> bool:
        try:
            open_payload(data, trust, store.root, n_items=store.n, segments=store.manifest.segments, now=now)
        except err:
            return True
        except Exception:  # noqa: BLE001
            return False
        return False

    # tamper matrix
    flips = [
        bytes(p[: i // 8]) + bytes([p[i // 8] ^ (1 << (i % 8))]) + bytes(p[i // 8 + 1 :]) for i in range(len(p) * 8)
    ]
    ok = sum(refused(f) for f in flips)
    rows.append(
        {
            "class": "tamper",
            "attack or fault": "every single-bit flip of a signed payload",
            "cases": len(flips),
            "outcome": outcome(ok, len(flips), "refused before decoding"),
        }
    )
    multi = []
    for _ in range(2000):
        b = bytearray(p)
        i = int(rng.integers(0, len(b) - 4))
        b[i : i + int(rng.integers(2, 5))] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()[: len(b[i : i + 4])]
        if bytes(b) != p:
            multi.append(bytes(b))
    ok = sum(refused(m) for m in multi)
    rows.append(
        {
            "class": "tamper",
            "attack or fault": "random multi-byte edits",
            "cases": len(multi),
            "outcome": outcome(ok, len(multi), "refused"),
        }
    )
    cuts = [p[:c] for c in range(len(p))] + [
        p + rng.integers(0, 256, e, dtype=np.uint8).tobytes() for e in (1, 2, 64, 4096)
    ]
    ok = sum(refused(c) for c in cuts)
    rows.append(
        {
            "class": "tamper",
            "attack or fault": "every truncation, and extensions",
            "cases": len(cuts),
            "outcome": outcome(ok, len(cuts), "refused"),
        }
    )
    frames = make_frames(p, 64, 34)
    fl = 0
    total = 0
    for f in frames:
        for i in range(len(f) * 8):
            g = bytearray(f)
            g[i // 8] ^= 1 << (i % 8)
            total += 1
            try:
                parse_frame(bytes(g))
            except FrameError:
                fl += 1
    rows.append(
        {
            "class": "tamper",
            "attack or fault": "every single-bit flip of every frame",
            "cases": total,
            "outcome": outcome(fl, total, "dropped by CRC, never decoded"),
        }
    )

    # trust attacks
    def attack(name, fn, err):
        try:
            fn()
            res = "ACCEPTED (bug)"
        except err as e:
            res = f"refused: {type(e).__name__}"
        except Exception as e:  # noqa: BLE001
            res = f"FAILED: untyped {type(e).__name__}"
        rows.append({"class": "trust", "attack or fault": name, "cases": 1, "outcome": res})

    state = ReplayState(work / "state")
    state.accept(key_id(key.public_key()), 5)
    attack("replay of an accepted payload", lambda: state.check(key_id(key.public_key()), 5), ReplayError)
    attack("rollback to an older sequence", lambda: state.check(key_id(key.public_key()), 4), StaleError)
    attack("expired payload", lambda: open_payload(payload(exp=now - 1), trust, store.root, now=now), ExpiredError)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    attack(
        "payload signed by an unknown key",
        lambda: open_payload(payload(k=Ed25519PrivateKey.generate()), trust, store.root, now=now),
        UnknownKeyError,
    )
    revoked = TrustSet(dict(trust.keys), {key_id(key.public_key())})
    attack("payload signed by a revoked key", lambda: open_payload(p, revoked, store.root, now=now), RevokedKeyError)
    attack(
        "payload made for another reference set",
        lambda: open_payload(payload(root=hashlib.sha256(b"x").digest()), trust, store.root, now=now),
        SignatureError,
    )

    def mixed():
        r = Reassembler()
        for f in make_frames(p, 64, 34) + make_frames(payload(seq=6), 64, 34):
            r.add(f)
        r.payload()

    attack("frames of two payloads mixed in one inbox", mixed, FrameError)

    def forged_frames():
        good = make_frames(p, 64, 34)
        other = make_frames(payload(seq=7), 64, 34)
        r = Reassembler()
        # frames of another payload relabelled with this payload's id (CRC recomputed)
        import zlib

        for f in good[: len(good) // 2]:
            r.add(f)
        for f in other:
            body = f[:1] + good[0][1:5] + f[5:-4]
            r.add(body + zlib.crc32(body).to_bytes(4, "little"))
        r.payload(good[0][1:5])

    attack("forged frames under a real payload id", forged_frames, LabelcastError)
    os.chmod(priv_p, 0o644)
    attack("private key file readable by others", lambda: load_private_key(priv_p), KeyFileError)
    os.chmod(priv_p, 0o600)

    def oversized():
        b = bytearray(p[:-SIG_LEN])
        b[14:15] = bytes([0x05])
        body = bytes(b[:15]) + bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) + bytes(b[15:])
        open_payload(body + key.sign(DOMAIN + store.root + body), trust, store.root, now=0)

    attack("declared sizes beyond the format's limits (re-signed)", oversized, LabelcastError)
    attack("payload over 64 MiB", lambda: open_payload(b"LCST\x01" + bytes(65 << 20), trust, store.root), LimitError)

    # power cuts
    rows.append(power_cuts(kills, work, store, trust, key, p))
    return rows


def _receive_cmd(inp, work, out, resume):
    cmd = [
        sys.executable,
        "-m",
        "labelcast",
        "receive",
        str(inp),
        "--reference",
        str(work / "ref"),
        "--trust",
        str(work / "keys" / "sender.pub"),
        "--out",
        str(out),
        "--state",
        str(work / "state-kill"),
        "--train-samples",
        "30000",
        "--json",
    ]
    return cmd + (["--resume"] if resume else [])


def power_cuts(kills: int, work: Path, store, trust, key, p) -> dict:
    env = {**os.environ, "LABELCAST_PROGRESS": "0"}
    frames_dir = work / "frames"
    write_frames(make_frames(p, 64, 34), frames_dir)
    t = time.time()
    ref = subprocess.run(
        _receive_cmd(frames_dir, work, work / "ref-run", False), env=env, capture_output=True, text=True
    )
    full = time.time() - t
    assert ref.returncode == 0, ref.stderr
    shutil.rmtree(work / "state-kill")
    rng = np.random.default_rng(7)
    clean = 0
    details = []
    for i in range(kills):
        out = work / f"kill-{i}"
        st = work / "state-kill"
        shutil.rmtree(st, ignore_errors=True)
        proc = subprocess.Popen(
            _receive_cmd(frames_dir, work, out, False), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        delay = float(rng.uniform(0.2, full * 0.95))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kid = key_id(key.public_key())
        accepted_after_kill = ReplayState(st).read(kid)["accepted"]
        report_exists = (out / "receive-report.json").exists()
        # a killed run must never look finished: no report without an accepted sequence, no half model
        consistent = (report_exists and accepted_after_kill == 5) or (not report_exists and accepted_after_kill == 0)
        rerun = subprocess.run(_receive_cmd(frames_dir, work, out, True), env=env, capture_output=True, text=True)
        if report_exists:
            ok = rerun.returncode == ReplayError.exit_code  # already done: a replay, benignly refused
        else:
            ok = rerun.returncode == 0 and (out / "student.onnx").exists()
            if ok:  # the model must load and be the right shape
                import onnxruntime as ort

                sess = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
                ok = sess.run(None, {"image": np.zeros((2, 1, 8, 8), np.float32)})[0].shape == (2, 4)
        again = subprocess.run(_receive_cmd(frames_dir, work, out, True), env=env, capture_output=True, text=True)
        ok = ok and consistent and again.returncode == ReplayError.exit_code
        clean += ok
        details.append({"kill_after_s": round(delay, 2), "finished_before_kill": report_exists, "recovered": ok})
        shutil.rmtree(out, ignore_errors=True)
    (work / "kills.json").write_text(json.dumps(details, indent=1))
    return {
        "class": "fault",
        "attack or fault": f"SIGKILL of `receive` at random points (uninterrupted run {full:.1f} s),"
        " then rerun with --resume",
        "cases": kills,
        "outcome": outcome(clean, kills, "recovered: model exported once, state consistent, replay refused after"),
    }


DOC_HEAD = """# Reliability and security

Every attack and fault tried against the device side, how many cases, and the
outcome. Regenerate this table with:

    python benchmarks/reliability.py --doc docs/reliability.md

Also covered by the test suite (`tests/`): 40,000 fuzzed decoder inputs per
`make test-slow` run (`tests/codec/test_fuzz.py`; the large run is `make fuzz`, which also runs the
coverage-guided atheris targets for the payload decoder, the frame reassembler
and the manifest reader, `benchmarks/atheris_fuzz.py`), disk full while
writing a checkpoint (the previous checkpoint stays intact), an unwritable
output folder, an altered reference item refused before training, resume after
an interruption ending at the same weights as an uninterrupted run, a reference
item lost while the device runs (named by index), and a payload at the format's
declared limits (N = 2³² − 1, 65,536 classes) decoding normally.

"""


def splice_table(doc: str | None, table_md: str, fuzz_line: str = "") -> str:
    """The doc with its attack table (and the last-fuzz line) replaced; the prose around them kept."""
    if not doc:
        return DOC_HEAD + table_md + "\n" + fuzz_line
    lines = doc.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("| class")), None)
    if start is None:
        return doc.rstrip("\n") + "\n\n" + table_md + "\n" + fuzz_line
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    table_lines = table_md.rstrip("\n").splitlines()
    out = lines[:start] + table_lines + lines[end:]
    if fuzz_line.strip():
        hit = [i for i, ln in enumerate(out) if ln.startswith("Last `make fuzz`:")]
        if hit:
            out[hit[0]] = fuzz_line.strip()
        else:  # right below the table
            pos = start + len(table_lines)
            out[pos:pos] = ["", fuzz_line.strip()]
    return "\n".join(out) + "\n"


COLS = ["class", "attack or fault", "cases", "outcome"]


def render(rows: list[dict]) -> str:
    """docs/reliability.md's attack table from a JSON this wrote."""
    return md_table(rows, COLS)


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "reliability:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--doc", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rows = run(a.kills, Path(d))
    text = table(rows, COLS, "reliability")
    if a.doc:
        fuzz = Path("out/bench/fuzz.json")
        extra = ""
        if fuzz.exists():
            f = json.loads(fuzz.read_text())
            extra = (
                f"\nLast `make fuzz`: {f['cases']:,} inputs, {f['untyped_exceptions']} untyped exceptions, "
                f"slowest case {f['slowest_case_s']} s, {f['seconds']} s in all.\n"
            )
        doc = Path(a.doc)
        doc.write_text(splice_table(doc.read_text() if doc.exists() else None, text, extra))
    write_json(a.json, rows)


if __name__ == "__main__":
    main()
