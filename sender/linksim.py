"""A seeded link simulator: loss, reordering, duplication and bit errors on frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinkSim", "simulate"]


@dataclass
class LinkSim:
    loss: float = 0.05  # probability a frame is lost
    duplicate: float = 0.0  # probability a frame arrives twice
    reorder: bool = True  # shuffle arrival order
    bit_error_frames: float = 0.0  # probability a frame gets one flipped bit
    seed: int = 0


def simulate(frames: list[bytes], sim: LinkSim) -> list[bytes]:
    rng = np.random.default_rng(sim.seed)
    out: list[bytes] = []
    for f in frames:
        if rng.random() < sim.loss:
            continue
        g = bytearray(f)
        if rng.random() < sim.bit_error_frames:
            bit = int(rng.integers(0, len(g) * 8))
            g[bit // 8] ^= 1 << (bit % 8)
        out.append(bytes(g))
        if rng.random() < sim.duplicate:
            out.append(bytes(g))
    if sim.reorder:
        out = [out[i] for i in rng.permutation(len(out))]
    return out
