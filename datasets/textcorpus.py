"""The built-in text scenario ``wordnet``, from corpora Debian packages ship (nothing is downloaded).

* **Target** (the sender's private labelled data): WordNet 3.0 noun synsets (``wordnet-base``,
  ``/usr/share/wordnet/data.noun``), each written as ``"lemma, lemma: gloss"``, classified by the
  lexicographer file the synset belongs to — 10 of WordNet's 25 noun files: act, animal, artifact,
  body, communication, food, location, person, plant, substance (61,251 synsets). 20,000 of them
  (stratified, seed 0) are the teacher's training data; 2,000 of the rest, drawn at random (seed 1), are
  the test set.
* **Reference pool** (what the device holds, unlabelled): the definitions of the GNU Collaborative
  International Dictionary of English (``dict-gcide``, ``/usr/share/dictd/gcide.dict.dz``; entries
  written ``"Headword: definition"``), leaving out the entries GCIDE took from WordNet 1.5 so the
  pool is another source than the target, plus the quotations of ``fortunes`` (the inoffensive
  set). Near the task, never the same text.

Licences: WordNet's own licence (free use, copyright notice kept), GCIDE under the GPL-3+, the
fortunes under BSD-style terms (see each package's ``/usr/share/doc/*/copyright``). The parsed
corpus is cached once as an ``.npz`` under the labelcast cache (``$LABELCAST_CACHE_DIR``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..codec.errors import SourceError
from ..codec.text import normalize

__all__ = ["WORDNET_CLASSES", "wordnet_target", "wordnet_pool", "pack", "unpack"]

WORDNET_DIR = Path(os.environ.get("LABELCAST_WORDNET_DIR", "/usr/share/wordnet"))
GCIDE_FILE = Path(os.environ.get("LABELCAST_GCIDE_FILE", "/usr/share/dictd/gcide.dict.dz"))
FORTUNES_DIR = Path(os.environ.get("LABELCAST_FORTUNES_DIR", "/usr/share/games/fortunes"))
WORDNET_CLASSES = (
    "act",
    "animal",
    "artifact",
    "body",
    "communication",
    "food",
    "location",
    "person",
    "plant",
    "substance",
)
_LEXFILE = {"04": 0, "05": 1, "06": 2, "08": 3, "10": 4, "13": 5, "15": 6, "18": 7, "20": 8, "27": 9}
MAX_CHARS = 400  # an item is cut at the last space before this many characters
WORDNET_TRAIN = 20_000
WORDNET_TEST = 2_000
_VERSION = 3  # of the parsing below (part of the cache key)


class TextDataUnavailableError(SourceError):
    """A built-in corpus is not installed on this machine."""


def _need(path: Path, package: str) -> None:
    if not path.exists():
        raise TextDataUnavailableError(
            f"{path} is missing: install the Debian package {package} "
            f"(sudo apt-get install {package}; `make demo` does)"
        )


def _cut(text: str) -> bytes:
    t = normalize(text)
    if len(t) <= MAX_CHARS:
        return t
    head = t[:MAX_CHARS]
    return head[: head.rfind(b" ")] if b" " in head else head[:MAX_CHARS].decode("utf-8", "ignore").encode()


def pack(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts → (concatenated uint8, N + 1 offsets)."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in texts])
    return np.frombuffer(b"".join(texts), dtype=np.uint8).copy(), offsets


def unpack(blob: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    b, o = blob.tobytes(), offsets.tolist()
    out = np.empty(len(o) - 1, dtype=object)
    out[:] = [b[x:y] for x, y in zip(o[:-1], o[1:], strict=True)]
    return out


def _wordnet_all() -> tuple[list[bytes], list[int]]:
    path = WORDNET_DIR / "data.noun"
    _need(path, "wordnet-base")
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split(" ")
            cls = _LEXFILE.get(fields[1])
            if cls is None:
                continue
            n = int(fields[3], 16)
            lemmas = [re.sub(r"\(.*?\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(n)]
            texts.append(_cut(f"{', '.join(lemmas)}: {gloss}"))
            labels.append(cls)
    return texts, labels


_ENTRY = re.compile(r"\n(?=[^\s\n][^\n]*\\[^\n]*\\)")  # an entry starts at column 0 with "Word \pro*nun\"


def _gcide_entry(block: str) -> bytes | None:
    if "[WordNet 1.5" in block or "[WordNet 2" in block or "[WordNet 3" in block:
        return None
    lines = block.split("\n")
    head = lines[0].split("\\", 1)[0].strip()
    rest = lines[0].split("\\", 2)[2] if lines[0].count("\\") >= 2 else ""
    body = [rest] + [ln for ln in lines[1:] if len(ln) - len(ln.lstrip(" ")) <= 6]  # quotations are indented more
    text = " ".join(body)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # etymologies and source tags
    text = re.sub(r"\([^()]*[\"*`][^()]*\)", " ", text)  # pronunciations
    text = re.sub(r"--[A-Z][\w.' ]*", " ", text)  # citations
    text = text.replace("{", "").replace("}", "").strip(" ,.")
    if not head or len(text) < 8:
        return None
    return _cut(f"{head}: {text}")


def _gcide() -> list[bytes]:
    _need(GCIDE_FILE, "dict-gcide")
    with gzip.open(GCIDE_FILE, "rb") as f:  # dictzip is gzip-compatible
        data = f.read().decode("utf-8", "replace")
    out = []
    for block in _ENTRY.split(data):
        if block.startswith("00-database"):
            continue
        t = _gcide_entry(block)
        if t:
            out.append(t)
    return out


def _fortunes() -> list[bytes]:
    _need(FORTUNES_DIR, "fortunes")
    out = []
    for p in sorted(FORTUNES_DIR.iterdir()):
        if p.suffix or p.is_symlink() or not p.is_file() or p.name == "off":
            continue
        for part in p.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            t = _cut(part.strip("%\n "))
            if len(t) >= 8:
                out.append(t)
    return out


def _cached(name: str, build) -> dict:
    from .base import cache_root

    key = hashlib.sha256(f"{name}-{_VERSION}-{MAX_CHARS}".encode()).hexdigest()[:12]
    path = cache_root() / f"text-{name}-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def _build_target() -> dict:
    texts, labels = _wordnet_all()
    blob, off = pack(texts)
    return {"blob": blob, "offsets": off, "y": np.array(labels, dtype=np.int64)}


def _build_pool() -> dict:
    g, f = _gcide(), _fortunes()
    blob, off = pack(g + f)
    return {"blob": blob, "offsets": off, "groups": np.array([0] * len(g) + [1] * len(f), dtype=np.uint32)}


@lru_cache(maxsize=2)
def wordnet_target(split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``train`` (20,000) or ``test`` (2,000) glosses: (object array of UTF-8 bytes, labels, class names)."""
    from .base import stratified_split

    z = _cached("wordnet-target", _build_target)
    texts, y = unpack(z["blob"], z["offsets"]), z["y"]
    tr, te = stratified_split(y, WORDNET_TRAIN, seed=0)
    if split == "train":
        sel = tr
    elif split == "test":  # spread over every class (the file is ordered by lexicographer file)
        sel = np.sort(np.random.default_rng(1).permutation(te)[:WORDNET_TEST])
    else:
        raise ValueError(f"split must be train or test, not {split!r}")
    return texts[sel], y[sel], list(WORDNET_CLASSES)


@lru_cache(maxsize=1)
def wordnet_pool() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The reference pool: (object array of UTF-8 bytes, group per item, group names ["gcide", "fortunes"])."""
    z = _cached("wordnet-pool", _build_pool)
    return unpack(z["blob"], z["offsets"]), z["groups"], ["gcide", "fortunes"]
