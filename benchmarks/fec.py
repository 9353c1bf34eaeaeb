"""Erasure codes on PyPI, measured on labelcast's job: rebuild a payload from any large-enough
subset of fixed-size frames. zfec (Reed–Solomon k-of-m, C), raptorq (RFC 6330 fountain
code, Rust), reedsolo (byte-error-correcting RS over GF(256), pure Python).

    python benchmarks/fec.py [--json out/bench/fec.json]

Each gets a 100 KB payload in 250-byte symbols with 34 % repair symbols, loses
20 % of the symbols at random (seeded), and must rebuild it. Reported: encode and
decode time, symbols sent, and whether it rebuilt the payload (20 trials).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_grid, render_into, splice_block, table, write_json  # noqa: E402

SYM, OVER, LOSS, TRIALS = 250, 0.34, 0.20, 20


def run_zfec(data: bytes, rng) -> tuple[float, float, int, bool]:
    from labelcast.codec.framing import Reassembler, make_frames

    t = time.perf_counter()
    frames = make_frames(data, SYM + 14, 34)
    enc = time.perf_counter() - t
    keep = rng.permutation(len(frames))[: int(len(frames) * (1 - LOSS))]
    t = time.perf_counter()
    r = Reassembler()
    for i in keep:
        r.add(frames[i])
    try:
        ok = r.payload() == data
    except Exception:  # noqa: BLE001
        ok = False
    return enc, time.perf_counter() - t, len(frames), ok


def run_raptorq(data: bytes, rng) -> tuple[float, float, int, bool]:
    import raptorq

    t = time.perf_counter()
    enc = raptorq.Encoder.with_defaults(data, SYM)
    packets = enc.get_encoded_packets(int(len(data) / SYM * OVER) + 1)
    te = time.perf_counter() - t
    keep = rng.permutation(len(packets))[: int(len(packets) * (1 - LOSS))]
    t = time.perf_counter()
    dec = raptorq.Decoder.with_defaults(len(data), SYM)
    out = None
    for i in keep:
        out = dec.decode(bytes(packets[i]))
        if out is not None:
            break
    return te, time.perf_counter() - t, len(packets), out == data


def run_reedsolo(data: bytes, rng) -> tuple[float, float, int, bool]:
    # RS(255, 191) per column across 191 data frames: one codeword per byte position of a frame
    import reedsolo

    k = 191
    nsym = 64
    rs = reedsolo.RSCodec(nsym)
    blocks = [data[i : i + k * SYM] for i in range(0, len(data), k * SYM)]
    t = time.perf_counter()
    coded = []
    for b in blocks:
        b = b + b"\0" * (k * SYM - len(b))
        cols = np.frombuffer(b, np.uint8).reshape(k, SYM)
        coded.append(np.stack([np.frombuffer(bytes(rs.encode(bytes(cols[:, j]))), np.uint8) for j in range(SYM)], 1))
    te = time.perf_counter() - t
    t = time.perf_counter()
    ok = True
    out = []
    for c in coded:
        lost = rng.permutation(k + nsym)[: int((k + nsym) * LOSS)]
        rows = []
        for j in range(SYM):
            col = bytearray(c[:, j].tobytes())
            for i in lost:
                col[i] = 0
            try:
                rows.append(np.frombuffer(bytes(rs.decode(col, erase_pos=list(map(int, lost)))[0]), np.uint8))
            except reedsolo.ReedSolomonError:
                ok = False
                break
        if not ok:
            break
        out.append(np.stack(rows, 1).tobytes())
    ok = ok and b"".join(out)[: len(data)] == data
    return te, time.perf_counter() - t, sum(c.shape[0] for c in coded), ok


def render(rows: list[dict]) -> str:
    """docs/link.md's erasure-code table from a JSON this wrote."""

    def ms(key):
        return lambda r: None if r.get(key) is None else f"{r[key]:.1f} ms"

    return md_grid(
        rows,
        [
            ("library", "library"),
            ("encode", ms("encode_ms")),
            ("decode", ms("decode_ms")),
            ("symbols sent", "symbols_sent"),
            ("rebuilt", "rebuilt"),
        ],
    )


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "fec:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/link.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    data = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    rows = []
    for name, fn, trials in (
        ("zfec", run_zfec, TRIALS),
        ("raptorq", run_raptorq, TRIALS),
        ("reedsolo", run_reedsolo, 1),
    ):
        try:
            res = [fn(data, np.random.default_rng(s)) for s in range(trials)]
        except ImportError:
            rows.append({"library": name, "rebuilt": "not installed"})
            continue
        rows.append(
            {
                "library": name,
                "encode_ms": round(1000 * np.median([r[0] for r in res]), 1),
                "decode_ms": round(1000 * np.median([r[1] for r in res]), 1),
                "symbols_sent": res[0][2],
                "rebuilt": f"{sum(r[3] for r in res)}/{trials}",
            }
        )
    table(
        rows,
        ["library", "encode_ms", "decode_ms", "symbols_sent", "rebuilt"],
        "erasure codes: 100 KB, 250 B symbols, 34 % repair, 20 % lost",
    )
    write_json(a.json, rows)


if __name__ == "__main__":
    main()
