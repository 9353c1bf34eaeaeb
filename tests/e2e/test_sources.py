"""One source grammar for every command (issue #24): every form × every command that takes a source,
each either working or giving the typed error that names the forms that would do — never a traceback
or an "unknown scenario" for a valid form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelcast.datasets.builtin import FASHION_DIR
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(not FASHION_DIR.exists(), reason="Fashion-MNIST not installed (make test installs it)")


@pytest.fixture(scope="module")
def forms(tmp_path_factory) -> tuple[Path, dict[str, bool]]:
    """Every form, and whether it carries labels."""
    d = tmp_path_factory.mktemp("forms")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 12, 12), dtype=np.uint8)
    y = np.arange(40) % 2
    np.save(d / "arr.npy", x)
    np.save(d / "arr-labels.npy", y)
    np.save(d / "bare.npy", x)
    np.savez(d / "lab.npz", x=x, y=y, names=np.array(["even", "odd"]))
    np.savez(d / "unl.npz", x=x)
    for i in range(12):
        for root in ("classes", "flat"):
            sub = d / root / (("even", "odd")[i % 2] if root == "classes" else "")
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i]).save(sub / f"{i:02d}.png")
    table = {
        "builtin:fashion": False,
        "builtin:fashion:train": True,
        f"folder:{d / 'classes'}": True,
        f"folder:{d / 'flat'}": False,
        f"npy:{d / 'arr.npy'}": True,
        f"npy:{d / 'bare.npy'}": False,
        f"npz:{d / 'lab.npz'}": True,
        f"npz:{d / 'unl.npz'}": False,
    }
    code, _, err = run_cli(
        "teacher", "train", "--data", "npy:arr.npy", "--out", "t.onnx", "--epochs", "1", "--width", "4", cwd=d
    )
    assert code == 0, err
    return d, table


def _ok(code: int, err: str) -> None:
    assert code == 0, err


def _typed(code: int, err: str) -> None:
    assert code == 2 and "Traceback" not in err and "unknown built-in scenario" not in err
    assert "labelled forms" in err  # names the forms that would do


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_every_form_with_every_command(forms):
    d, table = forms
    for i, (form, labelled) in enumerate(table.items()):
        small = ["--size", "12", "--channels", "1"] if form.startswith("folder:") else []
        clusters = ["--clusters", "0"] if form == "builtin:fashion" else []
        _ok(*run_cli("reference", "build", form, "--out", f"ref{i}", *small, *clusters, cwd=d)[::2])
        _ok(*run_cli("teacher", "calibrate", "t.onnx", "--data", form, "--out", f"cal{i}.onnx", cwd=d)[::2])
        train = run_cli(
            "teacher", "train", "--data", form, "--out", f"t{i}.onnx", "--epochs", "1", "--width", "4", *small, cwd=d
        )
        ev = run_cli("evaluate", "t.onnx", "--data", form, cwd=d)
        if labelled and form == "builtin:fashion:train":
            _ok(*train[::2])
            # ten named classes against the 2-class teacher (trained on an array, its classes are positions):
            # no name matches, so the outputs cannot be compared with the labels: refused, not a silent score
            assert ev[0] == 2 and "has 2 classes and the data 10" in ev[2], ev[2]
        elif labelled:
            _ok(*train[::2])
            _ok(*ev[::2])  # two classes each side, no names in common: matched by index
        else:
            _typed(*train[::2])
            _typed(*ev[::2])


def test_labels_for_an_array_can_be_given_with_labels(forms):
    d, _ = forms
    code, out, err = run_cli(
        "evaluate", "t.onnx", "--data", "npy:bare.npy", "--labels", "arr-labels.npy", "--json", cwd=d
    )
    assert code == 0 and json.loads(out.splitlines()[-1])["items"] == 40, err


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_calibrate_on_the_teachers_own_training_data_matches_what_teacher_train_recorded(tmp_path):
    code, _, err = run_cli(
        "teacher",
        "train",
        "--data",
        "builtin:fashion:train",
        "--out",
        "t.onnx",
        "--epochs",
        "2",
        "--width",
        "8",
        cwd=tmp_path,
    )
    assert code == 0, err
    from labelcast.sender.teacher import Teacher

    recorded = Teacher(tmp_path / "t.onnx").confidence
    code, out, err = run_cli(
        "teacher", "calibrate", "t.onnx", "--data", "builtin:fashion:train", "--json", cwd=tmp_path
    )
    assert code == 0, err
    assert abs(json.loads(out.splitlines()[-1])["train_confidence"] - recorded) < 0.01


def test_sources_lists_every_form_with_an_example():
    from labelcast.datasets.sources import FORMS

    code, out, _ = run_cli("sources")
    assert code == 0 and all(form in out for form in FORMS) and "e.g." in out


def test_a_large_labelled_folder_streams_from_a_disk_cache_not_ram(forms, tmp_path, monkeypatch):
    from labelcast.datasets import sources
    from labelcast.sender.teacher import TeacherConfig, train_and_export

    d, _ = forms
    monkeypatch.setattr(sources, "STREAM_OVER_BYTES", 100)  # anything larger than 100 bytes counts as large
    monkeypatch.setenv("LABELCAST_CACHE_DIR", str(tmp_path / "cache"))
    x, y, names = sources.load_labelled(f"folder:{d / 'classes'}", 12, 1)
    assert isinstance(x, np.memmap) and list((tmp_path / "cache").glob("*.u8"))
    train_and_export(x, y, names, tmp_path / "t.onnx", TeacherConfig(epochs=1, width=4))  # batch by batch from disk
    again, _, _ = sources.load_labelled(f"folder:{d / 'classes'}", 12, 1)
    assert np.array_equal(np.asarray(again), np.asarray(x))  # the cache is reused
