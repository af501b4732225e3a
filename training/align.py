"""Gold token tags -> word targets -> wordpiece targets, and predicted spans -> token tags.

Words are the tokenizer's pre-tokenizer words, which never cross a gold token (tokens are joined
with spaces). A gold token that splits into several words ("U.S." -> U . S .) gives its first word
the token's tag and the rest I- of the same type, so the model learns to label every word it will
see at inference.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from extract.text import labels as bio

IGNORE = -100


def word_tags(word_starts: np.ndarray, tok_starts: Sequence[int], tok_tags: Sequence[str]) -> list[str]:
    tok_starts_arr = np.asarray(tok_starts)
    owner = np.searchsorted(tok_starts_arr, word_starts, side="right") - 1
    out = []
    for ws, t in zip(word_starts, owner):
        tag = tok_tags[t]
        if ws != tok_starts_arr[t] and tag != "O":
            tag = "I-" + tag[2:]
        out.append(tag)
    return out


def piece_targets(word_ids: np.ndarray, first_pieces: np.ndarray, word_label_ids: Sequence[int]) -> np.ndarray:
    """Label id on each word's first wordpiece, IGNORE elsewhere."""
    targets = np.full(len(word_ids), IGNORE, dtype=np.int64)
    targets[first_pieces] = np.asarray(word_label_ids, dtype=np.int64)[word_ids[first_pieces]]
    return targets


def spans_to_token_tags(entities: Sequence[dict], tok_starts: Sequence[int], tok_ends: Sequence[int]) -> list[str]:
    """Predicted char spans -> one IOB2 tag per gold token (first overlapping span wins)."""
    tags = ["O"] * len(tok_starts)
    starts = np.asarray(tok_starts)
    ends = np.asarray(tok_ends)
    for ent in sorted(entities, key=lambda e: e["start"]):
        hit = np.flatnonzero((starts < ent["end"]) & (ends > ent["start"]))
        hit = [i for i in hit if tags[i] == "O"]
        for k, i in enumerate(hit):
            tags[i] = ("B-" if k == 0 else "I-") + ent["label"]
    return bio.repair(tags, "begin")
