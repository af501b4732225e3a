"""A cheap pre-filter before the model: windows that cannot hold a name are not run.

Rule ``capitalised-or-digit``: a window runs only if one of its wordpieces is Title-case, UPPER,
mixed-case or holds a digit (the casing ids the model already gets). A skipped window's wordpieces
are predicted ``O``. On cased news nearly every window has a capital, so it saves little there; on
text written all in lower case (chat, transcripts) it skips everything, names included, and a
case-robust model is never asked.

Rule ``capitalised-or-caseless`` (the default): the same, except in a document that is caseless,
fewer than ``CASELESS`` of whose lettered wordpieces carry a capital: there capitals say nothing,
so every window runs and the model decides. In normally cased text a window without a capital or
a digit is still skipped (a lowercase stretch of a cased document: a table, a log, a quote).
"""
from __future__ import annotations

import numpy as np

from extract.text.casing import DIGIT, LOWER, MIXED, TITLE, UPPER

RULES = ("capitalised-or-caseless", "capitalised-or-digit")
_MAY_NAME = np.array([DIGIT, MIXED, TITLE, UPPER])
_CAPITAL = np.array([MIXED, TITLE, UPPER])
CASELESS = 0.02  # news has ~10-20% capitalised wordpieces; lowercased text 0, chat with a few "I"s ~1%


def keep_windows(casing: np.ndarray, wins: list[tuple[int, int]], rule: str) -> list[bool]:
    """Which windows may hold an entity under ``rule``."""
    if rule not in RULES:
        raise ValueError(f"funnel.rule: expected one of {RULES}, found {rule!r}")
    if rule == "capitalised-or-caseless" and is_caseless(casing):
        return [True] * len(wins)
    return [bool(np.isin(casing[s:e], _MAY_NAME).any()) for s, e in wins]


def is_caseless(casing: np.ndarray) -> bool:
    """A document with (almost) no capitals among its lettered wordpieces: case carries no signal."""
    capital = int(np.isin(casing, _CAPITAL).sum())
    lettered = capital + int((casing == LOWER).sum())
    return lettered > 0 and capital < CASELESS * lettered


def skipped_logits(length: int, n_labels: int, o_index: int) -> np.ndarray:
    """What a skipped window 'predicts': O for every wordpiece, with certainty."""
    out = np.full((length, n_labels), -20.0, dtype=np.float32)
    out[:, o_index] = 20.0
    return out
