"""Casing ids per wordpiece, read from the ORIGINAL text.

The backbone is uncased, so capitalisation (the strongest NER cue) is lost in its vocabulary. We
give it back as a small id per wordpiece, fed through a widened token-type embedding. Training and
inference both call ``casing_ids``: one function, one definition of a shape.
"""
from __future__ import annotations

from typing import Sequence

# id 0 is what BERT gives [CLS]/[SEP]/padding, so "no letters" shares it.
OTHER, LOWER, TITLE, UPPER, DIGIT, MIXED = range(6)
NUM_CASING_IDS = 6
CASING_NAMES = ("other", "lower", "title", "upper", "digit", "mixed")


def shape_of(piece: str) -> int:
    """Shape of one wordpiece's original characters."""
    letters = [c for c in piece if c.isalpha()]
    if any(c.isdigit() for c in piece):
        return DIGIT
    cased = [c for c in letters if c.isupper() or c.islower()]
    if not cased:
        return OTHER  # punctuation, CJK, emoji
    if all(c.islower() for c in cased):
        return LOWER
    if len(cased) > 1 and all(c.isupper() for c in cased):
        return UPPER
    if cased[0].isupper() and all(c.islower() for c in cased[1:]):
        return TITLE
    if cased[0].isupper():
        return TITLE  # McDonald, O'Neill: starts upper
    return MIXED  # eBay, iPhone


def casing_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    return [shape_of(text[s:e]) if e > s else OTHER for s, e in offsets]
