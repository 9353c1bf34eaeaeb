"""Golden bytes for every wire mode: a coder change that alters any bitstream fails here.

Each value was produced by the release before the change it guards (2026-12-01,
commit 197905a) and must never change for these inputs: a device in the field
decodes exactly these bytes. The inputs are built from seeded generators so the
test is self-contained.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from labelcast.codec import framing, indexset, labels, softlabels
from labelcast.codec.manifest import hash_items, write_manifest

N = 3000
SEGS = np.array([500, 700, 300, 1500])


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _inputs() -> dict:
    """Every input, drawn in one fixed sequence from one seeded generator."""
    rng = np.random.default_rng(7)
    sparse = np.sort(
        np.concatenate(
            [
                rng.choice(np.arange(0, 500), 200, replace=False),
                rng.choice(np.arange(1200, 1500), 20, replace=False),
                np.arange(1500, 1530),
            ]
        )
    )
    flat = np.sort(rng.choice(N, 90, replace=False))
    g = np.searchsorted(np.cumsum(SEGS), sparse, side="right")
    lab = np.where(rng.random(sparse.size) < 0.8, g * 2, rng.integers(0, 10, sparse.size)) % 10
    probs = rng.dirichlet(np.ones(10), size=sparse.size)
    rng = np.random.default_rng(7)
    dense = np.sort(
        np.concatenate(
            [
                rng.choice(np.arange(0, 500), 200, replace=False),
                rng.choice(np.arange(1200, 1500), 280, replace=False),  # more than half: the complement is coded
                np.arange(1500, 1530),
            ]
        )
    )
    return {"sparse": sparse, "flat": flat, "labels": lab, "probs": probs, "dense": dense}


def test_golden_index_grouped_mode():
    b = indexset.encode_indices(_inputs()["dense"], N, SEGS)
    assert b[0] == indexset.GROUPED
    assert (len(b), sha(b)) == (135, "a13ef64aefd6a042ba36b5750bccde94f18a6d16174d3937f40d948831b19d9f")


def test_golden_index_flat_and_prefix_modes():
    flat = indexset.encode_indices(_inputs()["flat"], N)
    assert flat[0] == indexset.FLAT
    assert (len(flat), sha(flat)) == (76, "b963e62137ac2794f6a88b4a5ee813ea1eae78b89f29c9b081957fecc73f7932")
    pidx = indexset.prefix_select(N, np.array([50, 0, 30, 7]), 12345, SEGS)
    pre = indexset.encode_indices(pidx, N, SEGS, 12345)
    assert pre[0] == indexset.PREFIX
    assert pre.hex() == "02b960030000000000010100000001000000000000000000000000000100000000000000008148907206"


def test_golden_labels_every_mode():
    inp = _inputs()
    adaptive = labels.encode_labels(inp["labels"], 10, inp["sparse"], SEGS)
    assert adaptive[0] == labels.GROUP_ADAPTIVE
    assert (len(adaptive), sha(adaptive)) == (60, "ac3816899f07eb79d7501db54d433af360aa0f06c1778e786eca7ead6ff96359")
    static = labels.encode_labels(np.repeat(np.arange(3), [40, 30, 20]), 10)
    assert static[0] == labels.STATIC
    assert (len(static), sha(static)) == (30, "c7321f81b9dc8c9ee801d33d30a4831247e34825b6acd1cc4aae1609741aa2e6")
    uniform = labels.encode_labels(np.arange(7) % 7, 100)
    assert uniform[0] == labels.UNIFORM
    assert (len(uniform), sha(uniform)) == (9, "7512ea2de8b3b8f6e44c3744ba0dfa064a415f1e09356907919c74cef275b352")


def test_golden_soft_labels():
    inp = _inputs()
    soft = softlabels.soft_from_probs(inp["probs"], inp["labels"], 3, 16)
    b = softlabels.encode_soft(soft, inp["labels"], 10)
    assert (len(b), sha(b)) == (643, "88965b9b885a4926c7626b96719e0d28e525b19b1c17206411c0155b9b5e839b")


def test_golden_frames():
    fr = framing.make_frames(bytes(range(256)) * 3, 100, 34)
    b = b"".join(fr)
    assert (len(fr), len(b), sha(b)) == (13, 1300, "681863173166177a2b4dc1590e2ff3bb6963a203d3d4faa980ce70ea6a7b32aa")


def test_golden_manifest(tmp_path: Path):
    rng = np.random.default_rng(3)
    items = rng.integers(0, 256, size=(50, 4, 4, 1), dtype=np.uint8)
    g = np.repeat(np.arange(3), [20, 20, 10]).astype(np.uint32)
    root = write_manifest(tmp_path / "m.lcm", hash_items(items), g, ["a", "b", "c"], (4, 4, 1))
    b = (tmp_path / "m.lcm").read_bytes()
    assert root.hex() == "0623d7d778778492bcc0616cab78630946885b4ebeb155594846ae6a0ba46e5a"
    assert (len(b), sha(b)) == (1905, "c048224446c41651c895633aad27eecd5211fbe809c8ffc8566a6320dcd52ca1")
