"""Text -> wordpieces with character offsets -> overlapping windows, and back to words.

A "word" is what the tokenizer's pre-tokenizer yields (whitespace and punctuation split), so
training targets, inference and decoding all see the same units. Windows hold at most
``max_length - 2`` wordpieces (room for [CLS]/[SEP]), start on a word boundary where possible, and
overlap by ``stride`` wordpieces; each word takes its prediction from the window where it sits
farthest from a cut edge.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from extract.text.casing import casing_ids


@dataclass
class Encoded:
    """One document's wordpieces. Arrays are aligned: one row per wordpiece."""

    ids: np.ndarray  # int64 wordpiece ids
    starts: np.ndarray  # int64 char offsets, start inclusive
    ends: np.ndarray  # int64 char offsets, end exclusive
    word_ids: np.ndarray  # int64 word index per wordpiece
    casing: np.ndarray  # int64 casing id per wordpiece

    @property
    def n_words(self) -> int:
        return int(self.word_ids[-1]) + 1 if len(self.word_ids) else 0

    def word_first_piece(self) -> np.ndarray:
        """Index of each word's first wordpiece."""
        keep = np.ones(len(self.word_ids), dtype=bool)
        keep[1:] = self.word_ids[1:] != self.word_ids[:-1]
        return np.flatnonzero(keep)

    def word_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Character (start, end) of every word."""
        first = self.word_first_piece()
        last = np.append(first[1:] - 1, len(self.word_ids) - 1) if len(first) else first
        return self.starts[first], self.ends[last]


def _extend_over_marks(text: str, end: int, limit: int) -> int:
    # The normaliser strips nonspacing marks, and its offsets stop before one ("cafe\u0301" ->
    # "cafe", "नमस्ते" -> "नमस्त"); extend so an entity never loses its last mark. Only up to
    # ``limit``, the next wordpiece's start: a mark the tokenizer KEPT (its Unicode tables are
    # older than Python's, and it keeps spacing marks such as U+302E) is that piece's own text,
    # and running over it made neighbouring words overlap.
    while end < limit and unicodedata.category(text[end])[0] == "M":
        end += 1
    return end


def encode(text: str, tokenizer) -> Encoded:
    """Tokenize a whole document (no special tokens, no truncation)."""
    if isinstance(tokenizer, Tokenizer):  # tokenizer.json alone (extract/model/loaded.py, the CPU stages)
        one = tokenizer.encode(text, add_special_tokens=False)
        ids, raw, raw_words = one.ids, one.offsets, one.word_ids
    else:  # transformers' fast tokenizer
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
        ids, raw, raw_words = enc["input_ids"], enc["offset_mapping"], enc.word_ids()
    limits = [s for s, _ in raw[1:]] + [len(text)]
    offsets = [(s, _extend_over_marks(text, e, lim)) for (s, e), lim in zip(raw, limits)]
    # Renumber words densely from 0 (the tokenizer already does; this guards other backends).
    word_ids, prev, n = [], None, -1
    for w in raw_words:
        if w != prev:
            n += 1
            prev = w
        word_ids.append(n)
    as_array = lambda xs: np.asarray(xs, dtype=np.int64).reshape(-1)  # noqa: E731
    return Encoded(
        ids=as_array(ids),
        starts=as_array([s for s, _ in offsets]),
        ends=as_array([e for _, e in offsets]),
        word_ids=as_array(word_ids),
        casing=as_array(casing_ids(text, offsets)),
    )


def windows(word_ids: np.ndarray, max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) wordpiece ranges covering the document, cut on word boundaries when possible."""
    n = len(word_ids)
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2, found {max_tokens}")
    if not 0 <= stride < max_tokens:
        raise ValueError(f"stride must be in [0, {max_tokens}), found {stride}")
    is_word_start = np.ones(n + 1, dtype=bool)
    is_word_start[1:n] = word_ids[1:] != word_ids[:-1]
    out: list[tuple[int, int]] = []
    start = 0
    while start < n:
        end = min(start + max_tokens, n)
        if end < n:
            cut = end
            while cut > start + max_tokens // 2 and not is_word_start[cut]:
                cut -= 1  # do not split a word unless it is absurdly long
            end = cut if is_word_start[cut] else end
        out.append((start, end))
        if end >= n:
            break
        nxt = max(end - stride, start + 1)
        while nxt > start + 1 and not is_word_start[nxt]:
            nxt -= 1
        start = nxt
    return out


def best_window_per_piece(n: int, wins: list[tuple[int, int]]) -> np.ndarray:
    """For each wordpiece, the window in which it is farthest from a cut edge.

    A document's own start and end are not cut edges, so they never count against a window.
    Ties go to the earlier window, so the choice is deterministic.
    """
    best = np.full(n, -1, dtype=np.int64)
    margin = np.full(n, -1.0)
    for k, (s, e) in enumerate(wins):
        pos = np.arange(s, e)
        left = pos - s if s > 0 else np.full(len(pos), np.inf)
        right = e - 1 - pos if e < n else np.full(len(pos), np.inf)
        m = np.minimum(left, right).astype(float)
        better = m > margin[s:e]
        best[s:e][better] = k
        margin[s:e][better] = m[better]
    return best
