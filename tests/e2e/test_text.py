"""Text as a first-class modality (issue #22): stores, sources, the whole CLI path on a small corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

CLASSES = {
    "animal": "cat dog horse sheep goat tiger lion wolf fox bear mouse whale".split(),
    "food": "bread cheese apple soup rice pasta butter honey salad cake pie stew".split(),
    "tool": "hammer saw drill wrench chisel pliers axe spade lever clamp file rasp".split(),
}
FILLER = "a the of with and that is used for kind small large old common wild made".split()


def _sentence(rng, cls: str) -> str:
    words = list(rng.choice(CLASSES[cls], 3)) + list(rng.choice(FILLER, 5))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    names = list(CLASSES)
    pool = [_sentence(rng, names[i % 3]) for i in range(600)] + [" ".join(rng.choice(FILLER, 6)) for _ in range(60)]
    (d / "pool.txt").write_text("\n".join(pool) + "\n\n", encoding="utf-8")
    for split, n in (("train", 300), ("test", 150)):
        rows = [{"text": _sentence(rng, names[i % 3]), "label": names[i % 3]} for i in range(n)]
        (d / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    for i in range(9):
        sub = d / "folder" / names[i % 3]
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.txt").write_text(_sentence(rng, names[i % 3]) + "\n" + _sentence(rng, names[i % 3]))
    return d


def test_text_store_is_deterministic_and_verified(corpus: Path, tmp_path: Path) -> None:
    roots = []
    for name in ("a", "b"):
        code, out, err = run_cli(
            "reference", "build", f"lines:{corpus / 'pool.txt'}", "--out", tmp_path / name, "--json"
        )
        assert code == 0, err
        roots.append(json.loads(out)["root"])
    assert roots[0] == roots[1]
    assert (tmp_path / "a" / "texts.u8").read_bytes() == (tmp_path / "b" / "texts.u8").read_bytes()
    info = json.loads((tmp_path / "a" / "store.json").read_text())
    assert info["modality"] == "text" and info["items"] == 660  # the blank lines are not items
    code, out, err = run_cli("reference", "verify", tmp_path / "a", "--full")
    assert code == 0, err + out
    texts = tmp_path / "a" / "texts.u8"
    raw = bytearray(texts.read_bytes())
    raw[500] ^= 0x20  # one changed byte (a letter's case)
    texts.write_bytes(bytes(raw))
    code, out, err = run_cli("reference", "verify", tmp_path / "a", "--full")
    assert code != 0 and "content hash differs" in out + err and "pool.txt:" in out + err


def test_text_sources(corpus: Path) -> None:
    from labelcast.codec.errors import SourceError
    from labelcast.datasets.sources import load_labelled, open_source

    x, y, names = load_labelled(f"jsonl:{corpus / 'train.jsonl'}:text:label")
    assert (
        x.dtype == object
        and len(x) == 300
        and names == ["animal", "food", "tool"]
        and np.bincount(y).tolist() == [100] * 3
    )
    per_file = open_source(f"folder:{corpus / 'folder'}")
    per_line = open_source(f"folder:{corpus / 'folder'}", per_line=True)
    assert per_file.kind == "text" and per_file.n == 9 and per_line.n == 18
    assert per_line.class_names == ["animal", "food", "tool"]
    with pytest.raises(SourceError, match="text: --size"):
        open_source(f"lines:{corpus / 'pool.txt'}", 32)
    bad = corpus / "bad.jsonl"
    bad.write_bytes(b'{"text": "fine", "label": "a"}\nnot json\n')
    with pytest.raises(SourceError, match="line 2"):
        open_source(f"jsonl:{bad}:text:label")
    assert open_source(f"jsonl:{bad}:text:label", skip_bad=True).n == 1
    latin = corpus / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8"):
        open_source(f"lines:{latin}")


@pytest.mark.slow  # half a minute end to end: make test-slow
def test_text_cli_path(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    """build → teacher train → send → receive → evaluate, all on text; an image teacher is refused."""
    ref, teacher = tmp_path / "ref", tmp_path / "teacher.onnx"
    assert run_cli("reference", "build", f"lines:{corpus / 'pool.txt'}", "--out", ref)[0] == 0
    code, out, err = run_cli("teacher", "train", "--data", f"jsonl:{corpus / 'train.jsonl'}:text:label",
                             "--out", teacher, "--epochs", "20", "--arch", "fasttext-small")  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli("teacher", "inspect", teacher)
    assert code == 0 and "tokenizer (stored)" in out and "N×128" in out
    test = f"jsonl:{corpus / 'test.jsonl'}:text:label"
    code, out, err = run_cli("evaluate", teacher, "--data", test, "--json")
    assert code == 0, err
    teacher_acc = json.loads(out.strip().splitlines()[-1])["accuracy"]
    assert teacher_acc > 0.9
    assert run_cli("keygen", "--out", tmp_path / "keys")[0] == 0
    key = tmp_path / "keys" / "sender.key"
    code, out, err = run_cli("send", "--reference", ref, "--teacher", teacher, "--key", key,
                             "--budget", "1080", "--out", tmp_path / "outbox", "--json")  # fmt: skip
    assert code == 0, err
    rep = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else json.loads(out)
    assert rep["selected_items"] > 100 and rep["framed_bytes"] <= 1080
    # auto on text: margin counts per cluster with keyed items, plain random-keyed when too few fit per class
    assert rep["auto"]["chose"]["strategy"] == "margin" and rep["auto"]["chose"]["keyed"]
    from labelcast.sender.selection import AUTO

    per_class = rep["selected_items"] // rep["classes"] + 1  # this small corpus: make 1,080 B "too few per class"
    monkeypatch.setitem(AUTO, "soft_min_per_class", per_class)
    code, out, err = run_cli("send", "--reference", ref, "--teacher", teacher, "--key", key,
                             "--budget", "1080", "--out", tmp_path / "outbox-small", "--json")  # fmt: skip
    small = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else json.loads(out)
    assert small["auto"]["chose"]["strategy"] == "random-keyed" and "soft_items_too_few" in small["auto"]
    code, out, err = run_cli("receive", tmp_path / "outbox" / "frames", "--reference", ref, "--trust",
                             tmp_path / "keys" / "sender.pub", "--out", tmp_path / "device", "--state",
                             tmp_path / "state", "--train-samples", "20000", "--arch", "fasttext-small")  # fmt: skip
    assert code == 0, err
    assert "fasttext-small" in out
    code, out, err = run_cli("evaluate", tmp_path / "device" / "student.onnx", "--data", test, "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["accuracy"] > 0.85
    # the semi-supervised round on a text store: the student's own features, the text student's round 2; a
    # payload that labels a fifth of this small store leaves the rest as the pool
    code, out, err = run_cli("send", "--reference", ref, "--teacher", teacher, "--key", key, "--keep", "0.2",
                             "--budget", "1080", "--out", tmp_path / "outbox-270", "--json")  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli("receive", tmp_path / "outbox-270" / "frames", "--reference", ref, "--trust",
                             tmp_path / "keys" / "sender.pub", "--out", tmp_path / "device-semi", "--state",
                             tmp_path / "state-semi", "--train-samples", "20000", "--arch", "fasttext-small",
                             "--semi", "on")  # fmt: skip
    assert code == 0, err
    assert "semi-supervised round:" in out and "pool items pseudo-labelled (0 of them field captures)" in out
    code, out, err = run_cli("evaluate", tmp_path / "device-semi" / "student.onnx", "--data", test, "--json")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["accuracy"] > 0.85, err
    # an image teacher over a text store: a typed error naming both sides, nothing written
    img = tmp_path / "img.onnx"
    _image_teacher(img)
    code, out, err = run_cli("send", "--reference", ref, "--teacher", img, "--key", key,
                             "--budget", "1080", "--out", tmp_path / "outbox2")  # fmt: skip
    assert code != 0 and "takes image" in err and "holds text" in err and not (tmp_path / "outbox2" / "frames").exists()


def _image_teacher(path: Path) -> None:
    import torch

    from labelcast.codec.preprocess import Preprocess
    from labelcast.sender.teacher import export_teacher

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    export_teacher(model, path, Preprocess((8, 8), 1, 1 / 255, (0.0,), (1.0,)), ["animal", "food", "tool"])


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="wordnet-base not installed")
def test_builtin_wordnet_scenario() -> None:
    """The built-in text scenario: 10 classes in both splits, a pool from other sources (no WordNet text)."""
    from labelcast.datasets.sources import load_labelled, open_source

    _, ytr, names = load_labelled("builtin:wordnet:train")
    _, yte, _ = load_labelled("builtin:wordnet:test")
    assert len(names) == 10 and len(ytr) == 20_000 and len(yte) == 2_000
    assert (np.bincount(yte, minlength=10) > 40).all()  # every class in the test split
    pool = open_source("builtin:wordnet")
    assert pool.kind == "text" and pool.n > 100_000 and pool.group_names == ["gcide", "fortunes"]
    texts = pool.read(0, pool.n)[0]
    assert not any(b"[WordNet" in t for t in texts[::97])
