"""``send``: score → select → fit the budget → encode → sign → frame → outbox.

The outbox holds ``payload.lcst`` (the signed payload), ``frames/`` (one file per
frame, ready for the modem) and ``send-report.json``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..codec.errors import StorageError
from ..codec.framing import layout_for, make_frames, write_frames
from ..codec.keys import key_id, load_private_key
from ..codec.manifest import ReferenceStore
from ..codec.payload import build_payload
from ..codec.softlabels import soft_from_probs
from ..profiles import LinkProfile, load_link
from .budget import fit_budget, framed_bytes
from .refine import refine
from .scoring import score_store
from .selection import AUTO, SelectConfig, choose_auto, prefix_key, pseudo_labels, rank_items, select, softmax
from .teacher import Teacher

__all__ = ["SendConfig", "send", "next_sequence"]


@dataclass
class SendConfig:
    link: str = "iridium-sbd-mt"  # link profile name or .toml path
    budget: int | None = None  # bytes on the link (frames × frame size); None: 8 KiB
    seconds: float | None = None  # or: time on the link, turned into a byte budget
    keep: float | None = None  # fixed fraction of the reference set (overrides the budget)
    # "auto" (the default): random-keyed for pools near the teacher's domain, energy-high with soft
    # labels (4 runner-ups, T = 2) for far ones (selection.AUTO, choose_auto)
    select: SelectConfig = field(default_factory=lambda: SelectConfig(strategy="auto"))
    overhead: int | None = None  # erasure-code parity per 100 frames; None: the profile's default
    expires_in: float = 30 * 86400.0  # seconds until the payload expires
    sequence: int | None = None  # None: the counter kept beside the key
    soft: bool = False  # add the soft-label section
    soft_extra: int = 2  # runner-up classes per item in soft labels
    soft_levels: int = 16  # quantisation steps of soft probabilities
    soft_temperature: float = 1.0  # soft labels are softmax(logits / T)
    class_names: bool = False  # send class names (costs bytes)
    detector: str | None = None  # second ONNX model for detector-guided refinement (None: no refinement)
    engine: str = "local"  # scoring engine: local | ray
    ray_address: str | None = None  # existing Ray cluster (None: start a local one)
    workers: int = 2  # Ray workers (actors)
    hints: dict = field(default_factory=dict)  # training hints for the receiver (JSON)
    validation_every: int = 0  # hold back every n-th item for the device's A/B check (0: none)


def next_sequence(key_path: Path, explicit: int | None = None) -> int:
    """Next sequence number: one more than the last one recorded beside the key."""
    counter = key_path.with_name(key_path.stem + ".seq")
    last = int(counter.read_text().strip() or 0) if counter.exists() else 0
    seq = explicit if explicit is not None else last + 1
    return seq


def _record_sequence(key_path: Path, seq: int) -> None:
    counter = key_path.with_name(key_path.stem + ".seq")
    last = int(counter.read_text().strip() or 0) if counter.exists() else 0
    if seq > last:
        tmp = counter.with_suffix(".seq.tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, counter)


def send(
    teacher: str | os.PathLike | Teacher,
    reference: str | os.PathLike | ReferenceStore,
    key: str | os.PathLike,
    out: str | os.PathLike,
    cfg: SendConfig | None = None,
    *,
    now: float | None = None,
    progress=None,
    logits: np.ndarray | None = None,
) -> dict:
    """Run the sender pipeline; writes the outbox and returns the report."""
    cfg = cfg or SendConfig()
    t0 = time.time()
    stages: dict[str, float] = {}
    link: LinkProfile = load_link(cfg.link)
    overhead = link.fec_overhead_percent if cfg.overhead is None else cfg.overhead
    key_path = Path(key)
    priv = load_private_key(key_path)
    store = reference if isinstance(reference, ReferenceStore) else ReferenceStore(reference)
    tea = teacher if isinstance(teacher, Teacher) else Teacher(teacher)
    outp = Path(out)
    t = time.time()
    if logits is None and cfg.engine != "local":
        from .engines import score

        logits, _ = score(cfg.engine, tea.path, store, outp / "scores", address=cfg.ray_address, workers=cfg.workers)
    elif logits is None:
        logits = score_store(tea, store, progress=progress)
    stages["score"] = time.time() - t
    t = time.time()
    auto = None
    recipes: list[dict | None] = [None]
    if cfg.select.strategy == "auto":
        auto = choose_auto(logits, tea.confidence)
        # far pools: soft labels first; if they leave too few items per class, the small-budget recipe
        recipes = [AUTO["far"], AUTO["far_small"]] if auto["far"] else [AUTO["near"]]
    base = cfg
    classes = int(logits.shape[1])
    pl = pseudo_labels(logits)
    seq = next_sequence(key_path, cfg.sequence)
    now = time.time() if now is None else now
    expires = int(now + cfg.expires_in)
    names = tea.classes if (cfg.class_names and tea.classes) else None
    order: np.ndarray
    probs: np.ndarray | None = None
    chosen: dict[int, np.ndarray] = {}

    det_logits = None
    if cfg.detector:
        det_logits = score_store(Teacher(cfg.detector), store, progress=progress)
    refine_report: dict = {}

    def build(k: int, refined: bool = False):  # reads cfg, order and probs of the recipe being tried
        idx = select(logits, k, cfg.select, order, store.manifest.segments)
        if refined and det_logits is not None:
            idx, rep = refine(idx, pl, order, logits, det_logits)
            refine_report.update(rep)
        chosen[int(idx.size)] = idx
        lab = pl[idx]
        soft = soft_from_probs(probs[idx], lab, cfg.soft_extra, cfg.soft_levels) if probs is not None else None
        return build_payload(
            idx,
            lab,
            n_items=store.n,
            classes=classes,
            root=store.root,
            key=priv,
            sequence=seq,
            expires_at=expires,
            segments=store.manifest.segments,
            soft=soft,
            class_names=names,
            hints={**cfg.hints, **({"val_every": cfg.validation_every} if cfg.validation_every else {})} or None,
            prefix_key=prefix_key(cfg.select),
        )

    if cfg.keep is not None and not 0 < cfg.keep <= 1:
        raise ValueError("keep must be a fraction in (0, 1]")
    budget = cfg.budget
    if cfg.seconds is not None:
        frames_ok = 0
        while link.seconds_for(frames_ok + 1) <= cfg.seconds and frames_ok < 1 << 20:
            frames_ok += 1
        budget = frames_ok * link.frame_bytes
    budget = 8192 if budget is None else budget
    for attempt, recipe in enumerate(recipes):
        if recipe is not None:
            r = dict(recipe)
            cfg = replace(base, select=replace(base.select, strategy=r.pop("strategy")), **r)
            auto["chose"] = dict(recipe)
        order = rank_items(logits, cfg.select, store.manifest.segments)
        probs = softmax(logits, cfg.soft_temperature) if cfg.soft else None
        chosen.clear()
        if cfg.keep is not None:
            k = max(1, int(round(cfg.keep * store.n)))
            payload, sections = build(k, refined=True)
            tries, parity = 1, None
        else:
            fit = fit_budget(build, store.n, budget, link.frame_bytes, overhead)
            payload, sections, tries, parity, k = fit.payload, fit.sections, fit.tries, fit.parity, fit.k
        if attempt + 1 < len(recipes) and k < AUTO["soft_min_per_class"] * classes:
            auto["soft_items_too_few"] = int(k)
            continue
        break
    if cfg.keep is None and det_logits is not None:
        # refine at the fitted size (same k, other items); shrink if the refined set codes larger
        while True:
            payload, sections = build(k, refined=True)
            frames_n, fb = framed_bytes(len(payload), link.frame_bytes, overhead)
            if fb <= budget or k <= 1:
                break
            k = max(1, int(k * 0.99))
        parity = layout_for(len(payload), link.frame_bytes, overhead).parity + max(
            0, budget // link.frame_bytes - frames_n
        )
    stages["select_encode"] = time.time() - t
    t = time.time()
    frames = make_frames(payload, link.frame_bytes, overhead, parity)
    try:
        outp.mkdir(parents=True, exist_ok=True)
        tmp = outp / "payload.lcst.tmp"
        tmp.write_bytes(payload)
        os.replace(tmp, outp / "payload.lcst")
        frames_dir = outp / "frames"
        if frames_dir.exists():
            for f in frames_dir.glob("*.lcf"):
                f.unlink()
        write_frames(frames, frames_dir)
    except OSError as e:
        raise StorageError(f"cannot write the outbox {outp}: {e.strerror}") from e
    _record_sequence(key_path, seq)
    stages["frame_write"] = time.time() - t
    sel_idx = chosen[_selected_count(payload)]
    k = int(sel_idx.size)
    sel_labels = pl[sel_idx]
    report = {
        "strategy": cfg.select.strategy,
        "auto": auto,
        "quota": cfg.select.quota,
        "keyed": prefix_key(cfg.select) is not None,
        "alpha": cfg.select.alpha,
        "reference_items": store.n,
        "reference_root": store.root.hex(),
        "selected_items": int(k),
        "classes": classes,
        "class_counts": np.bincount(sel_labels, minlength=classes).tolist(),
        "payload_bytes": len(payload),
        "section_bytes": sections,
        "frames": len(frames),
        "frame_bytes": link.frame_bytes,
        "framed_bytes": len(frames) * link.frame_bytes,
        "fec_overhead_percent": overhead,
        "parity_frames": layout_for(len(payload), link.frame_bytes, overhead, parity).parity,
        "link": link.name,
        "link_seconds": round(link.seconds_for(len(frames)), 2),
        "link_passes": link.passes_for(len(frames)),
        "budget_tries": tries,
        "sequence": seq,
        "key_id": key_id(priv.public_key()).hex(),
        "expires_at": expires,
        "soft_labels": cfg.soft,
        "soft_temperature": cfg.soft_temperature if cfg.soft else None,
        "refinement": refine_report or None,
        "stage_seconds": {k_: round(v, 3) for k_, v in stages.items()},
        "seconds": round(time.time() - t0, 3),
        "config": {k_: v for k_, v in asdict(cfg).items() if k_ != "select"},
    }
    (outp / "send-report.json").write_text(json.dumps(report, indent=2))
    return report


def _selected_count(payload: bytes) -> int:
    """k as written in the payload's header (the selection that was actually encoded)."""
    from ..codec._wire import Reader
    from ..codec.payload import SIG_LEN, _read_header

    return _read_header(Reader(payload[:-SIG_LEN])).k
