"""Payload codec benchmark: labelcast vs. PLADA's zstd scheme, brotli, lzma and the information bound.

    python benchmarks/codec.py [--quick] [--json out/bench/codec.json]

(a) random selections at N ∈ {70k, 1.28M, 14.2M}, k/N ∈ {0.5%, 1%, 5%}, C ∈ {10, 100, 1000};
(b) the ImageNet-21K-scale selection emulated by benchmarks/in21k_selection.py (seeds 0-2).

Bytes are index set + labels. bound_B is the source's information (log2 C(N,k) + k·log2 C,
the random cases' labels being uniform); emp_bound_B uses the labels' empirical entropy
instead, which no code reaches without also paying for the histogram. "labelcast" is the
two coded sections; "payload" adds the fixed header and the 64-byte signature. PLADA's scheme: the best of varint gaps,
bitmap run-lengths and the raw bitmap, then zstd-19; labels as bytes + zstd-19.
brotli-11 and lzma get the same best transform.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import brotli
import numpy as np
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_table, render_into, splice_blocks, table, write_json  # noqa: E402

from labelcast.codec.indexset import decode_indices, encode_indices, log2_binomial  # noqa: E402
from labelcast.codec.labels import decode_labels, encode_labels  # noqa: E402
from labelcast.codec.payload import build_payload  # noqa: E402

IN21K = Path(__file__).resolve().parent / "in21k_selection.py"  # the emulation, in this repository
KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
ROOT = hashlib.sha256(b"bench").digest()


def _varint(a: np.ndarray) -> bytes:
    out = bytearray()
    for v in a.tolist():
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def index_transforms(idx: np.ndarray, n: int) -> dict[str, bytes]:
    gaps = np.diff(np.concatenate([[-1], idx])) - 1
    bitmap = np.zeros(n, dtype=bool)
    bitmap[idx] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bitmap.view(np.int8), [0]])))
    runs = np.diff(np.concatenate([[0], edges]))
    return {"gaps": _varint(gaps), "runs": _varint(runs), "bitmap": np.packbits(bitmap).tobytes()}


def label_bytes(lab: np.ndarray, c: int) -> bytes:
    return lab.astype(np.uint8 if c <= 256 else np.uint16).tobytes()


def baselines(idx: np.ndarray, lab: np.ndarray, n: int, c: int) -> dict[str, int]:
    tr = index_transforms(idx, n)
    lb = label_bytes(lab, c)
    z = zstandard.ZstdCompressor(level=19)
    res = {}
    for name, comp in (
        ("plada_zstd19", z.compress),
        ("brotli11", lambda b: brotli.compress(b, quality=11)),
        ("lzma", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ):
        res[name] = min(len(comp(t)) for t in tr.values()) + len(comp(lb))
    return res


def label_entropy_bits(lab: np.ndarray) -> float:
    h = np.bincount(lab).astype(np.float64)
    h = h[h > 0]
    return float(-(h * np.log2(h / h.sum())).sum())


def run_case(name, idx, lab, n, c, segments=None, reps=1) -> dict:
    idx = np.asarray(idx, dtype=np.int64)
    lab = np.asarray(lab, dtype=np.int64)
    t = time.perf_counter()
    for _ in range(reps):
        ib = encode_indices(idx, n, segments)
        lb = encode_labels(lab, c, idx, segments)
    enc = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        di = decode_indices(ib, n, idx.size, segments)
        dl = decode_labels(lb, c, di, segments)
    dec = (time.perf_counter() - t) / reps
    assert np.array_equal(di, idx) and np.array_equal(dl, lab), name
    payload, _ = build_payload(
        idx, lab, n_items=n, classes=c, root=ROOT, key=KEY, sequence=1, expires_at=2**33, segments=segments
    )
    bound_emp = (log2_binomial(n, idx.size) + label_entropy_bits(lab)) / 8
    # the source's own information: a uniformly random k-subset with uniform labels
    bound = (log2_binomial(n, idx.size) + idx.size * math.log2(c)) / 8
    row = {
        "case": name,
        "N": n,
        "k": int(idx.size),
        "C": c,
        "bound_B": round(bound),
        "emp_bound_B": round(bound_emp),
        "labelcast_B": len(ib) + len(lb),
        "payload_B": len(payload),
        "x_bound": round((len(ib) + len(lb)) / bound, 4),
        "x_emp_bound": round((len(ib) + len(lb)) / bound_emp, 4),
        **baselines(idx, lab, n, c),
        "encode_s": round(enc, 3),
        "decode_s": round(dec, 3),
    }
    row["x_plada"] = round(row["labelcast_B"] / row["plada_zstd19"], 4)
    if segments is not None:
        starts = np.concatenate([[0], np.cumsum(segments)])
        seg = np.searchsorted(starts, idx, side="right") - 1
        kg = np.bincount(seg, minlength=len(segments))
        gb = sum(
            math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1) for a, b in zip(segments, kg, strict=True)
        ) / math.log(2)
        cond = sum(label_entropy_bits(lab[seg == s]) for s in np.unique(seg))
        row["group_bound_B"] = round((gb + cond) / 8)
    return row


SIZE_COLS = ["labelcast_B", "payload_B", "plada_zstd19", "brotli11", "lzma", "x_plada", "encode_s", "decode_s"]
DOC_RANDOM = ["case", "N", "k", "C", "bound_B", "labelcast_B", "x_bound", *SIZE_COLS[1:]]
DOC_IN21K = ["case", "group_bound_B", "labelcast_B", *SIZE_COLS[1:]]


def render(result: dict) -> dict[str, str]:
    """docs/codec.md's two tables from a JSON this wrote."""
    return {"codec:random": md_table(result["random"], DOC_RANDOM), "codec:in21k": md_table(result["in21k"], DOC_IN21K)}


def splice(doc: str, blocks: dict[str, str]) -> str:
    return splice_blocks(doc, blocks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="70k and 1.28M only, seed 0 of the shared selection")
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/codec.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    rng = np.random.default_rng(0)
    rows = []
    sizes = [70_000, 1_281_167] if a.quick else [70_000, 1_281_167, 14_197_122]
    for n in sizes:
        for frac in (0.005, 0.01, 0.05):
            for c in (10, 100, 1000):
                k = int(round(n * frac))
                idx = np.sort(rng.choice(n, k, replace=False))
                lab = rng.integers(0, c, k)
                rows.append(run_case(f"random {frac:.1%}", idx, lab, n, c))
    cols = ["case", "N", "k", "C", "bound_B", "emp_bound_B", "x_bound", "x_emp_bound", *SIZE_COLS]
    table(rows, cols, "(a) random selections")
    in21 = []
    for seed in (0,) if a.quick else (0, 1, 2):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "sel.npz"
            subprocess.run([sys.executable, str(IN21K), str(out), "--seed", str(seed)], check=True, capture_output=True)
            z = np.load(out)
            in21.append(
                run_case(f"in21k seed {seed}", z["indices"], z["labels"], int(z["n"]), 200, z["group_sizes"], reps=3)
            )
    table(in21, ["case", "N", "k", "C", "group_bound_B", "emp_bound_B", *SIZE_COLS], "(b) ImageNet-21K-scale selection")
    write_json(a.json, {"random": rows, "in21k": in21})


if __name__ == "__main__":
    main()
