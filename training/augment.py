"""Case augmentation: a seeded share of training windows shown lowercased, UPPERCASED or Title-Cased.

Users' text is not all newswire: chat and transcripts come in lower case, headlines and tickers in
capitals. The backbone is uncased, so what the model knows of case comes only through the casing
ids; a model that only ever saw newswire casing learns "Title = name" and collapses on lowercase
text (dev lowercased 67.6 before). Here the text is re-cased character by character (length kept, so
every offset and label stays valid) and encoded again by ``extract.text.windows.encode``: the
casing ids follow the altered text through the one ``casing_ids`` that inference uses too.

The choice is a function of (seed, text, window index), not of the order windows are made in, so
the same config gives the same windows whether silver is built in one process or by ``datasets``
in batches, and a cached silver set stays valid.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from extract.text.windows import Encoded, encode

MODES = ("lower", "upper", "title")


def _one(c: str, up: bool) -> str:
    # Length-preserving: 'ß'.upper() is 'SS' and 'İ'.lower() is two code points; such characters
    # stay as they are, so character offsets into the original text stay right.
    m = c.upper() if up else c.lower()
    return m if len(m) == 1 else c


def recase(text: str, mode: str) -> str:
    """``text`` lowercased, uppercased or title-cased (a letter after a non-letter is upper), same length."""
    if mode == "lower":
        return "".join(_one(c, False) for c in text)
    if mode == "upper":
        return "".join(_one(c, True) for c in text)
    if mode == "title":
        out, prev_alpha = [], False
        for c in text:
            out.append(_one(c, not prev_alpha))
            prev_alpha = c.isalpha() or c == "'"  # "o'neill" -> "O'neill", not "O'Neill"
        return "".join(out)
    raise ValueError(f"case mode: expected one of {MODES}, found {mode!r}.")


@dataclass(frozen=True)
class CaseAugment:
    share: float = 0.0  # of windows, each re-cased by one of ``modes`` (uniform)
    modes: tuple[str, ...] = MODES
    seed: int = 13

    def modes_for(self, text: str, n: int) -> list[Optional[str]]:
        if self.share <= 0 or n == 0:
            return [None] * n
        rng = np.random.default_rng([self.seed, zlib.crc32(text.encode("utf-8", "surrogatepass"))])
        pick, kind = rng.random(n) < self.share, rng.integers(0, len(self.modes), n)
        return [self.modes[k] if p else None for p, k in zip(pick, kind)]


def variants(text: str, enc: Encoded, tokenizer) -> Callable[[Optional[str]], Encoded]:
    """``get(mode)``: the encoding of ``text`` re-cased by ``mode`` (cached), or ``enc`` itself for
    ``None``. Both backbones here are uncased, so the wordpieces are the same and only the casing
    ids change; a cased tokenizer that splits the re-cased text differently keeps the original
    (its window ranges and labels would no longer line up)."""
    cache: dict[str, Encoded] = {}

    def get(mode: Optional[str]) -> Encoded:
        if mode is None:
            return enc
        if mode not in cache:
            alt = encode(recase(text, mode), tokenizer)
            same = (len(alt.ids) == len(enc.ids) and np.array_equal(alt.word_ids, enc.word_ids)
                    and np.array_equal(alt.starts, enc.starts))
            cache[mode] = alt if same else enc
        return cache[mode]

    return get
