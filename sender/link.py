"""Link planning: frames, bytes, time and success probability of a payload on a profile."""

from __future__ import annotations

import math

from ..codec.framing import layout_for
from ..profiles import LinkProfile

__all__ = ["plan", "success_probability"]


def _binom_tail(m: int, k: int, p_ok: float) -> float:
    """P(at least k of m frames arrive), frames independent."""
    if k <= 0:
        return 1.0
    total = 0.0
    for j in range(k, m + 1):
        total += math.comb(m, j) * p_ok**j * (1 - p_ok) ** (m - j)
    return min(1.0, total)


def success_probability(
    length: int, link: LinkProfile, overhead: int | None = None, loss: float | None = None
) -> float:
    ov = link.fec_overhead_percent if overhead is None else overhead
    lay = layout_for(length, link.frame_bytes, ov)
    p_ok = 1 - (link.loss_rate if loss is None else loss)
    prob = 1.0
    for s in range(lay.stripes):
        prob *= _binom_tail(lay.stripe_m(s), lay.stripe_k(s), p_ok)
    return prob


def plan(length: int, link: LinkProfile, overhead: int | None = None) -> dict:
    ov = link.fec_overhead_percent if overhead is None else overhead
    lay = layout_for(length, link.frame_bytes, ov)
    frames = lay.total_frames
    return {
        "link": link.name,
        "payload_bytes": length,
        "frames": frames,
        "data_frames": lay.data_blocks,
        "fec_overhead_percent": ov,
        "frame_bytes": link.frame_bytes,
        "bytes_on_link": frames * (link.frame_bytes + link.frame_overhead_bytes),
        "link_seconds": round(link.seconds_for(frames), 2),
        "messages": frames,
        "passes": link.passes_for(frames),
        "loss_rate": link.loss_rate,
        "success_probability": round(success_probability(length, link, ov), 6),
    }
