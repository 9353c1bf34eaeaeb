"""Parity from a link's delivery model: the fewest parity frames that rebuild a payload with
probability at least P.

A link profile says how frames go missing (``profiles``):

* ``arq`` — the link retransmits (Iridium SBD: an MT message waits at the gateway until
  the modem collects it; a failed session is retried). Every frame arrives in the end,
  so parity buys nothing: 0 parity frames; a loss costs time (``transmissions_for``).
* ``lossy`` — a lost frame is gone. Frames are lost independently with probability
  ``loss_rate``; in addition, with probability ``cut_rate`` the transmission ends early
  and loses its last ``u·M`` frames, ``u`` uniform in ``[0, cut_max]`` (a relay pass
  cut short).

The payload rebuilds when every erasure-code stripe gets at least its ``k`` blocks.
Stripes receive disjoint frames, so under independent loss

    P = Π_s P(Binomial(m_s, 1 − p) ≥ k_s)

and under a cut the same product is taken over the frames sent before the cut (the
frame order is known, so each stripe's share of the first ``t`` frames is exact),
averaged over the cut point. ``parity_for`` searches the smallest parity meeting the
target; it is what ``send --delivery P`` uses, and what the budget search accounts for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..codec.framing import MAX_FRAMES, FrameLayout, layout_for
from ..profiles import LinkProfile

__all__ = ["DEFAULT_TARGET", "DeliveryModel", "success_probability", "parity_for"]

DEFAULT_TARGET = 0.999  # send --delivery: probability that the payload rebuilds on a lossy link
_CUT_POINTS = 64  # cut fractions averaged over (midpoint rule)


@dataclass(frozen=True)
class DeliveryModel:
    """How frames go missing on a link (see the module docstring)."""

    arq: bool
    loss: float
    cut_rate: float = 0.0
    cut_max: float = 0.0

    @classmethod
    def of(cls, link: LinkProfile, loss: float | None = None) -> DeliveryModel:
        p = link.loss_rate if loss is None else loss
        if not 0 <= p < 1:
            raise ValueError("loss rate must be in [0, 1)")
        return cls(link.retransmits, p, link.cut_rate, link.cut_max)


@lru_cache(maxsize=1)
def _log_factorials(n: int = MAX_FRAMES) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


@lru_cache(maxsize=4096)
def _tail_table(m: int, k: int, p_ok: float) -> np.ndarray:
    """P(Binomial(n, p_ok) ≥ k) for n = 0..m, summed in log space (exact to float precision)."""
    if k <= 0:
        return np.ones(m + 1)
    out = np.zeros(m + 1)
    if p_ok >= 1.0:
        out[k:] = 1.0
        return out
    if p_ok <= 0.0 or k > m:
        return out
    lf = _log_factorials()
    n = np.arange(k, m + 1)[:, None]
    j = np.arange(k, m + 1)[None, :]
    valid = j <= n
    jj = np.where(valid, j, 0)
    logs = lf[n] - lf[jj] - lf[np.where(valid, n - j, 0)] + jj * math.log(p_ok) + (n - jj) * math.log1p(-p_ok)
    logs = np.where(valid, logs, -np.inf)
    top = logs.max(axis=1, keepdims=True)
    out[k:] = np.minimum(1.0, np.exp(top[:, 0]) * np.exp(logs - top).sum(axis=1))
    return out


def _stripe_counts(lay: FrameLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per stripe: k, m, and for each prefix length t = 0..M the stripe's frames among the first t."""
    st = lay.stripes
    ks = np.array([lay.stripe_k(s) for s in range(st)])
    ms = np.array([lay.stripe_m(s) for s in range(st)])
    order = np.array([s for s, _ in lay.order()], dtype=np.int64)
    counts = np.zeros((lay.total_frames + 1, st), dtype=np.int64)
    np.add.at(counts, (np.arange(1, lay.total_frames + 1), order), 1)
    return ks, ms, np.cumsum(counts, axis=0)


def success_probability(lay: FrameLayout, model: DeliveryModel) -> float:
    """Probability that the payload of ``lay`` rebuilds under ``model`` (1.0 on ARQ links)."""
    if model.arq:
        return 1.0
    p_ok = 1.0 - model.loss
    ks, ms, prefix = _stripe_counts(lay)
    tables = [_tail_table(int(m), int(k), p_ok) for k, m in zip(ks, ms, strict=True)]

    def rebuilt(t: int) -> float:
        return float(np.prod([tables[s][prefix[t, s]] for s in range(ks.size)]))

    whole = rebuilt(lay.total_frames)
    if model.cut_rate <= 0 or model.cut_max <= 0:
        return whole
    total = lay.total_frames
    us = (np.arange(_CUT_POINTS) + 0.5) / _CUT_POINTS * model.cut_max
    cut = float(np.mean([rebuilt(int(round(total * (1 - u)))) for u in us]))
    return (1 - model.cut_rate) * whole + model.cut_rate * cut


def _layout(length: int, frame_bytes: int, parity: int) -> FrameLayout | None:
    try:
        return layout_for(length, frame_bytes, parity=parity)
    except ValueError:
        return None  # over the frame limit


def parity_for(length: int, frame_bytes: int, model: DeliveryModel, target: float = DEFAULT_TARGET) -> int:
    """The fewest parity frames for which a ``length``-byte payload rebuilds with probability ≥ ``target``.

    0 on ARQ links. Raises ValueError when no parity within the frame limit reaches the target.
    """
    if not 0 < target < 1:
        raise ValueError("the delivery target must be a probability in (0, 1)")
    if model.arq:
        return 0

    def ok(par: int) -> bool:
        lay = _layout(length, frame_bytes, par)
        return lay is not None and success_probability(lay, model) >= target

    if ok(0):
        return 0
    hi = 1
    while not ok(hi):
        if _layout(length, frame_bytes, hi) is None or hi >= MAX_FRAMES:
            raise ValueError(
                f"no parity reaches a delivery probability of {target} for {length} B at {model.loss:.0%} loss "
                f"within {MAX_FRAMES} frames; lower --delivery or use --overhead"
            )
        hi *= 2
    lo = hi // 2  # ok(lo) is false (or lo == 0, checked above)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
