"""Training windows: gold CoNLL documents and silver teacher labels -> arrays the loop batches.

Both go through extract's ``encode`` and ``windows``, so the model trains on exactly the units
and window shapes it will see in the batch job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from extract.text.windows import encode, windows
from training.align import IGNORE, piece_targets, word_tags
from training.augment import CaseAugment, variants
from training.conll import Document, doc_text, units


@dataclass
class Example:
    ids: np.ndarray
    casing: np.ndarray
    labels: np.ndarray  # gold label id per wordpiece, IGNORE where none
    soft: Optional[np.ndarray] = None  # (n_pieces, n_labels) teacher probs; rows valid where soft_mask
    soft_mask: Optional[np.ndarray] = None


def _restrict(tag: str, types: Sequence[str]) -> str:
    return tag if tag == "O" or tag[2:] in types else "O"


def gold_examples(docs: list[Document], tokenizer, label2id: dict[str, int], types: Sequence[str],
                  context: str, max_length: int, stride: int,
                  augment: Optional[CaseAugment] = None) -> list[Example]:
    """``augment``: a seeded share of windows re-cased (labels and offsets unchanged, casing ids
    from the re-cased text)."""
    augment = augment or CaseAugment()
    out: list[Example] = []
    for unit in units(docs, context):
        text, tok_starts, _, tags = doc_text(unit)
        enc = encode(text, tokenizer)
        if not len(enc.ids):
            continue
        starts, _ = enc.word_spans()
        wt = [_restrict(t, types) for t in word_tags(starts, tok_starts, tags)]
        targets = piece_targets(enc.word_ids, enc.word_first_piece(), [label2id[t] for t in wt])
        out += windowed(text, enc, tokenizer, max_length, stride, augment, targets)
    return out


def windowed(text: str, enc, tokenizer, max_length: int, stride: int, augment: CaseAugment,
             labels: np.ndarray, soft: Optional[np.ndarray] = None,
             soft_mask: Optional[np.ndarray] = None) -> list[Example]:
    """One document's training windows, the augmented ones with the re-cased text's ids and casing."""
    wins = windows(enc.word_ids, max_length - 2, stride)
    get = variants(text, enc, tokenizer)
    out = []
    for (s, e), mode in zip(wins, augment.modes_for(text, len(wins))):
        src = get(mode)
        out.append(Example(src.ids[s:e], src.casing[s:e], labels[s:e],
                           None if soft is None else soft[s:e], None if soft_mask is None else soft_mask[s:e]))
    return out


def silver_examples(texts: Sequence[str], word_starts: Sequence[np.ndarray], word_probs: Sequence[np.ndarray],
                    tokenizer, max_length: int, stride: int,
                    augment: Optional[CaseAugment] = None) -> list[Example]:
    """Teacher distributions keyed by word character offsets -> this tokenizer's first wordpieces.

    Words are matched by their start offset, so a student with another tokenizer still aligns;
    a word the student splits differently simply gets no target.
    """
    out: list[Example] = []
    for text, w_starts, probs in zip(texts, word_starts, word_probs):
        enc = encode(text, tokenizer)
        if not len(enc.ids):
            continue
        first = enc.word_first_piece()
        n_labels = probs.shape[1]
        soft = np.zeros((len(enc.ids), n_labels), dtype=np.float32)
        mask = np.zeros(len(enc.ids), dtype=bool)
        where = {int(s): i for i, s in enumerate(w_starts)}
        for piece in first:
            i = where.get(int(enc.starts[piece]))
            if i is not None:
                soft[piece] = probs[i]
                mask[piece] = True
        labels = np.full(len(enc.ids), IGNORE, dtype=np.int64)
        out += windowed(text, enc, tokenizer, max_length, stride, augment or CaseAugment(), labels, soft, mask)
    return out
