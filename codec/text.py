"""Text items and the tokenizer both ends must apply bit for bit.

**Normalisation** (what a text store holds and hashes): Unicode NFC, then every run of whitespace
(``str.split()``'s definition) becomes one space, and the ends are stripped; stored as UTF-8.

**Tokenizer, version 1** (a hashing tokenizer: no vocabulary file to ship or to drift):

1. lower-case the normalised text; *words* are the maximal runs of ``str.isalnum()`` characters;
2. features, in this order: each word ``w`` → ``"w:" + w``; each pair of neighbouring words →
   ``"b:" + w1 + " " + w2``; each character trigram of ``"<" + w + ">"`` (``char_ngrams`` = 3) →
   ``"c:" + trigram``;
3. a feature's id is ``1 + H mod (vocab − 1)`` where H is 64-bit FNV-1a (offset basis
   0xcbf29ce484222325, prime 0x100000001b3) over the seed as 8 little-endian bytes followed by the
   feature's UTF-8 bytes (id 0 is padding) — a hash a device can compute in a few lines of any language;
4. the first ``length`` ids, padded with 0.

A model takes them as an ``N × length`` int64 input named ``tokens``. The configuration
(``version``, ``vocab``, ``seed``, ``length``, ``char_ngrams``, ``bigrams``) is stored in a text
teacher's metadata (``labelcast.tokenizer``) and, when it differs from the default, in the
payload's training hints (``tokenizer``); golden ids are pinned in ``tests/codec/test_text.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["normalize", "Tokenizer", "DEFAULT_TOKENIZER", "TextPreprocess", "hash_texts", "text_features", "TEXT_DIMS"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def normalize(text: str) -> bytes:
    """NFC, whitespace runs → one space, ends stripped; UTF-8."""
    return " ".join(unicodedata.normalize("NFC", text).split()).encode("utf-8")


def hash_texts(texts) -> np.ndarray:
    """SHA-256 of each item's bytes → (n, 32) uint8 (what a text store's manifest holds)."""
    sha = hashlib.sha256
    digests = b"".join(sha(bytes(t)).digest() for t in texts)
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32).copy()


_WORD = re.compile(r"[^\W_]+")  # runs of characters for which str.isalnum() is true


def _text(t) -> str:
    return t.decode("utf-8", "replace") if isinstance(t, bytes | bytearray) else str(t)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def fnv1a64(rows: list[bytes], seed: int = 0) -> np.ndarray:
    """64-bit FNV-1a of ``seed`` (8 LE bytes) ‖ row, for many rows at once (numpy, column by column)."""
    n = len(rows)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    for b in int(seed).to_bytes(8, "little"):
        h = (h ^ np.uint64(b)) * prime
    if not n:
        return h
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=n)
    order = np.argsort(-lens, kind="stable")  # longest first: at byte j the rows still going are a prefix
    width = int(lens[order[0]])
    buf = np.frombuffer(b"".join(rows[i].ljust(width, b"\0") for i in order.tolist()), np.uint8).reshape(n, width)
    sl = lens[order]
    live = np.searchsorted(-sl, -np.arange(width), side="left")  # rows longer than j bytes, per column j
    hs = h[order]
    for j in range(width):
        m = int(live[j])
        hs[:m] = (hs[:m] ^ buf[:m, j].astype(np.uint64)) * prime
    h[order] = hs
    return h


@dataclass(frozen=True)
class Tokenizer:
    version: int = 1
    vocab: int = 1 << 18  # ids 1 … vocab − 1 (0 pads)
    seed: int = 0
    length: int = 128  # ids per item (truncated / padded)
    char_ngrams: int = 3  # 0: none
    bigrams: bool = True

    def __post_init__(self) -> None:
        if self.version != 1:
            raise ValueError(f"tokenizer version {self.version} is not known (this labelcast knows version 1)")
        if not 2 <= self.vocab <= 1 << 24 or not 1 <= self.length <= 4096 or not 0 <= self.char_ngrams <= 8:
            raise ValueError("tokenizer vocab must be 2..2**24, length 1..4096, char_ngrams 0..8")

    def features(self, text: bytes | str) -> list[str]:
        """The features of step 2, in order, cut at ``length``."""
        t = _text(text).lower()
        words = _words(t)
        feats = [f"w:{w}" for w in words]
        if self.bigrams and len(feats) < self.length:
            feats += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        for w in words:
            if len(feats) >= self.length:
                break
            feats += self._grams(w)
        return feats[: self.length]

    def ids(self, text: bytes | str) -> list[int]:
        """The ids of one item (no padding)."""
        row = self.encode([text])[0]
        return row[row > 0].tolist()

    def _hash(self, feats: list[str]) -> np.ndarray:
        return (fnv1a64([f.encode("utf-8") for f in feats], self.seed) % np.uint64(self.vocab - 1)).astype(np.int64) + 1

    def encode(self, texts) -> np.ndarray:
        """N × length int64 token ids (0 = padding): the features of :meth:`features`, hashed; a word's own
        ids (its ``w:`` and ``c:`` features) are cached per tokenizer, so a corpus hashes each word once."""
        docs = [_words(_text(t).lower()) for t in texts]
        cache = self.__dict__.setdefault("_cache", {})
        if len(cache) > 1 << 20:
            cache.clear()
        new = sorted({w for ws in docs for w in ws if w not in cache})
        if new:
            per = [[f"w:{w}", *self._grams(w)] for w in new]
            ids = self._hash([f for fs in per for f in fs])
            ends = np.cumsum([len(fs) for fs in per])
            for w, a, b in zip(new, ends - [len(fs) for fs in per], ends, strict=True):
                cache[w] = ids[a:b].tolist()
        pairs = [f"b:{a} {b}" for ws in docs for a, b in zip(ws, ws[1:], strict=False)] if self.bigrams else []
        pair_ids = self._hash(pairs) if pairs else np.zeros(0, np.int64)
        pair_ids = pair_ids.tolist()
        rows: list[int] = []
        counts = np.zeros(len(docs), dtype=np.int64)
        L, at, chain = self.length, 0, itertools.chain.from_iterable
        for i, ws in enumerate(docs):
            nb = max(len(ws) - 1, 0) if self.bigrams else 0
            own = [cache[w] for w in ws]
            row = [o[0] for o in own] + pair_ids[at : at + nb]
            at += nb
            if len(row) < L:
                row += list(chain(o[1:] for o in own))
            row = row[:L]
            counts[i] = len(row)
            rows += row
        out = np.zeros((len(docs), L), dtype=np.int64)
        r = np.repeat(np.arange(len(docs)), counts)
        c = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        out[r, c] = rows
        return out

    def _grams(self, w: str) -> list[str]:
        n = self.char_ngrams
        if not n:
            return []
        s = f"<{w}>"
        return [f"c:{s[i : i + n]}" for i in range(max(1, len(s) - n + 1))]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> Tokenizer:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"malformed tokenizer configuration: {e}") from e

    def hint(self) -> dict:
        """What a payload's hints must carry for the device to tokenize the same way (nothing if default)."""
        return {} if self == DEFAULT_TOKENIZER else {"tokenizer": asdict(self)}


