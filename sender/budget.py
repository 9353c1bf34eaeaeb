"""Fit a selection to a link budget by search over k with the real encoder.

The cost of a selection is what actually goes on the link: the signed payload
cut into frames with the profile's erasure-code overhead, ``frames × frame_bytes``.
No formula: every candidate k is encoded, signed and framed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..codec.errors import BudgetError
from ..codec.framing import layout_for

__all__ = ["Fit", "fit_budget", "fit_payload", "framed_bytes", "largest_fitting"]


@dataclass
class Fit:
    k: int
    payload: bytes
    sections: dict
    frames: int
    framed_bytes: int
    tries: int
    parity: int = 0  # parity frames: the default overhead plus any spare budget


def framed_bytes(payload_len: int, frame_size: int, overhead: int) -> tuple[int, int]:
    lay = layout_for(payload_len, frame_size, overhead)
    return lay.total_frames, lay.total_frames * frame_size


def _fill_parity(fit: Fit, budget_bytes: int, frame_size: int, overhead: int) -> Fit:
    """Spend whole frames left in the budget on extra parity (more loss tolerance, same data)."""
    lay = layout_for(len(fit.payload), frame_size, overhead)
    spare = budget_bytes // frame_size - lay.total_frames
    parity = lay.parity + max(0, spare)
    lay = layout_for(len(fit.payload), frame_size, parity=parity)
    fit.parity, fit.frames, fit.framed_bytes = lay.parity, lay.total_frames, lay.total_frames * frame_size
    return fit


def largest_fitting(fits: Callable[[int], bool], k_max: int) -> int:
    """Largest k in [1, k_max] with ``fits(k)`` (0 if not even k = 1): bisection, cost grows with k."""
    if not fits(1):
        return 0
    lo, hi = 1, k_max
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def fit_budget(
    build: Callable[[int], tuple[bytes, dict]],
    k_max: int,
    budget_bytes: int,
    frame_size: int,
    overhead: int,
) -> Fit:
    """Largest k in [1, k_max] whose framed payload fits ``budget_bytes``.

    ``build(k)`` returns (signed payload, section sizes) for the best k items.
    """
    cache: dict[int, Fit] = {}

    def cost(k: int) -> Fit:
        if k not in cache:
            p, sec = build(k)
            fr, fb = framed_bytes(len(p), frame_size, overhead)
            cache[k] = Fit(k, p, sec, fr, fb, 0)
        return cache[k]

    lo = largest_fitting(lambda k: cost(k).framed_bytes <= budget_bytes, k_max)
    if lo == 0:
        raise BudgetError(
            f"even one item needs {cost(1).framed_bytes} framed bytes; the budget is {budget_bytes}. "
            "Raise --budget or pick a link with larger frames."
        )
    best = cost(lo)
    best.tries = len(cache)
    return _fill_parity(best, budget_bytes, frame_size, overhead)


def fit_payload(build: Callable[[int], tuple[bytes, dict]], k_max: int, max_bytes: int) -> Fit:
    """Largest k whose signed payload itself (before framing) is at most ``max_bytes``."""
    cache: dict[int, tuple[bytes, dict]] = {}

    def get(k: int) -> tuple[bytes, dict]:
        if k not in cache:
            cache[k] = build(k)
        return cache[k]

    k = largest_fitting(lambda k: len(get(k)[0]) <= max_bytes, k_max)
    if k == 0:
        raise BudgetError(f"even one item needs a {len(get(1)[0])}-byte payload; the budget is {max_bytes}")
    p, sec = get(k)
    return Fit(k, p, sec, 0, len(p), len(cache))
