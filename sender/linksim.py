"""A seeded link simulator: loss, early ends, retransmission, reordering, duplication and bit errors.

:func:`simulate` passes real frames through one transmission. :func:`delivery_trials` runs many
transmissions of a frame layout under a link's delivery model and counts how often every stripe
gets enough frames — the empirical check of :func:`labelcast.sender.delivery.success_probability`
(``link simulate --runs``, ``benchmarks/link.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec.framing import FrameLayout
from .delivery import DeliveryModel

__all__ = ["LinkSim", "simulate", "delivery_trials"]


@dataclass
class LinkSim:
    loss: float = 0.05  # probability a frame is lost
    duplicate: float = 0.0  # probability a frame arrives twice
    reorder: bool = True  # shuffle arrival order
    bit_error_frames: float = 0.0  # probability a frame gets one flipped bit
    seed: int = 0
    cut_rate: float = 0.0  # probability the transmission ends early
    cut_max: float = 0.0  # an early end loses the last u of the frames, u uniform in [0, cut_max]
    arq: bool = False  # the link retransmits: a lost frame is sent again until it arrives

    @classmethod
    def for_link(cls, model: DeliveryModel, **kw) -> LinkSim:
        return cls(loss=model.loss, cut_rate=model.cut_rate, cut_max=model.cut_max, arq=model.arq, **kw)


def simulate(frames: list[bytes], sim: LinkSim) -> list[bytes]:
    """The frames that arrive, in arrival order (corrupted ones included, as a modem hands them over).

    On an ARQ link nothing is lost for good: a lost or corrupted transmission is followed by a clean
    retransmission (the corrupted copy still arrives first, as a modem may hand it over)."""
    rng = np.random.default_rng(sim.seed)
    sent = len(frames)
    if not sim.arq and sim.cut_rate > 0 and rng.random() < sim.cut_rate:
        sent = len(frames) - int(round(len(frames) * rng.random() * sim.cut_max))
    out: list[bytes] = []
    for f in frames[:sent]:
        if not sim.arq and rng.random() < sim.loss:
            continue
        g = bytearray(f)
        if rng.random() < sim.bit_error_frames:
            bit = int(rng.integers(0, len(g) * 8))
            g[bit // 8] ^= 1 << (bit % 8)
            if sim.arq:
                out.append(bytes(g))  # refused by its CRC; the retransmission below is clean
                g = bytearray(f)
        out.append(bytes(g))
        if rng.random() < sim.duplicate:
            out.append(bytes(g))
    if sim.reorder:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def delivery_trials(lay: FrameLayout, model: DeliveryModel, runs: int = 10_000, seed: int = 0) -> dict:
    """Monte Carlo over ``runs`` transmissions: how many rebuild (every stripe gets ≥ k blocks), and the
    mean number of transmissions (ARQ retries)."""
    rng = np.random.default_rng(seed)
    m = lay.total_frames
    stripe = np.array([s for s, _ in lay.order()], dtype=np.int64)
    need = np.array([lay.stripe_k(s) for s in range(lay.stripes)])
    if model.arq:
        tries = rng.geometric(1.0 - model.loss, size=(runs, m)) if model.loss > 0 else np.ones((runs, m))
        return {"runs": runs, "rebuilt": runs, "rate": 1.0, "mean_transmissions": float(tries.sum(1).mean())}
    arrived = rng.random((runs, m)) >= model.loss
    if model.cut_rate > 0 and model.cut_max > 0:
        cut = rng.random(runs) < model.cut_rate
        keep = m - np.rint(m * rng.random(runs) * model.cut_max).astype(np.int64)
        sent = np.where(cut, keep, m)
        arrived &= np.arange(m)[None, :] < sent[:, None]
    ok = np.ones(runs, dtype=bool)
    for s in range(lay.stripes):
        ok &= arrived[:, stripe == s].sum(1) >= need[s]
    rebuilt = int(ok.sum())
    return {"runs": runs, "rebuilt": rebuilt, "rate": rebuilt / runs, "mean_transmissions": float(m)}
