"""Property tests: hostile Unicode -> sanitize -> encode -> windows -> decode, offsets always slice.

Texts mix names, lone UTF-16 surrogates, combining marks (old and new: the Rust tokenizer's Unicode
tables are older than Python's), spacing marks, RTL text and marks, emoji sequences, CJK, every
kind of line break, controls and absurdly long words.
"""
from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.tiny import WORDS, make_tiny_model, tiny_tokenizer

from extract.text.labels import bio_labels
from extract.model.predict import predict_probs
from extract.text.spans import DocProbs, decode
from extract.text.sanitize import sanitize
from extract.text.windows import best_window_per_piece, encode, windows

LABELS = bio_labels()
TYPES = {"PER", "LOC", "ORG", "MISC"}
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF


# --- text strategy -----------------------------------------------------------------------------

SEPARATORS = [" ", "  ", "\n", "\n\n", "\r\n", "\r\n\r\n", "\r", "\r\r", "\t", "\u2028", "\u2029",
              "\x85", "\xa0", "\u3000", "\x0b", "\x0c"]
SPECIAL = [
    "\x00", "\x01", "\x1b", "\x7f", "\x9f", "\ufeff", "\u200b", "\u200d", "\u200e", "\u200f",
    "\u202e", "\u2066", "\u061c", "\u00ad", "\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\ue000",
    "\u0378",  # unassigned
    "\u0301", "\u0308", "\u0327", "\u1ac9", "\u1dea", "\u302e", "\U0001d165", "\u20dd", "\ufe0f",
    "\u0947", "\u0e35",  # marks: Mn, newer Mn, Mc with ccc != 0, Me, VS16, Indic/Thai vowel signs
    "😀", "👨\u200d👩\u200d👧", "🇩🇪", "👍🏽", "1\ufe0f\u20e3", "北", "京", "東京", "한국", "é", "İ", "ß", "ﬃ",
    "مرحبا", "שָׁלוֹם", "नमस्ते", "สวัสดี", "\u212b", ".", ",", "-", "'", "(", ")", "\"", "$",
]
surrogate = st.integers(0xD800, 0xDFFF).map(chr)
word = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(str.title),
    st.sampled_from(WORDS).map(str.upper),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=12),
    st.text(string.ascii_lowercase, min_size=40, max_size=250),  # long words (> 100 chars: [UNK])
)
chunk = st.one_of(
    word, word, word,
    st.sampled_from(SEPARATORS), st.sampled_from(SEPARATORS),
    st.sampled_from(SPECIAL),
    surrogate,
    st.lists(st.sampled_from(["\u0301", "\u0300", "\u0308", "\u1ac9"]), min_size=20, max_size=300).map("".join),
    st.characters(exclude_categories=()),  # any code point, surrogates included
)
texts = st.lists(chunk, max_size=60).map("".join)
short_texts = st.lists(st.one_of(word.filter(lambda w: len(w) < 40), st.sampled_from(SEPARATORS),
                                 st.sampled_from(SPECIAL), surrogate), max_size=25).map("".join)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


# --- checks ------------------------------------------------------------------------------------

def check_sanitized(original: str, clean: str, warning: str | None) -> None:
    assert len(clean) == len(original)
    n = 0
    for a, b in zip(original, clean):
        if is_surrogate(a):
            assert b == "\ufffd"
            n += 1
        else:
            assert a == b
    if n == 0:
        assert warning is None and clean is original
    else:
        assert warning is not None and warning.startswith(f"replaced {n} ") and "U+FFFD" in warning
    again, w2 = sanitize(clean)
    assert again is clean and w2 is None


def check_encoded(enc, clean: str) -> None:
    n = len(enc.ids)
    assert len(enc.starts) == len(enc.ends) == len(enc.word_ids) == len(enc.casing) == n
    if n == 0:
        return
    assert (0 <= enc.starts).all() and (enc.starts < enc.ends).all() and (enc.ends <= len(clean)).all()
    assert (np.diff(enc.starts) >= 0).all()
    assert enc.word_ids[0] == 0 and set(np.diff(enc.word_ids)) <= {0, 1}
    ws, we = enc.word_spans()
    assert len(ws) == enc.n_words
    assert (ws < we).all() and (ws[1:] >= we[:-1]).all()  # words are disjoint and in order
    for s, e in zip(ws, we):
        assert not clean[s:e].isspace()


