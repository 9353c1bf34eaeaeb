"""The ground-side surface a new user touches first: no silent wrong answers, no silent overwrites,
reports for people. Each test is named after the behaviour it guards (issue #26)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelcast.codec.keys import generate_keypair, load_private_key
from labelcast.codec.manifest import ReferenceStore
from labelcast.codec.payload import build_payload
from tests.conftest import make_store, run_cli

torch = pytest.importorskip("torch")
SHAPES = ("circle", "square", "triangle")


def _shape_image(kind: str, rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((24, 24, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:24, :24]
    cy, cx = rng.integers(9, 15, 2)
    if kind == "circle":
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < 36
    elif kind == "square":
        m = (abs(yy - cy) < 6) & (abs(xx - cx) < 6)
    else:
        m = (yy - cy + 6 >= 0) & (abs(xx - cx) <= (yy - cy + 6) // 2) & (yy - cy < 6)
    img[m] = rng.integers(120, 255, 3)
    return img


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """A user's small folder: 3 class folders of PNGs, a held-out folder with only two of the classes."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for split, kinds, n in (("train", SHAPES, 40), ("test2", ("circle", "triangle"), 15)):
        for k in kinds:
            (root / split / k).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_shape_image(k, rng)).save(root / split / k / f"{i:03d}.png")
    code, out, err = run_cli(
        "teacher",
        "train",
        "--data",
        f"folder:{root / 'train'}",
        "--size",
        "24",
        "--out",
        root / "t.onnx",
        "--epochs",
        "80",
        "--width",
        "8",
        cwd=root,
    )
    assert code == 0, err
    return root


def test_evaluate_matches_classes_by_name_not_by_folder_position(shapes):
    code, out, err = run_cli("evaluate", shapes / "t.onnx", "--data", f"folder:{shapes / 'test2'}", "--json")
    assert code == 0, err
    res = json.loads(out.splitlines()[-1])
    # two of the teacher's three classes: scored against the teacher's indices of those names
    assert set(res["per_class_accuracy"]) == {"circle", "triangle"}
    assert res["accuracy"] > 0.8 and min(res["per_class_accuracy"].values()) > 0.6


def test_evaluate_refuses_a_class_folder_the_model_does_not_know_naming_it(shapes, tmp_path):
    (tmp_path / "hexagon").mkdir()
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / "hexagon" / "a.png")
    code, _, err = run_cli("evaluate", shapes / "t.onnx", "--data", f"folder:{tmp_path}")
    assert code == 2 and "hexagon" in err and "circle" in err and "Traceback" not in err


def test_train_and_export_derives_preprocessing_from_rgb_arrays(tmp_path):
    from labelcast.sender.teacher import Teacher, TeacherConfig, train_and_export

    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    x = np.zeros((120, 32, 32, 3), np.uint8)
    x[y == 0, :, :, 0] = 200  # red vs blue: only colour tells them apart
    x[y == 1, :, :, 2] = 200
    x = np.clip(x + rng.integers(0, 40, x.shape), 0, 255).astype(np.uint8)
    train_and_export(x, y, ["red", "blue"], tmp_path / "t.onnx", TeacherConfig(epochs=4, width=8))
    t = Teacher(tmp_path / "t.onnx")
    assert t.preprocess.hw == (32, 32) and t.preprocess.channels == 3 and t.input_shape[1:] == [3, 32, 32]
    assert (t.logits(x).argmax(1) == y).mean() == 1.0
    from labelcast.codec.preprocess import Preprocess

    with pytest.raises(ValueError, match="channel"):
        train_and_export(x, y, ["red", "blue"], tmp_path / "g.onnx", TeacherConfig(preprocess=Preprocess(28, 1)))


def test_teacher_train_refuses_a_single_class_and_names_empty_class_folders(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "empty").mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / "only" / f"{i}.png")
    code, _, err = run_cli("teacher", "train", "--data", f"folder:{tmp_path}", "--out", tmp_path / "t.onnx")
    assert code == 2 and "two classes" in err
    from labelcast.datasets.sources import open_source

    assert any("empty" in n for n in open_source(f"folder:{tmp_path}").notes)


