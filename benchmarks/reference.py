"""Reference-store benchmark: build, full verify and selective verify, on ≥ 50,000 real image files
and on an array store — against `sha256sum` (and `b3sum` when installed) over the same bytes.

    python benchmarks/reference.py [--files 50000] [--json docs/results/reference.json]
    python benchmarks/reference.py --render docs/results/reference.json   # only rewrite docs/reference.md's tables

The folder is made from Fashion-MNIST images written as PNG and JPEG files in
100 synset-like folders. Builds run in a subprocess so their peak RSS is their own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, md_grid, render_into, splice_blocks, table, write_json  # noqa: E402

BUILD = r"""
import json, resource, sys, time
from labelcast.sender.reference import BuildConfig, build_store
t = time.time()
size, ch = (int(v) for v in (sys.argv[3:5] if len(sys.argv) > 4 else (28, 1)))
info = build_store(sys.argv[1], sys.argv[2], BuildConfig(size=size, channels=ch, clusters=0, skip_bad=True))
print(json.dumps({"seconds": time.time() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "items": info["items"]}))
"""


def make_folder(root: Path, n: int) -> None:
    from PIL import Image

    from labelcast.datasets.builtin import fashion

    x, _ = fashion("train")
    for i in range(n):
        d = root / f"n{i % 100:08d}"
        d.mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(x[i % len(x), :, :, 0])
        if i % 2:
            im.save(d / f"{i:06d}.png")
        else:
            im.save(d / f"{i:06d}.jpg", quality=92)


def build(source: str, out: Path, size: int = 28, channels: int = 1) -> dict:
    cmd = [sys.executable, "-c", BUILD, source, str(out), str(size), str(channels)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def rgb_rows(d: Path) -> tuple[list[dict], list[dict]]:
    """RGB stores at 64×64×3 and 128×128×3 from Openclipart's 8,121 PNGs (when installed): build and verify."""
    from labelcast.datasets.builtin import CLIPART_DIR

    if not CLIPART_DIR.is_dir():
        return [], []
    builds, ver = [], []
    for size in (64, 128):
        out = d / f"clipart{size}"
        r = build(f"folder:{CLIPART_DIR}", out, size, 3)
        builds.append(
            {
                "source": f"Openclipart PNGs → {size}×{size}×3",
                "items": r["items"],
                "build_items_s": round(r["items"] / r["seconds"]),
                "build_s": round(r["seconds"], 1),
                "peak_rss_mb": round(r["rss_mb"]),
                "under_1GB": r["rss_mb"] < 1024,
            }
        )
        ver += verify_rows(f"{size}×{size}×3 store", out)
    return builds, ver