def check_windows(word_ids: np.ndarray, max_tokens: int, stride: int) -> None:
    n = len(word_ids)
    wins = windows(word_ids, max_tokens, stride)
    if n == 0:
        assert wins == []
        return
    assert wins[0][0] == 0 and wins[-1][1] == n
    covered = np.zeros(n, dtype=int)
    for (s, e), nxt in zip(wins, wins[1:] + [None]):
        assert 0 <= s < e <= n and e - s <= max_tokens
        covered[s:e] += 1
        if nxt is not None:
            assert s < nxt[0] <= e  # moves forward, leaves no gap
    assert (covered >= 1).all()
    best = best_window_per_piece(n, wins)
    # The assignment predict_probs makes: piece i takes window best[i]'s logits.
    taken = np.zeros(n, dtype=int)
    for k, (s, e) in enumerate(wins):
        take = np.flatnonzero(best[s:e] == k)
        taken[s + take] += 1
    assert (taken == 1).all()  # every wordpiece, so every word's first piece, from exactly one window
    for i, k in enumerate(best):
        assert wins[k][0] <= i < wins[k][1]


def check_entities(ents: list[dict], original: str, clean: str) -> None:
    prev_end = 0
    for ent in ents:
        s, e = ent["start"], ent["end"]
        assert isinstance(s, int) and isinstance(e, int)
        assert 0 <= s < e <= len(clean)
        assert ent["text"] == clean[s:e]
        assert sanitize(original[s:e])[0] == ent["text"]  # same offsets into the raw input
        assert s >= prev_end  # sorted, non-overlapping
        prev_end = e
        assert 0.0 <= ent["score"] <= 1.0
        assert ent["label"] in TYPES
        assert not ent["text"][0].isspace() and not ent["text"][-1].isspace()
        assert "\n\n" not in ent["text"] and "\r\n\r\n" not in ent["text"] and "\u2029" not in ent["text"]


def random_probs(rng: np.random.Generator, n_words: int) -> np.ndarray:
    # Peaky rows so that argmax tags form plenty of spans, some of them illegal (repair runs).
    probs = rng.dirichlet(np.full(len(LABELS), 0.3), size=n_words).astype(np.float32)
    return probs / probs.sum(axis=1, keepdims=True)


# --- properties --------------------------------------------------------------------------------

@settings(max_examples=200, **SETTINGS)
@given(text=texts, max_tokens=st.integers(2, 40), stride_frac=st.floats(0, 0.99),
       seed=st.integers(0, 2**32 - 1), repair=st.sampled_from(["drop", "begin"]),
       keep=st.sampled_from([None, ("PER", "LOC", "ORG"), ("MISC",)]))
def test_sanitize_encode_windows_decode(tok, text, max_tokens, stride_frac, seed, repair, keep):
    clean, warning = sanitize(text)
    check_sanitized(text, clean, warning)  # (a)
    enc = encode(clean, tok)  # (b) never raises on sanitized text
    check_encoded(enc, clean)
    check_windows(enc.word_ids, max_tokens, int(stride_frac * max_tokens))  # (c)
    starts, ends = enc.word_spans()  # (d) as predict_probs builds DocProbs
    doc = DocProbs(enc, starts, ends, random_probs(np.random.default_rng(seed), enc.n_words))
    ents = decode(doc, clean, LABELS, repair, keep)
    check_entities(ents, text, clean)
    if keep is not None:
        assert {e["label"] for e in ents} <= set(keep)


@settings(max_examples=150, **SETTINGS)
@given(lengths=st.lists(st.integers(1, 30), max_size=80), max_tokens=st.integers(2, 64),
       stride_frac=st.floats(0, 0.99))