def test_clusters_beyond_the_item_count_are_refused(tmp_path):
    np.save(tmp_path / "pool.npy", np.zeros((60, 8, 8), np.uint8))
    code, _, err = run_cli(
        "reference", "build", f"npy:{tmp_path / 'pool.npy'}", "--out", tmp_path / "r", "--clusters", "1000"
    )
    assert code == 2 and "1000 clusters for 60 items" in err


def test_reference_build_refuses_to_replace_a_finished_store_without_force(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.integers(0, 255, (80, 8, 8), dtype=np.uint8))
    np.save(tmp_path / "b.npy", rng.integers(0, 255, (80, 8, 8), dtype=np.uint8))
    code, out, _ = run_cli("reference", "build", f"npy:{tmp_path / 'a.npy'}", "--out", tmp_path / "ref", "--json")
    root = json.loads(out.splitlines()[-1])["root"]
    code, _, err = run_cli("reference", "build", f"npy:{tmp_path / 'b.npy'}", "--out", tmp_path / "ref")
    assert code == 2 and root in err and "--force" in err
    assert ReferenceStore(tmp_path / "ref").root.hex() == root  # untouched
    code, out, _ = run_cli("reference", "build", f"npy:{tmp_path / 'b.npy'}", "--out", tmp_path / "ref", "--force")
    assert code == 0 and f"replaced the store with root {root}" in out


def test_send_refuses_to_replace_an_existing_outbox(shapes, tmp_path):
    ref = tmp_path / "ref"
    assert run_cli("reference", "build", f"folder:{shapes / 'train'}", "--size", "24", "--out", ref)[0] == 0
    generate_keypair(tmp_path / "keys")
    args = ["send", "--teacher", shapes / "t.onnx", "--reference", ref, "--key", tmp_path / "keys" / "sender.key"]
    assert run_cli(*args, "--budget", "540", "--out", tmp_path / "outbox")[0] == 0
    before = sorted(p.name for p in (tmp_path / "outbox" / "frames").iterdir())
    code, _, err = run_cli(*args, "--budget", "540", "--out", tmp_path / "outbox")
    assert code == 2 and "already holds a payload" in err and "--force" in err
    assert sorted(p.name for p in (tmp_path / "outbox" / "frames").iterdir()) == before
    assert run_cli(*args, "--budget", "540", "--out", tmp_path / "outbox", "--force")[0] == 0


def test_keygen_and_its_api_name_the_same_thing_force(tmp_path):
    import inspect

    assert "force" in inspect.signature(generate_keypair).parameters
    generate_keypair(tmp_path)
    generate_keypair(tmp_path, force=True)
    code, _, err = run_cli("keygen", "--out", tmp_path)
    assert code != 0 and "--force" in err


def test_a_public_key_passed_as_the_signing_key_is_named_before_its_permissions(tmp_path):
    from labelcast.codec.errors import KeyFileError

    _, pub = generate_keypair(tmp_path)
    pub.chmod(0o644)
    with pytest.raises(KeyFileError, match="is a public key"):
        load_private_key(pub)


def _signed(tmp_path: Path, root: bytes) -> Path:
    priv, pub = generate_keypair(tmp_path / "keys")
    data, _ = build_payload(
        np.arange(10),
        np.arange(10) % 2,
        n_items=300,
        classes=2,
        root=root,
        key=load_private_key(priv),
        sequence=1,
        expires_at=int(time.time()) + 600,
    )
    (tmp_path / "p.lcst").write_bytes(data)
    return pub


def test_signature_failure_names_the_local_store_root(tmp_path):
    other = ReferenceStore(make_store(tmp_path / "other", n=300, seed=1))
    mine = ReferenceStore(make_store(tmp_path / "mine", n=300, seed=2))
    pub = _signed(tmp_path, other.root)
    code, _, err = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "mine",
        "--trust",
        pub,
        "--dry-run",
        "--state",
        tmp_path / "state",
    )
    assert code == 4 and mine.root.hex() in err and "reference_root" in err