DEFAULT_TOKENIZER = Tokenizer()


@dataclass(frozen=True)
class TextPreprocess:
    """A text model's input: its tokenizer and what its output is (``logits`` | ``probs`` | ``log_probs``);
    the text counterpart of :class:`labelcast.codec.preprocess.Preprocess` (same ``apply``/``as_logits``)."""

    tokenizer: Tokenizer = DEFAULT_TOKENIZER
    output: str = "logits"
    modality = "text"

    def __post_init__(self) -> None:
        if self.output not in ("logits", "probs", "log_probs"):
            raise ValueError("output must be logits, probs or log_probs")

    def apply(self, texts) -> np.ndarray:
        return self.tokenizer.encode(texts)

    def as_logits(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float32)
        return np.log(np.maximum(out, 1e-12)) if self.output == "probs" else out

    def input_shape(self, batch: int | str = "N") -> tuple:
        return (batch, self.tokenizer.length)

    def describe(self) -> str:
        t = self.tokenizer
        return f"text: hashing tokenizer v{t.version}, vocab {t.vocab}, seed {t.seed}, {t.length} ids, {self.output}"

    def to_json(self) -> str:
        return json.dumps({"tokenizer": asdict(self.tokenizer), "output": self.output}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict) -> TextPreprocess:
        d = json.loads(text) if isinstance(text, str) else dict(text)
        if "tokenizer" not in d:  # a bare tokenizer configuration
            return cls(Tokenizer.from_json(d))
        return cls(Tokenizer.from_json(d["tokenizer"]), d.get("output", "logits"))


TEXT_DIMS = 1024  # hashed word features for clustering text


def text_features(texts, idf: np.ndarray | None = None) -> np.ndarray:
    """Items' words hashed into 1,024 dims (the tokenizer's hash, words only), log(1 + count) × ``idf``,
    each row L2-normalised → N × 1024 float32."""
    tok = Tokenizer(vocab=TEXT_DIMS + 1, length=256, char_ngrams=0, bigrams=False)
    ids = tok.encode(list(texts))
    n = ids.shape[0]
    out = np.zeros((n, TEXT_DIMS + 1), dtype=np.float32)
    np.add.at(out, (np.repeat(np.arange(n), ids.shape[1]), ids.reshape(-1)), 1.0)
    f = np.log1p(out[:, 1:])
    if idf is not None:
        f *= idf
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-6)
