import numpy as np
import pytest

from labelcast.codec.errors import ReferenceMismatchError
from labelcast.codec.manifest import ReferenceStore, merkle_root
from tests.conftest import make_store


def test_store_opens_and_checks(store):
    assert store.n == 600 and len(store.root) == 32
    assert store.check_items() == []


def test_one_altered_byte_is_found_by_item(tmp_path):
    p = make_store(tmp_path / "r")
    with open(p / "items.u8", "r+b") as f:
        f.seek(64 * 123 + 5)
        b = f.read(1)
        f.seek(64 * 123 + 5)
        f.write(bytes([b[0] ^ 1]))
    s = ReferenceStore(p)
    bad = s.check_items()
    assert [b.index for b in bad] == [123]
    with pytest.raises(ReferenceMismatchError, match="item 123"):
        s.require_items(np.array([5, 123]))
    s.require_items(np.array([5, 124]))  # selective check looks only at what it is given


def test_truncated_store_is_refused(tmp_path):
    p = make_store(tmp_path / "r")
    with open(p / "items.u8", "r+b") as f:
        f.truncate(64 * 599)
    with pytest.raises(ReferenceMismatchError, match="truncated|expects"):
        ReferenceStore(p)


def test_truncated_or_altered_manifest_is_refused(tmp_path):
    p = make_store(tmp_path / "r")
    data = (p / "manifest.lcm").read_bytes()
    (p / "manifest.lcm").write_bytes(data[:-10])
    with pytest.raises(ReferenceMismatchError, match="truncated"):
        ReferenceStore(p)
    alt = bytearray(data)
    alt[len(alt) // 2] ^= 1
    (p / "manifest.lcm").write_bytes(bytes(alt))
    with pytest.raises(ReferenceMismatchError):
        ReferenceStore(p)


def test_root_depends_on_every_hash():
    h = np.random.default_rng(0).integers(0, 256, (10_000, 32), dtype=np.uint8)
    r = merkle_root(h)
    h2 = h.copy()
    h2[9_999, 0] ^= 1
    assert merkle_root(h2) != r
    assert merkle_root(h[:-1]) != r


def test_item_unreadable_mid_run_is_reported_by_index(tmp_path):
    p = make_store(tmp_path / "r")
    s = ReferenceStore(p)  # opened while intact
    with open(p / "items.u8", "r+b") as f:
        f.truncate(64 * 500)  # the disk loses the tail while the device runs
    with pytest.raises(ReferenceMismatchError, match="item 550"):
        s.require_items(np.array([10, 550]))
