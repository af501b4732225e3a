"""Silver data on disk: one Parquet row per document with its text, word offsets and the
teacher's label distribution per word (fp16, flattened), label names in the schema metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

SCHEMA = pa.schema([
    ("doc_id", pa.string()),
    ("text", pa.string()),
    ("word_start", pa.list_(pa.int32())),  # character offsets into text: text[start:end] is the word
    ("word_end", pa.list_(pa.int32())),
    ("probs", pa.list_(pa.float16())),  # n_words * n_labels, row-major
])


def silver_table(doc_ids, texts, labelled, labels: Sequence[str], teacher: dict) -> pa.Table:
    cols = {"doc_id": list(doc_ids), "text": list(texts),
            "word_start": [s.astype(np.int32) for s, _, _ in labelled],
            "word_end": [e.astype(np.int32) for _, e, _ in labelled],
            "probs": [p.astype(np.float16).reshape(-1) for _, _, p in labelled]}
    meta = {b"labels": json.dumps(list(labels)).encode(), b"teacher": json.dumps(teacher).encode()}
    return pa.table(cols, schema=SCHEMA.with_metadata(meta))


def silver_files(paths: Sequence[str]) -> list[Path]:
    """The silver Parquet parts: files as given, folders' silver/part-*.parquet (or part-*.parquet)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("silver/part-*.parquet")) or sorted(p.glob("part-*.parquet"))
            out += found
        else:
            out.append(p)
    if not out:
        raise FileNotFoundError(f"data.silver: no Parquet parts under {list(paths)}; run `python -m training label`.")
    return out


def label_order(theirs: Sequence[str], labels: Sequence[str], where) -> list[int]:
    """Columns of the teacher's ``probs`` that give the student's labels, in the student's order."""
    missing = [l for l in labels if l not in theirs]
    if missing:
        raise ValueError(f"{where}: silver labels {list(theirs)} lack {missing} that the student predicts "
                         f"({list(labels)}). Relabel with a teacher that has these types, or drop them from "
                         "data.types.")
    return [list(theirs).index(l) for l in labels]


def student_probs(flat, n_words: int, n_theirs: int, order: Sequence[int]) -> np.ndarray:
    """One document's flattened fp16 teacher probs -> (n_words, n_student_labels) float32, rows renormalised."""
    p = np.asarray(flat, dtype=np.float32).reshape(n_words, n_theirs)[:, order]
    p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-9)
    return p
