"""The output tables' schemas, declared once (never inferred from data)."""
from __future__ import annotations

import pyarrow as pa

ENTITIES = pa.schema([
    ("doc_id", pa.string()),
    ("label", pa.string()),
    ("text", pa.string()),  # == document text[start:end], always
    ("start", pa.int64()),  # character offset, inclusive
    ("end", pa.int64()),  # character offset, exclusive
    ("score", pa.float32()),  # calibrated on dev: P(this entity is exactly right) (ner_settings.score_map)
    ("model", pa.string()),
])

DOCS = pa.schema([
    ("doc_id", pa.string()),  # null only when the record had no readable id
    ("status", pa.string()),  # ok | empty | error | skipped
    ("error", pa.string()),  # why, for error and skipped
    ("n_chars", pa.int64()),
    ("n_words", pa.int64()),
    ("n_tokens", pa.int64()),  # wordpieces
    ("n_entities", pa.int64()),
    ("source", pa.string()),  # file:line, file#row or the file path: where the record came from
    ("warning", pa.string()),  # e.g. decoded with the fallback encoding
    ("shard", pa.string()),
    ("index", pa.int64()),  # the record's position in its shard: (shard, index) orders all records
])

STATUSES = ("ok", "empty", "error", "skipped")
