"""Build a reference store from a source: decode once, hash, write manifest.

The build is deterministic (same source and options → byte-identical store and
root), memory-bounded (one chunk in RAM at a time) and resumable: progress is
recorded per chunk in ``build.progress`` and a rerun continues from there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.errors import StorageError
from ..codec.manifest import hash_items, write_manifest, write_provenance
from ..datasets.sources import open_pool

__all__ = ["BuildConfig", "build_store"]


@dataclass
class BuildConfig:
    size: int | None = None  # pixels per side of stored items (None: the source's own, 28 for built-ins)
    channels: int | None = None  # 1 (grey) or 3 (RGB); None: the source's own
    chunk: int = 4096  # items decoded per step (bounds memory)


def build_store(source: str, out: str | os.PathLike, config: BuildConfig | None = None, progress=None) -> dict:
    """Build (or resume building) a reference store; returns its summary."""
    cfg = config or BuildConfig()
    pool = open_pool(source, cfg.size, cfg.channels)
    outp = Path(out)
    h, w, c = pool.item_shape
    item_bytes = h * w * c
    prog_file = outp / "build.progress"
    opts = {"source": source, "shape": [pool.n, h, w, c], "chunk": cfg.chunk}
    try:
        outp.mkdir(parents=True, exist_ok=True)
        items_path = outp / "items.u8"
        hashes_path = outp / "hashes.partial"
        start = 0
        if prog_file.exists():
            st = json.loads(prog_file.read_text())
            if st.get("options") == opts:
                start = int(st["done"])
        mode = "r+" if start and items_path.exists() else "w+"
        items = np.memmap(items_path, dtype=np.uint8, mode=mode, shape=(pool.n, h, w, c)) if pool.n else None
        hashes = np.memmap(hashes_path, dtype=np.uint8, mode=mode, shape=(pool.n, 32)) if pool.n else None
        src_hashes = np.zeros((pool.n, 32), dtype=np.uint8)
        if start:
            src_hashes[:start] = np.load(outp / "srchash.partial.npy")[:start]
        for s, x, hs in pool.chunks(cfg.chunk, start=start):
            items[s : s + x.shape[0]] = x
            hashes[s : s + x.shape[0]] = hash_items(x)
            src_hashes[s : s + x.shape[0]] = np.frombuffer(b"".join(hs), dtype=np.uint8).reshape(-1, 32)
            items.flush()
            hashes.flush()
            np.save(outp / "srchash.partial.npy", src_hashes)
            _atomic_write(prog_file, json.dumps({"options": opts, "done": s + x.shape[0]}))
            if progress:
                progress(x.shape[0])
        root = write_manifest(outp / "manifest.lcm", np.asarray(hashes), pool.groups, pool.group_names, (h, w, c))
        write_provenance(outp / "provenance.lcp", pool.paths, src_hashes)
        info = {
            "format": "labelcast-store/1",
            "source": source,
            "items": pool.n,
            "item_shape": [h, w, c],
            "item_bytes": item_bytes,
            "groups": len(pool.group_names),
            "root": root.hex(),
        }
        _atomic_write(outp / "store.json", json.dumps(info, indent=2))
        for p in (prog_file, hashes_path, outp / "srchash.partial.npy"):
            p.unlink(missing_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write the reference store in {outp}: {e.strerror}; rerun to resume") from e
    return info


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