def test_windows_on_synthetic_words(lengths, max_tokens, stride_frac):
    word_ids = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    check_windows(word_ids, max_tokens, int(stride_frac * max_tokens))


@pytest.mark.parametrize("text", [
    "Reuters \ud83d said", "\udfff", "\ud83d\ude00", "John Smith\ud800",
    "Zoe\u0301 \u302e北\u302e -\U0001d165 .\u1ac9said नमस्ते",
    "Reuters\x00said \ufffe\uffff \u200f\u202eabc\u202c \r\r\n\u2028\u2029\x85",
    "a" + "\u0301" * 5000 + " " + "b" * 3000,
])
def test_known_hostile_inputs(tok, text):
    clean, warning = sanitize(text)
    check_sanitized(text, clean, warning)
    enc = encode(clean, tok)
    check_encoded(enc, clean)
    starts, ends = enc.word_spans()
    probs = np.zeros((enc.n_words, len(LABELS)), dtype=np.float32)
    probs[:, LABELS.index("B-ORG")] = 1.0  # every word its own entity
    ents = decode(DocProbs(enc, starts, ends, probs), clean, LABELS)
    assert len(ents) == enc.n_words
    check_entities(ents, text, clean)


def test_marks_stay_with_their_word_and_never_overlap_the_next(tok):
    text = "x नमस्ते y -\u302e z"
    enc = encode(text, tok)
    ws, we = enc.word_spans()
    words = [text[s:e] for s, e in zip(ws, we)]
    assert "नमस्ते" in words  # the final vowel sign (Mn, combining class 0) is not lost
    assert words[-3:] == ["-", "\u302e", "z"]  # U+302E is kept by the tokenizer: its own word


def test_blank_lines_of_every_convention_split_a_span():
    for sep in ["\n\n", "\r\n\r\n", "\r\r", "\x85\x85", "\u2029", "\n \n"]:
        text = f"Bank{sep}York"
        doc = DocProbs(None, np.array([0, 4 + len(sep)]), np.array([4, 8 + len(sep)]),
                       np.eye(len(LABELS), dtype=np.float32)[[LABELS.index("B-ORG"), LABELS.index("I-ORG")]])
        assert [e["text"] for e in decode(doc, text, LABELS)] == ["Bank", "York"], repr(sep)
    for sep in ["\n", "\r\n", "\r", "\u2028", " "]:  # one line break: a hard-wrapped name
        text = f"Bank{sep}York"
        doc = DocProbs(None, np.array([0, 4 + len(sep)]), np.array([4, 8 + len(sep)]),
                       np.eye(len(LABELS), dtype=np.float32)[[LABELS.index("B-ORG"), LABELS.index("I-ORG")]])
        assert [e["text"] for e in decode(doc, text, LABELS)] == [text], repr(sep)


# --- (e) end to end through the tiny random model ------------------------------------------------

@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from extract.model.load import load

    return load(make_tiny_model(tmp_path_factory.mktemp("tiny_props") / "model"), device="cpu", threads=1)


@settings(max_examples=25, **SETTINGS)
@given(docs=st.lists(short_texts, min_size=1, max_size=4), max_length=st.integers(4, 24),
       stride=st.integers(0, 24), batch_size=st.integers(1, 8))
def test_predict_probs_end_to_end_offsets_slice_the_text(loaded, docs, max_length, stride, batch_size):
    cleaned = [sanitize(t)[0] for t in docs]
    results = predict_probs(loaded, cleaned, batch_size=batch_size, max_length=max_length, stride=stride)
    assert len(results) == len(docs)
    for original, clean, doc in zip(docs, cleaned, results):
        n = doc.enc.n_words
        assert doc.probs.shape == (n, len(loaded.labels))
        assert len(doc.word_starts) == len(doc.word_ends) == n
        if n:
            assert np.isfinite(doc.probs).all()
            np.testing.assert_allclose(doc.probs.sum(axis=1), 1.0, rtol=1e-4)
        ents = decode(doc, clean, loaded.labels, loaded.settings["repair"])
        check_entities(ents, original, clean)
