"""Build a reference store from a source: decode once, hash, group, write the manifest.

The build is deterministic (same source and options → byte-identical store and
root), memory-bounded (one chunk in RAM at a time) and resumable: progress is
recorded per chunk in ``build.progress`` and a rerun with the same options
continues from there. A finished store is never replaced without ``force``: every
device holding it would refuse every payload made for the new one.

**Groups** (what the codec conditions labels and positions on) are chosen by
:func:`grouping`: content clusters by default — ``K = round(√N / 8)`` clusters (32 for
the 66,797-item built-in pools, 471 at ImageNet-21K's 14.2M), none below 2 — unless the
source's own folders already describe the content at least as well (at least as many
folders as clusters would be, or folders that explain most of the clusters:
I(cluster; folder) ≥ 0.5·H(cluster)). ``clusters=0`` keeps the source's order and folders.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec.errors import LabelcastError, SourceError, StorageError
from ..codec.manifest import ReferenceStore, hash_items, write_manifest, write_provenance
from ..codec.storage import atomic_write, check_space
from ..datasets.sources import Source, open_source

__all__ = ["BuildConfig", "build_store", "auto_clusters", "grouping"]

PARTIALS = ("build.progress", "hashes.partial", "srchash.partial.npy", "order.partial.npy", "items.u8.reorder")


@dataclass
class BuildConfig:
    size: int | tuple[int, int] | str | None = (
        None  # S or (H, W) of stored items; None: the source's own (32 for folders)
    )
    channels: int | None = None  # 1 (grey) or 3 (RGB); None: the source's own (3 for folders)
    chunk: int = 4096  # items decoded per step (bounds memory)
    clusters: int | None = None  # None: the rule (module docstring); 0: source order and folders; K: K clusters
    fit: str = "crop"  # how images reach the size: crop (keep aspect, centre), squash, pad
    force: bool = False  # replace a finished store
    skip_bad: bool = False  # leave out unreadable image files (listed in the summary) instead of stopping
    per_line: bool = False  # a folder of .txt files: one item per line


def auto_clusters(n: int) -> int:
    """The default cluster count for n items: round(√n / 8), 0 when that is below 2."""
    k = int(round(math.sqrt(max(n, 0)) / 8))
    return k if k >= 2 else 0


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def grouping(folders: np.ndarray, clusters: np.ndarray, k: int) -> tuple[str, dict]:
    """``folders`` or ``clusters`` (see the module docstring), and the figures that decided it."""
    nf = int(folders.max()) + 1 if folders.size else 0
    joint = np.bincount(folders.astype(np.int64) * k + clusters.astype(np.int64), minlength=nf * k).reshape(nf, k)
    h_c = _entropy(joint.sum(0))
    h_c_given_f = sum(row.sum() / joint.sum() * _entropy(row) for row in joint if row.sum())
    mi = h_c - h_c_given_f
    why = {"folders": nf, "clusters": k, "cluster_entropy_bits": round(h_c, 3), "mutual_information_bits": round(mi, 3)}
    use_folders = nf >= 2 and (nf >= k or mi >= 0.5 * h_c)
    return ("folders" if use_folders else "clusters"), why


def _existing_root(outp: Path) -> str | None:
    if not (outp / "manifest.lcm").exists() or (outp / "build.progress").exists():
        return None
    try:
        return ReferenceStore(outp, check=False).root.hex()
    except LabelcastError:  # a damaged store is still a store the user may want: ask for --force
        return "unreadable"


def _write_items(
    src: Source, outp: Path, cfg: BuildConfig, opts: dict, progress
) -> tuple[np.memmap, np.memmap, np.ndarray]:
    """Decode the source into ``items.u8`` chunk by chunk (resuming from ``build.progress``)."""
    h, w, c = src.item_shape
    prog_file = outp / "build.progress"
    start = 0
    if prog_file.exists():
        st = json.loads(prog_file.read_text())
        if st.get("options") == opts:
            start = int(st["done"])
    mode = "r+" if start and (outp / "items.u8").exists() else "w+"
    items = np.memmap(outp / "items.u8", dtype=np.uint8, mode=mode, shape=(src.n, h, w, c))
    hashes = np.memmap(outp / "hashes.partial", dtype=np.uint8, mode=mode, shape=(src.n, 32))
    src_hashes = np.zeros((src.n, 32), dtype=np.uint8)
    if start:
        src_hashes[:start] = np.load(outp / "srchash.partial.npy")[:start]
    for s, x, hs in src.chunks(cfg.chunk, start=start):
        items[s : s + x.shape[0]] = x
        hashes[s : s + x.shape[0]] = hash_items(x)
        src_hashes[s : s + x.shape[0]] = np.frombuffer(b"".join(hs), dtype=np.uint8).reshape(-1, 32)
        items.flush()
        hashes.flush()
        np.save(outp / "srchash.partial.npy", src_hashes)
        _atomic_write(prog_file, json.dumps({"options": opts, "done": s + x.shape[0]}))
        if progress:
            progress(x.shape[0])
    return items, hashes, src_hashes


def build_store(source: str, out: str | os.PathLike, config: BuildConfig | None = None, progress=None) -> dict:
    """Build (or resume building) a reference store; returns its summary.

    Raises FileExistsError when ``out`` holds a finished store and ``force`` is not set."""
    cfg = config or BuildConfig()
    outp = Path(out)
    old_root = _existing_root(outp)
    if old_root is not None and not cfg.force:
        raise FileExistsError(
            f"{outp} already holds a reference store (root {old_root}); devices holding it would refuse every "
            "payload made for a new one. Use another --out, or --force to replace it"
        )
    src = open_source(source, cfg.size, cfg.channels, fit=cfg.fit, skip_bad=cfg.skip_bad, per_line=cfg.per_line)
    if cfg.clusters is not None and cfg.clusters > src.n:
        raise ValueError(f"{cfg.clusters} clusters for {src.n} items: use at most {src.n} (or omit --clusters)")
    if src.kind in ("text", "vector"):
        info = (_build_text if src.kind == "text" else _build_vector)(src, outp, cfg, old_root)
        if progress:
            progress(src.n)
        return info
    opts = {
        "source": source,
        "shape": [src.n, *src.item_shape],
        "chunk": cfg.chunk,
        "clusters": cfg.clusters,
        "fit": cfg.fit,
    }
    # before the long work: the items and a hash per item (and per source file), less what a resumed build has
    done = (outp / "items.u8").stat().st_size if (outp / "items.u8").exists() else 0
    check_space(outp, max(0, src.n * (int(np.prod(src.item_shape)) + 96) - done), what="the reference store")
    try:
        if old_root is not None:  # --force: the old store goes only now that the source opened
            for f in ("manifest.lcm", "store.json", "provenance.lcp"):
                (outp / f).unlink(missing_ok=True)
        outp.mkdir(parents=True, exist_ok=True)
        items, hashes, src_hashes = _write_items(src, outp, cfg, opts, progress)
        info = _finish(src, outp, items, hashes, src_hashes, cfg, opts)
    except OSError as e:
        raise StorageError(f"cannot write the reference store in {outp}: {e.strerror}; rerun to resume") from e
    except SourceError as e:
        raise SourceError(f"{e}. The partial build in {outp} resumes when rerun with the same options") from e
    if old_root is not None:
        info["replaced_root"] = old_root
    return info


def _finish(src: Source, outp: Path, items, hashes, src_hashes, cfg: BuildConfig, opts: dict) -> dict:
    h, w, c = src.item_shape
    k = auto_clusters(src.n) if cfg.clusters is None else cfg.clusters
    groups, group_names, paths, order, decided = src.groups, src.group_names, src.paths, None, None
    if k and src.n:
        order, clusters = _cluster_store(outp, items, k, cfg, opts, src.groups if cfg.clusters is None else None)
        if clusters is None:
            order, decided = None, "folders"
        else:
            groups, decided = clusters, "clusters"
            group_names = [f"cluster-{i:04d}" for i in range(int(groups.max()) + 1)]
            paths = [src.paths[i] for i in order] if src.paths else src.paths
    hs = np.asarray(hashes) if order is None else np.asarray(hashes)[order]
    sh = src_hashes if order is None else src_hashes[order]
    root = write_manifest(outp / "manifest.lcm", hs, groups, group_names, (h, w, c))
    write_provenance(outp / "provenance.lcp", paths, sh)
    info = {
        "format": "labelcast-store/1",
        "source": src.name,
        "items": src.n,
        "item_shape": [h, w, c],
        "item_bytes": h * w * c,
        "groups": len(group_names),
        "grouping": decided or ("source order" if not k else "folders"),
        "clusters": len(group_names) if decided == "clusters" else 0,
        "fit": cfg.fit,
        "skipped_files": src.skipped,
        "root": root.hex(),
    }
    _atomic_write(outp / "store.json", json.dumps(info, indent=2))
    del items, hashes
    for p in PARTIALS:
        (outp / p).unlink(missing_ok=True)
    return info


def _cluster_store(outp: Path, items: np.memmap, k: int, cfg: BuildConfig, opts: dict, folders):
    """Cluster the written items and rewrite ``items.u8`` cluster by cluster; returns (order, groups),
    or (None, None) when ``folders`` (the rule's comparison) describe the content at least as well.

    Crash-safe: the order is saved and the reordered copy written in full before the
    progress file says ``reordering``; only then does the copy replace ``items.u8``.
    A rerun after a cut finishes the replace (or finds it done) and never reorders twice.
    """
    from .clusters import ClusterConfig, cluster_items, cluster_order

    prog_file = outp / "build.progress"
    order_path = outp / "order.partial.npy"
    tmp = outp / "items.u8.reorder"
    st = json.loads(prog_file.read_text()) if prog_file.exists() else {}
    if st.get("reordering") and order_path.exists():
        saved = np.load(order_path)
        if tmp.exists():
            os.replace(tmp, outp / "items.u8")
        return saved[0], saved[1].astype(np.uint32)
    groups = cluster_items(items, ClusterConfig(k=k), chunk=cfg.chunk)
    if folders is not None and len(set(np.asarray(folders).tolist())) > 1:
        choice, _ = grouping(np.asarray(folders), groups, int(groups.max()) + 1)
        if choice == "folders":
            return None, None
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


def _build_text(src: Source, outp: Path, cfg: BuildConfig, old_root: str | None) -> dict:
    """A text store (``texts.u8`` + ``offsets.u64``, see ``codec.manifest``): the corpus is held in memory
    (text is small beside images: 133k definitions are 18 MB), grouped by the same rule as images —
    clusters of hashed word features unless the source's folders describe the content as well."""
    from ..codec.text import hash_texts
    from .clusters import ClusterConfig, cluster_order, cluster_texts

    texts = src.images()
    k = auto_clusters(src.n) if cfg.clusters is None else cfg.clusters
    groups, group_names, order, decided = src.groups, src.group_names, np.arange(src.n), "source order"
    if k and src.n:
        cl = cluster_texts(texts, ClusterConfig(k=k))
        choice = "clusters"
        if cfg.clusters is None and len(set(src.groups.tolist())) > 1:
            choice, _ = grouping(src.groups, cl, int(cl.max()) + 1)
        decided = choice
        if choice == "clusters":
            order = cluster_order(cl)
            groups, group_names = cl[order].astype(np.uint32), [f"cluster-{i:04d}" for i in range(int(cl.max()) + 1)]
    texts = texts[order]
    src_hashes = hash_texts(texts)
    offsets = np.zeros(src.n + 1, dtype="<u8")
    offsets[1:] = np.cumsum([len(t) for t in texts])
    try:
        if old_root is not None:
            for f in ("manifest.lcm", "store.json", "provenance.lcp", "items.u8"):
                (outp / f).unlink(missing_ok=True)
        outp.mkdir(parents=True, exist_ok=True)
        atomic_write(outp / "texts.u8", b"".join(texts), what=f"texts in {outp}")
        atomic_write(outp / "offsets.u64", offsets.tobytes(), what=f"offsets in {outp}")
        root = write_manifest(outp / "manifest.lcm", src_hashes, groups, group_names, (0,))
        write_provenance(outp / "provenance.lcp", [src.paths[i] for i in order], src_hashes)
    except OSError as e:
        raise StorageError(f"cannot write the text store in {outp}: {e.strerror}") from e
    info = {
        "format": "labelcast-store/1",
        "modality": "text",
        "source": src.name,
        "items": src.n,
        "item_shape": [0],
        "text_bytes": int(offsets[-1]),
        "groups": len(group_names),
        "grouping": decided,
        "clusters": len(group_names) if decided == "clusters" else 0,
        "skipped_files": src.skipped,
        "root": root.hex(),
    }
    _atomic_write(outp / "store.json", json.dumps(info, indent=2))
    if old_root is not None:
        info["replaced_root"] = old_root
    return info


def _build_vector(src: Source, outp: Path, cfg: BuildConfig, old_root: str | None) -> dict:
    """A vector store (``codec.manifest``: ``items.u8`` of little-endian floats, item shape (D, E)): decoded
    chunk by chunk into a temporary file, clustered on standardised features by the same rule as images,
    written in cluster order, then renamed into place with its manifest."""
    from .clusters import ClusterConfig, cluster_order, cluster_vectors

    (d,), esize = src.item_shape, src.dtype.itemsize
    check_space(outp, src.n * (d * esize + 96) * 2, what="the vector store")
    raw = outp / "items.u8.partial"
    try:
        outp.mkdir(parents=True, exist_ok=True)
        x = np.memmap(raw, dtype=src.dtype, mode="w+", shape=(max(src.n, 1), d))
        src_hashes = np.zeros((src.n, 32), dtype=np.uint8)
        for s, chunk, hs in src.chunks(cfg.chunk):
            x[s : s + chunk.shape[0]] = chunk
            src_hashes[s : s + chunk.shape[0]] = np.frombuffer(b"".join(hs), dtype=np.uint8).reshape(-1, 32)
        x.flush()
        k = auto_clusters(src.n) if cfg.clusters is None else cfg.clusters
        order, groups, names, decided = np.arange(src.n), src.groups, src.group_names, "source order"
        if k and src.n:
            cl = cluster_vectors(x[: src.n], ClusterConfig(k=k), chunk=cfg.chunk)
            order, decided = cluster_order(cl), "clusters"
            groups, names = cl[order].astype(np.uint32), [f"cluster-{i:04d}" for i in range(int(cl.max()) + 1)]
        if old_root is not None:
            for f in ("manifest.lcm", "store.json", "provenance.lcp", "items.u8"):
                (outp / f).unlink(missing_ok=True)

        def write(f) -> None:
            for s in range(0, src.n, cfg.chunk):
                f.write(np.ascontiguousarray(x[order[s : s + cfg.chunk]]).tobytes())

        atomic_write(outp / "items.u8", write, what=f"vectors in {outp}")
        raw.unlink(missing_ok=True)  # the mapping stays valid until it is dropped; the name goes now
        hashes = src_hashes[order]  # an item's hash is the SHA-256 of its float bytes, as the source's is
        root = write_manifest(outp / "manifest.lcm", hashes, groups, names, (d, esize))
        write_provenance(outp / "provenance.lcp", [src.paths[i] for i in order], hashes)
    except OSError as e:
        raise StorageError(f"cannot write the vector store in {outp}: {e.strerror}") from e
    info = {
        "format": "labelcast-store/1",
        "modality": "vector",
        "source": src.name,
        "items": src.n,
        "item_shape": [d],
        "dtype": "float32" if esize == 4 else "float16",
        "item_bytes": d * esize,
        "groups": len(names),
        "grouping": decided,
        "clusters": len(names) if decided == "clusters" else 0,
        "skipped_files": [],
        "root": root.hex(),
    }
    _atomic_write(outp / "store.json", json.dumps(info, indent=2))
    if old_root is not None:
        info["replaced_root"] = old_root
    return info


def _atomic_write(path: Path, text: str) -> None:
    atomic_write(path, text, what=str(path))
