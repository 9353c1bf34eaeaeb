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
    clusters: int = 0  # > 0: group items into this many content clusters and store them cluster by cluster


def build_store(source: str, out: str | os.PathLike, config: BuildConfig | None = None, progress=None) -> dict:
    """Build (or resume building) a reference store; returns its summary."""
    cfg = config or BuildConfig()
    pool = open_pool(source, cfg.size, cfg.channels)
    outp = Path(out)
    h, w, c = pool.item_shape
    item_bytes = h * w * c
    prog_file = outp / "build.progress"
    opts = {"source": source, "shape": [pool.n, h, w, c], "chunk": cfg.chunk, "clusters": cfg.clusters}
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
        groups, group_names, paths = pool.groups, pool.group_names, pool.paths
        order = None
        if cfg.clusters and pool.n:
            order, groups = _cluster_store(outp, items, cfg, prog_file, opts)
            group_names = [f"cluster-{i:04d}" for i in range(int(groups.max()) + 1)]
            paths = [pool.paths[i] for i in order] if pool.paths else pool.paths
        hs = np.asarray(hashes) if order is None else np.asarray(hashes)[order]
        sh = src_hashes if order is None else src_hashes[order]
        root = write_manifest(outp / "manifest.lcm", hs, groups, group_names, (h, w, c))
        write_provenance(outp / "provenance.lcp", paths, sh)
        info = {
            "format": "labelcast-store/1",
            "source": source,
            "items": pool.n,
            "item_shape": [h, w, c],
            "item_bytes": item_bytes,
            "groups": len(group_names),
            "clusters": cfg.clusters,
            "root": root.hex(),
        }
        _atomic_write(outp / "store.json", json.dumps(info, indent=2))
        for p in (prog_file, hashes_path, outp / "srchash.partial.npy", outp / "order.partial.npy"):
            p.unlink(missing_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write the reference store in {outp}: {e.strerror}; rerun to resume") from e
    return info


def _cluster_store(outp: Path, items: np.memmap, cfg: BuildConfig, prog_file: Path, opts: dict):
    """Cluster the written items and rewrite ``items.u8`` cluster by cluster.

    Crash-safe: the order is saved and the reordered copy written in full before the
    progress file says ``reordering``; only then does the copy replace ``items.u8``.
    A rerun after a cut finishes the replace (or finds it done) and never reorders twice.
    """
    from .clusters import ClusterConfig, cluster_items, cluster_order

    order_path = outp / "order.partial.npy"
    tmp = outp / "items.u8.reorder"
    st = json.loads(prog_file.read_text()) if prog_file.exists() else {}
    if st.get("reordering") and order_path.exists():
        saved = np.load(order_path)
        if tmp.exists():
            os.replace(tmp, outp / "items.u8")
        return saved[0], saved[1].astype(np.uint32)
    groups = cluster_items(items, ClusterConfig(k=cfg.clusters), chunk=cfg.chunk)
    order = cluster_order(groups)
    np.save(order_path, np.stack([order, groups[order].astype(np.int64)]))
    out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=items.shape)
    for s in range(0, order.size, cfg.chunk):
        out[s : s + cfg.chunk] = items[order[s : s + cfg.chunk]]
    out.flush()
    del out
    _atomic_write(prog_file, json.dumps({"options": opts, "done": int(order.size), "reordering": True}))
    os.replace(tmp, outp / "items.u8")
    return order, groups[order].astype(np.uint32)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
