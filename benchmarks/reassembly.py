"""Reassembly benchmark: frames added per second at 1k, 10k and 64k frames (flat = linear in frames).

    python benchmarks/reassembly.py [--json out/bench/reassembly.json]

The baseline, in the same run, is the former placement (the layout's frame order rebuilt for every
frame added: quadratic), timed on the smaller sizes only — at 64k frames it would take most of an hour.
Frames are added in a shuffled order with 10 % lost, as a modem would deliver them; the last column
rebuilds the payload from what arrived.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import md_grid, render_into, splice_block, table, write_json  # noqa: E402

from labelcast.codec import framing  # noqa: E402
from labelcast.codec.framing import Reassembler, make_frames  # noqa: E402


class _Quadratic(Reassembler):
    """The former Reassembler.add: the frame order rebuilt on every frame (kept only as the baseline)."""

    def add(self, frame: bytes):
        try:
            info = framing.parse_frame(frame)
        except framing.FrameError:
            self.dropped += 1
            return None
        p = self._p.get(info.payload_id)
        if p is None:
            p = self._p[info.payload_id] = framing._Pending(info.layout, [])
        s, j = info.layout.order()[info.number]
        p.blocks.setdefault(s, {})[j] = info.block
        p.received += 1
        return info.payload_id


def run(frames_wanted: int, frame_size: int, cls, seed: int = 0) -> dict:
    parity = 25  # 10 % of the frames are lost below: every stripe keeps its k blocks
    length = int(frames_wanted / (1 + parity / 100)) * (frame_size - 16)
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    frames = make_frames(payload, frame_size, parity)
    keep = rng.permutation(len(frames))[: int(len(frames) * 0.9)]
    r = cls()
    t = time.perf_counter()
    for i in keep:
        r.add(frames[int(i)])
    add_s = time.perf_counter() - t
    t = time.perf_counter()
    try:
        ok = r.payload() == payload if cls is Reassembler else None
    except framing.IncompleteError:
        ok = False
    return {
        "method": "linear (now)" if cls is Reassembler else "quadratic (before)",
        "frames": len(frames),
        "frames_added": len(keep),
        "add_seconds": round(add_s, 3),
        "frames_per_second": round(len(keep) / add_s),
        "rebuild_seconds": round(time.perf_counter() - t, 3) if ok is not None else None,
        "rebuilt": ok,
    }


def render(result: dict) -> str:
    """docs/reliability.md's reassembly table from a JSON this wrote."""

    def secs(key):
        return lambda r: None if r.get(key) is None else f"{r[key]:.3g}"

    return md_grid(
        result["rows"],
        [
            ("method", "method"),
            ("frames", "frames"),
            ("frames added", "frames_added"),
            ("add seconds", secs("add_seconds")),
            ("frames / s", "frames_per_second"),
            ("× before", "x_before"),
            ("rebuild seconds", secs("rebuild_seconds")),
            ("rebuilt", lambda r: {True: "yes", False: "no"}.get(r.get("rebuilt"))),
        ],
    )


def splice(doc: str, table_md: str) -> str:
    return splice_block(doc, "reassembly:table", table_md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--frame", type=int, default=64, help="frame size in bytes")
    ap.add_argument("--render", default=None, help="a JSON this wrote: only rewrite --doc's table from it")
    ap.add_argument("--doc", default="docs/reliability.md")
    a = ap.parse_args()
    if a.render:
        render_into(a.doc, a.render, render, splice)
        return
    rows = [run(n, a.frame, Reassembler) for n in (1_000, 10_000, 64_000)]
    rows += [run(n, a.frame, _Quadratic) for n in (1_000, 10_000)]
    base = {r["frames"]: r["frames_per_second"] for r in rows if r["method"].startswith("quadratic")}
    for r in rows:
        if r["method"].startswith("linear") and r["frames"] in base:
            r["x_before"] = round(r["frames_per_second"] / base[r["frames"]], 1)
    table(
        rows,
        [
            "method",
            "frames",
            "frames_added",
            "add_seconds",
            "frames_per_second",
            "x_before",
            "rebuild_seconds",
            "rebuilt",
        ],
        "Reassembly",
    )
    write_json(a.json, {"rows": rows})


if __name__ == "__main__":
    main()
