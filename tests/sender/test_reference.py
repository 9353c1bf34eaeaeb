"""Reference stores built from folders of real image files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelcast.codec.manifest import ReferenceStore
from labelcast.receiver.verify import check_source
from labelcast.sender import reference
from labelcast.sender.reference import BuildConfig, build_store


def make_folder(root: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = root / f"synset{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        fmt = ("png", "jpg", "webp")[i % 3]
        Image.fromarray(img).save(sub / f"img{i:03d}.{fmt}", quality=90)
    return root


def test_folder_store_groups_by_parent_and_verifies(tmp_path):
    src = make_folder(tmp_path / "src")
    info = build_store(f"folder:{src}", tmp_path / "ref", BuildConfig(size=16, channels=3))
    s = ReferenceStore(tmp_path / "ref")
    assert info["items"] == 60 and s.manifest.item_shape == (16, 16, 3)
    assert s.manifest.group_names == ["synset0", "synset1", "synset2"]
    assert s.check_items() == [] and check_source(s, f"folder:{src}") == []


def test_build_twice_is_byte_identical_whatever_the_listing_order(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src")
    build_store(f"folder:{src}", tmp_path / "a", BuildConfig(size=16, channels=1))
    real_rglob = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pat: list(reversed(list(real_rglob(self, pat)))))
    build_store(f"folder:{src}", tmp_path / "b", BuildConfig(size=16, channels=1))
    for f in ("items.u8", "manifest.lcm", "provenance.lcp"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    ra = json.loads((tmp_path / "a" / "store.json").read_text())["root"]
    assert ra == json.loads((tmp_path / "b" / "store.json").read_text())["root"]


def test_source_changes_are_named_by_path(tmp_path):
    src = make_folder(tmp_path / "src")
    build_store(f"folder:{src}", tmp_path / "ref", BuildConfig(size=16, channels=3))
    s = ReferenceStore(tmp_path / "ref")
    victim = src / "synset1" / "img004.jpg"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    (src / "synset2" / "img005.webp").unlink()
    shutil.copy(src / "synset0" / "img000.png", src / "synset0" / "zzz-new.png")
    (src / "synset0" / "img003.png").write_bytes(b"not an image")
    problems = "\n".join(check_source(s, f"folder:{src}"))
    assert "synset1/img004.jpg): altered" in problems
    assert "synset2/img005.webp): missing" in problems
    assert "extra file synset0/zzz-new.png" in problems
    assert "synset0/img003.png): altered" in problems


def test_interrupted_build_resumes_to_the_same_store(tmp_path, monkeypatch):
    src = make_folder(tmp_path / "src", n=90)
    build_store(f"folder:{src}", tmp_path / "whole", BuildConfig(size=8, channels=1, chunk=16))
    calls = {"n": 0}
    real = reference.hash_items

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # power cut in the middle of the third chunk
        return real(x)

    monkeypatch.setattr(reference, "hash_items", failing)
    with pytest.raises(KeyboardInterrupt):
        build_store(f"folder:{src}", tmp_path / "resumed", BuildConfig(size=8, channels=1, chunk=16))
    assert json.loads((tmp_path / "resumed" / "build.progress").read_text())["done"] == 32
    monkeypatch.setattr(reference, "hash_items", real)
    build_store(f"folder:{src}", tmp_path / "resumed", BuildConfig(size=8, channels=1, chunk=16))
    for f in ("items.u8", "manifest.lcm"):
        assert (tmp_path / "whole" / f).read_bytes() == (tmp_path / "resumed" / f).read_bytes()
    assert not (tmp_path / "resumed" / "build.progress").exists()


def test_unreadable_source_file_is_named(tmp_path):
    src = make_folder(tmp_path / "src", n=6)
    (src / "synset0" / "img003.png").write_bytes(b"garbage")
    from labelcast.datasets.sources import SourceError

    with pytest.raises(SourceError, match="img003.png"):
        build_store(f"folder:{src}", tmp_path / "ref", BuildConfig(size=8, channels=1))


def _two_looks(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (n, 12, 12), dtype=np.uint8)
    bright = rng.random(n) < 0.5
    x[bright] += 200  # two populations, interleaved in source order
    x[bright, :6] = 0  # and a second feature so the halves split into more clusters
    return x, bright


def test_clustered_store_runs_by_cluster_and_verifies(tmp_path):
    x, bright = _two_looks()
    np.save(tmp_path / "pool.npy", x)
    info = build_store(f"npy:{tmp_path / 'pool.npy'}", tmp_path / "ref", BuildConfig(clusters=2))
    s = ReferenceStore(tmp_path / "ref")
    assert info["groups"] == 2 and s.manifest.group_names == ["cluster-0000", "cluster-0001"]
    assert s.check_items() == []
    g = np.asarray(s.manifest.groups)
    assert np.all(np.diff(g.astype(int)) >= 0)  # one run per cluster
    assert s.manifest.segments.tolist() == np.bincount(g).tolist()
    stored = np.fromfile(tmp_path / "ref" / "items.u8", dtype=np.uint8).reshape(x.shape[0], 12, 12)
    # every item is kept, each cluster is one look, and source order holds within a cluster
    src_rows = {r.tobytes(): i for i, r in enumerate(x)}
    pos = np.array([src_rows[r.tobytes()] for r in stored])
    assert np.array_equal(np.sort(pos), np.arange(x.shape[0]))
    assert {frozenset(bright[pos[g == c]].tolist()) for c in (0, 1)} == {frozenset([True]), frozenset([False])}
    for c in (0, 1):
        assert np.all(np.diff(pos[g == c]) > 0)
    # deterministic: built again, byte for byte
    build_store(f"npy:{tmp_path / 'pool.npy'}", tmp_path / "again", BuildConfig(clusters=2))
    for f in ("items.u8", "manifest.lcm", "provenance.lcp"):
        assert (tmp_path / "ref" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_clustered_folder_store_still_names_source_changes(tmp_path):
    src = make_folder(tmp_path / "src")
    build_store(f"folder:{src}", tmp_path / "ref", BuildConfig(size=16, channels=3, clusters=4))
    s = ReferenceStore(tmp_path / "ref")
    assert s.check_items() == [] and check_source(s, f"folder:{src}") == []
    victim = src / "synset1" / "img004.jpg"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert "synset1/img004.jpg): altered" in "\n".join(check_source(s, f"folder:{src}"))


@pytest.mark.parametrize("where", ["before the replace", "after the replace"])
def test_build_interrupted_while_reordering_resumes_to_the_same_store(tmp_path, monkeypatch, where):
    x, _ = _two_looks(300, seed=1)
    np.save(tmp_path / "pool.npy", x)
    src = f"npy:{tmp_path / 'pool.npy'}"
    build_store(src, tmp_path / "whole", BuildConfig(clusters=3, chunk=64))
    real_write, real_replace = reference._atomic_write, reference.os.replace

    def cut_write(path, text):
        if '"reordering"' in text:
            raise KeyboardInterrupt  # power cut with the reordered copy written, not yet in place
        real_write(path, text)

    def cut_replace(a, b):
        real_replace(a, b)
        if str(b).endswith("items.u8"):
            raise KeyboardInterrupt  # power cut just after the copy replaced the old items

    if where == "before the replace":
        monkeypatch.setattr(reference, "_atomic_write", cut_write)
    else:
        monkeypatch.setattr(reference.os, "replace", cut_replace)
    with pytest.raises(KeyboardInterrupt):
        build_store(src, tmp_path / "resumed", BuildConfig(clusters=3, chunk=64))
    monkeypatch.undo()
    build_store(src, tmp_path / "resumed", BuildConfig(clusters=3, chunk=64))
    for f in ("items.u8", "manifest.lcm", "provenance.lcp"):
        assert (tmp_path / "whole" / f).read_bytes() == (tmp_path / "resumed" / f).read_bytes()