def test_receive_dry_run_needs_no_out_and_reports_the_training_plan(tmp_path):
    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    pub = _signed(tmp_path, store.root)
    code, out, err = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "ref",
        "--trust",
        pub,
        "--dry-run",
        "--state",
        tmp_path / "state",
        "--json",
    )
    assert code == 0, err
    plan = json.loads(out.splitlines()[-1])["would_train"]
    assert plan["arch"] == "cnn-small" and plan["epochs"] >= 10 and plan["batch"] >= 1
    assert plan["memory_plan"]["budget_bytes"] > 0 and plan["labels"].startswith("hard")
    assert not (tmp_path / "out").exists()
    code, out, _ = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "ref",
        "--trust",
        pub,
        "--dry-run",
        "--state",
        tmp_path / "s2",
    )
    assert code == 0 and "would train cnn-small" in out and "memory plan" in out


def test_status_prints_people_text_and_a_one_shot_receive_appears_in_it(tmp_path):
    code, _, err = run_cli("status", "--state", tmp_path / "missing")
    assert code == 2 and "not a device state folder" in err
    store = ReferenceStore(make_store(tmp_path / "ref", n=300))
    pub = _signed(tmp_path, store.root)
    code, _, err = run_cli(
        "receive",
        tmp_path / "p.lcst",
        "--reference",
        tmp_path / "ref",
        "--trust",
        pub,
        "--out",
        tmp_path / "dev",
        "--state",
        tmp_path / "state",
        "--train-samples",
        "200",
    )
    assert code == 0, err
    code, out, _ = run_cli("status", "--state", tmp_path / "state")
    assert code == 0 and "received" in out and "sequence 1" in out
    assert "{" not in out and "'" not in out  # no Python dicts
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in out  # times as ISO dates
    code, out, _ = run_cli("model", "status", "--state", tmp_path / "state")
    assert code == 0 and "active" in out and "{" not in out


def test_profiles_show_names_the_misspelt_key_and_prints_units(tmp_path):
    p = tmp_path / "mydev.toml"
    p.write_text('base = "cpu-small"\nmemroy_mb = 100\n')
    code, _, err = run_cli("profiles", "show", p)
    assert code == 2 and "unknown key 'memroy_mb'" in err
    code, out, _ = run_cli("profiles", "show", "iridium-sbd-mt")
    assert code == 0 and "270 B" in out and "2400.0 bit/s" in out
    code, out, _ = run_cli("profiles", "show", "cpu-small")
    assert "4096 MiB" in out


def test_link_plan_refuses_a_file_that_is_not_a_payload(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    code, _, err = run_cli("link", "plan", tmp_path / "model.onnx", "--link", "iridium-sbd-mt")
    assert code == 2 and "not a labelcast payload" in err
    code, out, _ = run_cli("link", "plan", "--bytes", "5000", "--link", "lora-eu868-dr0", "--json")
    assert code == 0 and json.loads(out)["parity_frames"] > 0


def test_an_unreadable_image_is_named_and_skip_bad_lists_it(tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), i * 30, np.uint8)).save(src / f"{i}.png")
    (src / "broken.png").write_bytes(b"this is not a png")
    code, _, err = run_cli("reference", "build", f"folder:{tmp_path / 'src'}", "--out", tmp_path / "r")
    assert code == 2 and "broken.png" in err and "BytesIO" not in err and "resumes when rerun" in err
    code, out, _ = run_cli("reference", "build", f"folder:{tmp_path / 'src'}", "--out", tmp_path / "r2", "--skip-bad")
    assert code == 0 and "skipped 1 unreadable file(s): a/broken.png" in out


def test_the_memory_plan_reports_the_batch_actually_used(tmp_path):
    from labelcast.codec.preprocess import Preprocess
    from labelcast.profiles import load_device
    from labelcast.receiver.train import StudentConfig, train_student

    x = np.random.default_rng(0).integers(0, 255, (200, 8, 8, 1), dtype=np.uint8)
    _, info = train_student(
        x, np.arange(200) % 2, 2, Preprocess(8, 1), load_device("cpu-small"), StudentConfig(train_samples=400)
    )
    assert info["memory_plan"]["batch"] == info["batch"] <= info["memory_plan"]["estimate"]["max_batch"]