def cli_hash_seconds(tool: str, path: Path) -> float | None:
    if not shutil.which(tool):
        return None
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([tool, str(path)], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def verify_rows(name: str, store_dir: Path) -> list[dict]:
    from labelcast.codec.manifest import ReferenceStore

    s = ReferenceStore(store_dir)
    mb = s.n * s.manifest.item_bytes / 1e6
    best_full = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        assert s.check_items() == []
        best_full = min(best_full, time.perf_counter() - t)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(s.n, max(1, s.n // 100), replace=False))
    t = time.perf_counter()
    assert s.check_items(idx) == []
    sel = time.perf_counter() - t
    sha = cli_hash_seconds("sha256sum", store_dir / "items.u8")
    b3 = cli_hash_seconds("b3sum", store_dir / "items.u8")
    row = {
        "store": name,
        "items": s.n,
        "store_MB": round(mb, 1),
        "full_verify_MB_s": round(mb / best_full, 1),
        "sha256sum_MB_s": round(mb / sha, 1) if sha else None,
        "x_sha256sum": round(sha / best_full, 3) if sha else None,
        "b3sum_MB_s": round(mb / b3, 1) if b3 else None,
        "verify_1pct_s": round(sel, 4),
        "verify_full_s": round(best_full, 3),
        "selective_over_full": round(sel / best_full, 4),
    }
    return [row]


def hash_choice(store_dir: Path) -> list[dict]:
    """Per-item hashing throughput, SHA-256 (hashlib) vs. BLAKE3 (the blake3 package, if installed)."""
    from labelcast.codec.manifest import ReferenceStore

    s = ReferenceStore(store_dir)
    x = np.asarray(s.items[:20000]).reshape(20000, -1)
    rows = []
    fns = {"sha256": hashlib.sha256}
    try:
        import blake3

        fns["blake3"] = blake3.blake3
    except ImportError:
        pass
    for name, fn in fns.items():
        t = time.perf_counter()
        for r in x:
            fn(r.data).digest()
        dt = time.perf_counter() - t
        rows.append(
            {"hash": name, "item_bytes": x.shape[1], "items_s": round(len(x) / dt), "MB_s": round(x.nbytes / dt / 1e6)}
        )
        big = np.asarray(s.items).tobytes()
        t = time.perf_counter()
        fn(big).digest()
        rows[-1]["one_buffer_MB_s"] = round(len(big) / (time.perf_counter() - t) / 1e6)
    return rows


def _rgb(row: dict) -> bool:
    return row.get("source", row.get("store", "")).startswith(("Openclipart", "64×", "128×"))


def render(result: dict) -> dict[str, str]:
    """docs/reference.md's tables from a JSON this wrote: the hash choice, and build and verify of the grey
    (Fashion-MNIST files) and RGB (Openclipart) stores."""
    build = [
        ("source", "source"),
        ("items", "items"),
        ("build items/s", "build_items_s"),
        ("build s", "build_s"),
        ("peak RSS MB", "peak_rss_mb"),
        ("under 1 GB", lambda r: "yes" if r["under_1GB"] else "no"),
    ]
    verify = [
        ("store", "store"),
        ("items", "items"),
        ("MB", "store_MB"),
        ("full verify MB/s", lambda r: f"{r['full_verify_MB_s']:,.0f}"),
        ("`sha256sum` MB/s", lambda r: None if r["sha256sum_MB_s"] is None else f"{r['sha256sum_MB_s']:,.0f}"),
        ("× `sha256sum`", lambda r: None if r["x_sha256sum"] is None else f"{r['x_sha256sum']:.2f}"),
        ("1 % selective s", lambda r: f"{r['verify_1pct_s']:.4f}"),
        ("full s", lambda r: f"{r['verify_full_s']:.3f}"),
        ("1 % selective / full", lambda r: f"{r['selective_over_full']:.3f}"),
    ]
    hashes = [
        ("hash", "hash"),
        ("item bytes", "item_bytes"),
        ("items/s", "items_s"),
        ("MB/s", "MB_s"),
        ("one buffer MB/s", "one_buffer_MB_s"),
    ]
    return {
        "reference:hash": md_grid(result["hash"], hashes),
        "reference:build": md_grid([r for r in result["build"] if not _rgb(r)], build),
        "reference:verify": md_grid([r for r in result["verify"] if not _rgb(r)], verify),
        "reference:rgb-build": md_grid([r for r in result["build"] if _rgb(r)], build),
        "reference:rgb-verify": md_grid([r for r in result["verify"] if _rgb(r)], verify),
    }


splice = splice_blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--json", default=None)
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's tables from it")
    ap.add_argument("--doc", default="docs/reference.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    from labelcast.datasets.builtin import fashion

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.time()
        make_folder(d / "folder", a.files)
        made = time.time() - t
        x, _ = fashion("train")
        np.save(d / "array.npy", x[: a.files, :, :, 0])
        builds = []
        for name, src in (
            ("folder (PNG+JPEG)", f"folder:{d / 'folder'}"),
            ("array store (npy)", f"npy:{d / 'array.npy'}"),
        ):
            r = build(src, d / name.split()[0])
            builds.append(
                {
                    "source": name,
                    "items": r["items"],
                    "build_items_s": round(r["items"] / r["seconds"]),
                    "build_s": round(r["seconds"], 1),
                    "peak_rss_mb": round(r["rss_mb"]),
                    "under_1GB": r["rss_mb"] < 1024,
                }
            )
        rb, rv = rgb_rows(d)
        builds += rb
        table(builds, list(builds[0]), f"build ({a.files} files made in {made:.0f} s)")
        ver = verify_rows("folder store", d / "folder") + verify_rows("array store", d / "array") + rv
        table(ver, list(ver[0]), "verify: full re-hash vs. the command-line hasher, and 1% selective")
        hc = hash_choice(d / "folder")
        table(hc, list(hc[0]), "per-item hash: SHA-256 vs. BLAKE3")
    result = {"command": " ".join(sys.argv), "machine": machine(), "build": builds, "verify": ver, "hash": hc}
    write_json(a.json, result)


if __name__ == "__main__":
    main()
