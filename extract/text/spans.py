"""Window logits -> per-word label probabilities -> entity spans with character offsets and scores.

Numpy only: the span maths after the forward passes (extract/model/predict.py runs those), shared
by the batch job, evaluation, calibration (training/calibrate.py fits ``mapped_score``'s map on
exactly what ``decode`` computes) and the Python API.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from extract.text import labels as bio
from extract.text.windows import Encoded, best_window_per_piece


@dataclass
class DocProbs:
    enc: Encoded
    word_starts: np.ndarray  # char start per word
    word_ends: np.ndarray  # char end per word
    probs: np.ndarray  # (n_words, n_labels) float32, rows sum to 1


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


class Windows(Protocol):
    """One document cut into windows (extract/model/predict.py's ``Windowed``)."""

    enc: Encoded
    wins: list[tuple[int, int]]


def combine(doc: Windows, logits: Sequence[np.ndarray], n_labels: int, temperature: float) -> DocProbs:
    """Each wordpiece from the window where it sits farthest from a cut; softmax per word."""
    enc, wins = doc.enc, doc.wins
    piece_logits = np.zeros((len(enc.ids), n_labels), dtype=np.float32)
    best = best_window_per_piece(len(enc.ids), wins)
    for k, (s, e) in enumerate(wins):
        take = np.flatnonzero(best[s:e] == k)
        piece_logits[s + take] = logits[k][take]
    first = enc.word_first_piece()
    probs = _softmax(piece_logits[first] / temperature).astype(np.float32)
    starts, ends = enc.word_spans()
    return DocProbs(enc, starts, ends, probs)


# Products at or beyond float32's resolution next to 0 or 1 would make logit() infinite.
SCORE_EPS = 1e-7


def mapped_score(product, n_words, score_map: Sequence[float] | None):
    """The entity score from the product of a span's chosen tag probabilities and its length in words.

    ``score_map`` None: the product itself. ``score_map`` [a, b, c] (config.json
    ``ner_settings.score_map``, fitted on dev by training.calibrate):
    sigmoid(a + b * logit(product) + c * ln(n_words)). The length term is there because the product
    under-rates long names (a 4+-word CoNLL dev name scored 0.80 on average and was right 94% of
    the time) while single words were over-rated (0.94 for 90%). Works on floats and arrays alike,
    so calibration fits exactly what decode computes.
    """
    if score_map is None:
        return product
    a, b, c = (float(x) for x in score_map)
    p = np.clip(product, SCORE_EPS, 1 - SCORE_EPS)
    z = np.clip(a + b * np.log(p / (1 - p)) + c * np.log(n_words), -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-z))


def decode(doc: DocProbs, text: str, labels: Sequence[str], repair: bio.Repair = "drop",
           keep: Sequence[str] | None = None, score_map: Sequence[float] | None = None,
           consistency: bool = False) -> list[dict]:
    """Entity dicts (label, text, start, end, score).

    The base score is the product of the span's chosen tag probabilities: the model's probability
    that every word of the span is tagged as predicted. On CoNLL dev it was the best calibrated of
    mean / min / product overall (entity ECE 0.017 against 0.030 for the mean, before any
    temperature), but not by length: it under-rates long names and over-rates single words.
    ``score_map`` (``ner_settings.score_map``, see ``mapped_score``) corrects that; None (models
    released without it) gives the plain product, exactly as before. ``consistency``
    (``ner_settings.consistency``): one type per surface string in the document
    (extract/text/consistency.py).
    """
    if len(doc.probs) == 0:
        return []
    best = doc.probs.argmax(axis=1)
    tags = [labels[i] for i in best]
    chosen = doc.probs[np.arange(len(best)), best]
    out = []
    for span in bio.spans(tags, repair):
        if keep is not None and span.label not in keep:
            continue
        for first, last in _split_at_paragraphs(text, doc, span.first, span.last):
            start, end = int(doc.word_starts[first]), int(doc.word_ends[last])
            product = float(np.prod(chosen[first:last + 1], dtype=np.float64))
            out.append({"label": span.label, "text": text[start:end], "start": start, "end": end,
                        "score": float(mapped_score(product, last - first + 1, score_map))})
    if consistency:
        from extract.text.consistency import harmonise

        out = harmonise(out)
    return out


# What str.splitlines breaks on, CRLF counted once: old-Mac "\r\r" and NEL "\x85\x85" are blank
# lines too, and U+2029 PARAGRAPH SEPARATOR is a paragraph break by itself.
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _split_at_paragraphs(text: str, doc: DocProbs, first: int, last: int) -> list[tuple[int, int]]:
    """A name never runs across a blank line (title and body, two paragraphs); a single newline
    stays inside, since hard-wrapped text (Reuters) breaks names across lines."""
    parts, begin = [], first
    for w in range(first, last):
        gap = text[doc.word_ends[w]:doc.word_starts[w + 1]]
        if "\u2029" in gap or len(_LINE_BREAK.findall(gap)) >= 2:
            parts.append((begin, w))
            begin = w + 1
    parts.append((begin, last))
    return parts
