"""A cheap pre-filter before the model: windows that cannot hold a name are not run.

Rule ``capitalised-or-digit``: a window runs only if one of its wordpieces is Title-case, UPPER,
mixed-case or holds a digit (the casing ids the model already gets). A skipped window's wordpieces
are predicted ``O``. On cased news nearly every window has a capital, so it saves little there; it
pays on long lowercase stretches (chat, logs), where the model would find little anyway.
"""
from __future__ import annotations

import numpy as np

from extract.text.casing import DIGIT, MIXED, TITLE, UPPER

RULES = ("capitalised-or-digit",)
_MAY_NAME = np.array([DIGIT, MIXED, TITLE, UPPER])


def keep_windows(casing: np.ndarray, wins: list[tuple[int, int]], rule: str) -> list[bool]:
    """Which windows may hold an entity under ``rule``."""
    if rule not in RULES:
        raise ValueError(f"funnel.rule: expected one of {RULES}, found {rule!r}")
    return [bool(np.isin(casing[s:e], _MAY_NAME).any()) for s, e in wins]


def skipped_logits(length: int, n_labels: int, o_index: int) -> np.ndarray:
    """What a skipped window 'predicts': O for every wordpiece, with certainty."""
    out = np.full((length, n_labels), -20.0, dtype=np.float32)
    out[:, o_index] = 20.0
    return out
