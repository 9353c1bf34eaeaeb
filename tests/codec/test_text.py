"""The text contract (issue #22): normalisation and the hashing tokenizer, bit for bit on both ends."""

from __future__ import annotations

import numpy as np
import pytest

from labelcast.codec.text import DEFAULT_TOKENIZER, TextPreprocess, Tokenizer, hash_texts, normalize

# pinned: a change here breaks every deployed text model (bump the tokenizer version instead)
GOLDEN = {
    "The cat sat.": [
        23117,
        184760,
        52449,
        47579,
        178568,
        139688,
        94415,
        246146,
        236133,
        125311,
        93850,
        20866,
        239687,
        93850,
    ],  # fmt: skip
}
GOLDEN_SMALL = [599, 108, 367, 606, 579, 235, 324, 737]  # vocab 1000, seed 7, length 8


def _fnv(data: bytes) -> int:
    """64-bit FNV-1a as the spec writes it (one byte at a time)."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & ((1 << 64) - 1)
    return h


def test_normalize_nfc_and_whitespace() -> None:
    assert normalize("Cafe\u0301  au\tlait\n") == "Café au lait".encode()
    assert normalize("  \n ") == b""


def test_golden_ids() -> None:
    for text, ids in GOLDEN.items():
        assert DEFAULT_TOKENIZER.ids(text) == ids
        assert DEFAULT_TOKENIZER.ids(text.encode()) == ids
    assert Tokenizer(vocab=1000, seed=7, length=8).ids("Café au lait, s’il vous plaît") == GOLDEN_SMALL


def test_ids_follow_the_written_spec() -> None:
    """The vectorised hash equals the spec's byte-at-a-time FNV-1a over seed ‖ feature."""
    tok = Tokenizer(vocab=5000, seed=123456789, length=64)
    text = "Ünïcode wörds, numbers 42 and under_scores; «quoted»"
    want = [1 + _fnv((123456789).to_bytes(8, "little") + f.encode()) % 4999 for f in tok.features(text)]
    assert tok.ids(text) == want
    feats = tok.features(text)
    assert feats[0] == "w:ünïcode" and "w:under" in feats and "w:scores" in feats  # _ splits words
    assert "b:ünïcode wörds" in feats and "c:<42" in feats


def test_encode_pads_and_truncates() -> None:
    tok = Tokenizer(length=6)
    out = tok.encode(["a b c d e f g h", "", "word"])
    assert out.shape == (3, 6) and out.dtype == np.int64
    assert (out[0] > 0).all() and (out[1] == 0).all()
    assert list(out[2][out[2] > 0]) == tok.ids("word")
    assert (out > 0).sum(1)[2] == 1 + 4  # the word and its 4 trigrams of <word>


def test_cache_does_not_change_ids() -> None:
    tok = Tokenizer()
    first = tok.encode(["the same words", "words the same"])
    again = tok.encode(["words the same", "the same words"])
    assert (first[::-1] == again).all()


def test_configuration_round_trip_and_hints() -> None:
    tok = Tokenizer(vocab=4096, seed=3, length=32, char_ngrams=0, bigrams=False)
    assert Tokenizer.from_json(tok.to_json()) == tok
    assert DEFAULT_TOKENIZER.hint() == {} and tok.hint()["tokenizer"]["seed"] == 3
    tp = TextPreprocess(tok, "probs")
    assert TextPreprocess.from_json(tp.to_json()) == tp and tp.input_shape(2) == (2, 32)
    with pytest.raises(ValueError, match="version"):
        Tokenizer(version=2)
    with pytest.raises(ValueError, match="malformed"):
        Tokenizer.from_json('{"vocab": 10, "colour": 1}')


def test_hash_texts_is_sha256_of_the_bytes() -> None:
    import hashlib

    got = hash_texts([b"one", b""])
    assert got.shape == (2, 32) and bytes(got[0]) == hashlib.sha256(b"one").digest()
