import numpy as np
import pytest
from tests.tiny import tiny_tokenizer

from extract.text.windows import best_window_per_piece, encode, windows


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_offsets_slice_original_text(tok):
    text = "Zoë met 😀 Café\u0301 in 北京.\r\nNew York said"
    enc = encode(text, tok)
    starts, ends = enc.word_spans()
    words = [text[s:e] for s, e in zip(starts, ends)]
    assert "Café\u0301" in words  # the combining mark stays with its word
    assert "😀" in words and "北" in words and "京" in words
    assert "\r" not in "".join(words) and "\n" not in "".join(words)
    assert len(enc.ids) == len(enc.casing) == len(enc.word_ids)
    assert enc.n_words == len(words)


def test_empty_text(tok):
    enc = encode("", tok)
    assert len(enc.ids) == 0 and enc.n_words == 0
    assert windows(enc.word_ids, 10, 2) == []


def test_windows_cover_everything_on_word_boundaries():
    word_ids = np.repeat(np.arange(40), 3)  # 40 words of 3 pieces
    wins = windows(word_ids, 16, 4)
    covered = np.zeros(len(word_ids), bool)
    for s, e in wins:
        assert e - s <= 16
        assert s == 0 or word_ids[s] != word_ids[s - 1]  # starts on a word
        assert e == len(word_ids) or word_ids[e] != word_ids[e - 1]  # ends on a word
        covered[s:e] = True
    assert covered.all()
    assert all(b[0] < a[1] for a, b in zip(wins, wins[1:]))  # they overlap


def test_windows_split_an_absurdly_long_word():
    word_ids = np.zeros(50, dtype=np.int64)
    wins = windows(word_ids, 16, 4)
    assert wins[0] == (0, 16) and wins[-1][1] == 50


def test_best_window_prefers_the_centre():
    wins = [(0, 10), (6, 16)]
    best = best_window_per_piece(16, wins)
    # piece 7: margin 2 in window 0 (to cut edge 9), margin 1 in window 1 (from cut edge 6)
    assert best[7] == 0
    assert best[9] == 1  # at window 0's cut edge
    assert best[15] == 1 and best[0] == 0
