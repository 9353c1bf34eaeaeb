"""``student pretrain``: pretrain the device's student on the reference pool, once, before deployment.

Both ends hold the reference pool, and no target label is needed to learn its structure: the
student is trained to tell the pool's content clusters apart (``pseudo_classes`` k-means clusters
of the items' thumbnails, ``labelcast.sender.clusters``; a store built in clusters uses its own).
The weights, minus nothing, are written as one ``.safetensors`` file with its arch, input and the
reference root it was made from in the file's metadata; by default it goes into the store folder
(``REF/backbone-ARCH.safetensors``) so that it is installed on the device with the store, and its
SHA-256 is recorded in ``REF/backbones.json``: the device refuses a backbone whose hash differs from
the record, whose arch differs from its student's, or that was pretrained on another store
(:func:`labelcast.receiver.train.load_backbone`) — checks that cost no link bytes. On the device
``receive`` starts from it by default and replaces its head with one for the task's classes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..codec.manifest import ReferenceStore
from ..codec.preprocess import Preprocess
from ..codec.storage import atomic_write
from ..profiles import DeviceProfile

__all__ = ["PretrainConfig", "pretrain", "backbone_path", "record_backbone"]


@dataclass
class PretrainConfig:
    arch: str = "cnn-small"  # the device's student
    pseudo_classes: int = 128  # k-means clusters the student learns to tell apart (0: the store's own groups)
    max_items: int = 60_000  # a seeded sample of the pool (all when smaller)
    train_samples: int = 600_000  # images seen
    seed: int = 0


def backbone_path(reference: str | os.PathLike, arch: str) -> Path:
    """Where a store's backbone for ``arch`` lives (installed on the device with the store)."""
    return Path(reference) / f"backbone-{arch}.safetensors"


def record_backbone(reference: str | os.PathLike, arch: str, sha256: str) -> None:
    """Record a store's backbone hash in ``REF/backbones.json`` (read by the device)."""
    path = Path(reference) / "backbones.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known[arch] = sha256
    atomic_write(path, json.dumps(known, indent=2, sort_keys=True), what=f"backbone record {path}")


def _pseudo_labels(store: ReferenceStore, pick: np.ndarray, cfg: PretrainConfig) -> tuple[np.ndarray, int]:
    if cfg.pseudo_classes == 0:
        g = np.asarray(store.manifest.groups)[pick].astype(np.int64)
        return g, int(g.max()) + 1
    from .clusters import ClusterConfig, assign_clusters, fit_clusters, thumbnails

    x = store.read(pick)
    model = fit_clusters(thumbnails(x), ClusterConfig(k=cfg.pseudo_classes, seed=cfg.seed))
    lab = assign_clusters(x, model).astype(np.int64)
    used, lab = np.unique(lab, return_inverse=True)
    return lab, int(used.size)


def pretrain(
    reference: str | os.PathLike, out: str | os.PathLike | None = None, cfg: PretrainConfig | None = None, progress=None
) -> dict:
    """Pretrain ``cfg.arch`` on the store's pseudo-classes; writes ``out`` (default: in the store)."""
    from safetensors.torch import save

    from ..receiver.train import StudentConfig, file_sha256, train_student

    cfg = cfg or PretrainConfig()
    store = ReferenceStore(reference)
    rng = np.random.default_rng(cfg.seed)
    n = min(store.n, cfg.max_items)
    pick = np.sort(rng.choice(store.n, n, replace=False)) if n < store.n else np.arange(store.n)
    y, k = _pseudo_labels(store, pick, cfg)
    x = store.read(pick)
    h, w, c = store.manifest.item_shape
    pp = Preprocess((h, w), c, 1 / 255, (0.0,), (1.0,))
    ground = DeviceProfile("ground", memory_mb=1 << 16, usable_fraction=0.5, cpu_cores=os.cpu_count() or 2)
    sc = replace(StudentConfig(), arch=cfg.arch, train_samples=cfg.train_samples, min_epochs=1, seed=cfg.seed)
    model, info = train_student(x, y, k, pp, ground, sc, progress=progress)
    meta = {
        "labelcast.arch": cfg.arch,
        "labelcast.input": f"{h}x{w}x{c}",
        "labelcast.reference_root": store.root.hex(),
        "labelcast.pseudo_classes": str(k),
        "labelcast.items": str(n),
    }
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    dst = Path(out) if out is not None else backbone_path(reference, cfg.arch)
    atomic_write(dst, save(state, metadata=meta), what=f"backbone {dst}")
    digest = file_sha256(dst)
    if dst.resolve().parent == Path(reference).resolve():
        record_backbone(reference, cfg.arch, digest)
    return {
        "backbone": str(dst),
        "sha256": digest,
        "arch": cfg.arch,
        "pseudo_classes": k,
        "items": n,
        "train_seconds": info["train_seconds"],
        "bytes": dst.stat().st_size,
    }
