"""Synthetic reference stores for scale tests: N small items in G groups of realistic sizes.

Group sizes follow the lognormal shape of ImageNet-21K's synsets (14,197,122 items
in 21,841 groups by default); items are small random images with a per-group
brightness so that a model has something to tell apart. Written in chunks
(bounded memory), hashed with the same code as any store, deterministic per seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from labelcast.codec.manifest import hash_items, write_manifest

__all__ = ["group_sizes", "synth_store"]


def group_sizes(n: int, groups: int, rng: np.random.Generator) -> np.ndarray:
    raw = rng.lognormal(mean=6.2, sigma=0.9, size=groups)
    sizes = np.maximum(1, np.floor(raw / raw.sum() * n)).astype(np.int64)
    diff = n - int(sizes.sum())
    if diff > 0:
        sizes[:diff] += 1
    else:
        while diff < 0:  # rare: rounding up by the floor of 1 overshot
            i = int(np.argmax(sizes))
            take = min(-diff, int(sizes[i]) - 1)
            sizes[i] -= take
            diff += take
    return sizes


def synth_store(
    out: str | os.PathLike,
    n: int = 14_197_122,
    groups: int = 21_841,
    size: int = 4,
    seed: int = 0,
    chunk: int = 1 << 20,
    progress=None,
    channels: int = 1,
) -> dict:
    rng = np.random.default_rng(seed)
    sizes = group_sizes(n, groups, rng)
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    shape = (size, size, channels)
    chunk = max(1, min(chunk, (64 << 20) // int(np.prod(shape))))  # ~64 MB of pixels per write
    gid = np.repeat(np.arange(groups, dtype=np.uint32), sizes)
    level = rng.integers(0, 200, groups).astype(np.int16)
    # written with plain file writes (no writable memory map: the process stays small at any N)
    with open(outp / "items.u8", "wb") as fi, open(outp / "hashes.partial", "wb") as fh:
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            noise = rng.integers(0, 56, (e - s, *shape), dtype=np.int16)
            items = (level[gid[s:e]][:, None, None, None] + noise).astype(np.uint8)
            fi.write(items.tobytes())
            fh.write(np.ascontiguousarray(hash_items(items)).tobytes())
            if progress:
                progress(e - s)
    hashes = np.memmap(outp / "hashes.partial", dtype=np.uint8, mode="r", shape=(n, 32))
    root = write_manifest(
        outp / "manifest.lcm", hashes, gid, [f"g{i:05d}" for i in range(groups)], (size, size, channels)
    )
    del hashes
    (outp / "hashes.partial").unlink()
    info = {
        "format": "labelcast-store/1",
        "source": f"synthetic:{n}x{groups}:seed{seed}",
        "items": n,
        "item_shape": [size, size, channels],
        "groups": groups,
        "root": root.hex(),
    }
    (outp / "store.json").write_text(json.dumps(info, indent=2))
    return info
