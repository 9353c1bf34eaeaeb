"""Detector-guided refinement of a selection (after arXiv 2507.13074, adapted to reference items).

A second, independent *detector* (a teacher trained with another seed and width)
scores the same reference items. A selected item is flagged when the detector
contradicts its label or gives that label low confidence. Each flagged item is
replaced by the candidate of the same class — among the next-best items by the
strategy's rank — with the best joint score of detector confidence and
*uniqueness* (distance, in the teacher's logit space, to the items already kept
for that class). An item is never selected twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .selection import softmax

__all__ = ["RefineConfig", "refine"]


@dataclass
class RefineConfig:
    min_confidence: float = 0.5  # flag when the detector gives the label less than this
    pool_factor: int = 8  # candidates per class: this many × the flagged count, by rank
    uniqueness_weight: float = 0.5  # weight of the (normalised) distance in the joint score


def refine(
    selected: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    teacher_logits: np.ndarray,
    detector_logits: np.ndarray,
    cfg: RefineConfig | None = None,
) -> tuple[np.ndarray, dict]:
    """Returns (new sorted selection, report). ``labels`` are the teacher's pseudo-labels of all items."""
    cfg = cfg or RefineConfig()
    sel = np.asarray(selected, dtype=np.int64)
    det = softmax(detector_logits[sel])
    lab = labels[sel]
    conf = det[np.arange(sel.size), lab]
    flagged = (det.argmax(1) != lab) | (conf < cfg.min_confidence)
    keep = set(sel[~flagged].tolist())
    taken = set(sel.tolist())
    replaced = 0
    for c in np.unique(lab[flagged]):
        need = int((flagged & (lab == c)).sum())
        # candidates: next-best items of class c by the strategy's rank, not already taken
        cls_items = order[labels[order] == c]
        cand = np.array([i for i in cls_items[: (need + int((lab == c).sum())) * cfg.pool_factor] if i not in taken])
        if cand.size == 0:
            continue
        pc = softmax(detector_logits[cand])[:, c]
        feats = np.asarray(teacher_logits[cand], dtype=np.float64)
        kept_c = np.array([i for i in keep if labels[i] == c], dtype=np.int64)
        kf = np.asarray(teacher_logits[kept_c], dtype=np.float64) if kept_c.size else np.zeros((0, feats.shape[1]))
        dist = np.full(cand.size, np.inf) if kf.shape[0] == 0 else _min_dist(feats, kf)
        chosen = np.zeros(cand.size, dtype=bool)
        for _ in range(min(need, cand.size)):
            d = np.where(np.isfinite(dist), dist, 0.0)
            scale = d.max() if d.max() > 0 else 1.0
            score = np.where(chosen | (pc < cfg.min_confidence), -np.inf, pc + cfg.uniqueness_weight * d / scale)
            j = int(np.argmax(score))
            if not np.isfinite(score[j]):
                break
            chosen[j] = True
            keep.add(int(cand[j]))
            taken.add(int(cand[j]))
            replaced += 1
            dist = np.minimum(dist, np.sqrt(((feats - feats[j]) ** 2).sum(1)))
    # flagged items with no acceptable replacement stay (a label is better than none)
    back = [int(i) for i in sel[flagged]][: max(0, sel.size - len(keep))]
    out = np.array(sorted(keep | set(back)), dtype=np.int64)
    return np.sort(out), {"flagged": int(flagged.sum()), "replaced": replaced, "items": int(out.size)}


def _min_dist(a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    out = np.empty(a.shape[0])
    for s in range(0, a.shape[0], chunk):
        d = ((a[s : s + chunk, None, :] - b[None, :, :]) ** 2).sum(-1)
        out[s : s + chunk] = np.sqrt(d.min(1))
    return out
