"""What the service answered, kept as training data: an output folder laid out like a job's.

    OUT/entities/part-<id>.parquet   the job's ENTITIES schema (extract/core/schema.py)
    OUT/docs/part-<id>.parquet       the job's DOCS schema; written last: a part's completion mark
    OUT/texts/part-<id>.parquet      doc_id + text (serve.log.text: full) or doc_id + text_sha256 (hash)
    OUT/stats/part-<id>.json         the part's numbers (extract/job/shard_stats.py), as a job's shard
    OUT/run.json                     {"config": {"model": ...}, "model": {...}, "serve": {...}}: what the report reads

Every file is written to a temporary name and renamed (extract/core/fs.py), so a reader never sees
half a part. A part holds what was served since the previous one; it is written when the buffered
text reaches serve.log.rotate_mb or its oldest row serve.log.rotate_seconds, and on shutdown.
``python -m extract report OUT``, ``show``, ``review``, ``quality`` and distillation's
``data.silver_jobs`` read such a folder as a job's output (extract/monitor/outputs.py). Part ids sort by time:
``<UTC yyyymmddTHHMMSS>-<writer>-<sequence>``, the writer a random id per replica.

A served text's doc_id is ``<request id>:<position in the request>``; docs.source is
``serve:<request id>#<position>``. n_words counts whitespace-separated words and n_tokens is
null: the service's Extractor does not report the model's own counts. With serve.log.text: hash
no text is stored, and the entity rows' text column holds ``sha256:<hex>`` of the entity's text.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import pyarrow as pa

from extract.core import fs, schema

TEXTS_FULL = pa.schema([("doc_id", pa.string()), ("text", pa.string())])
TEXTS_HASH = pa.schema([("doc_id", pa.string()), ("text_sha256", pa.string())])


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ServeLog:
    """Buffers served rows and writes them as parts. Thread-safe: ``add`` and ``maybe_flush`` may
    run on different threads."""

    def __init__(self, path: str, text: str = "full", rotate_mb: float = 16.0, rotate_seconds: float = 60.0,
                 model_id: str = "", run_info: dict | None = None):
        self.path = os.fspath(path)
        self.hash = text == "hash"
        self.rotate_bytes = int(rotate_mb * 1_000_000)
        self.rotate_seconds = float(rotate_seconds)
        self.model_id = model_id
        self.writer = os.urandom(4).hex()
        self.seq = 0
        self.lock = threading.Lock()
        self._reset()
        fs.makedirs(fs.join(self.path, "docs"))
        if run_info is not None:
            fs.write_bytes_atomic(fs.join(self.path, "run.json"), json.dumps(run_info, indent=2).encode("utf-8"))

    def _reset(self) -> None:
        self.docs: dict[str, list] = {f.name: [] for f in schema.DOCS}
        self.ents: dict[str, list] = {f.name: [] for f in schema.ENTITIES}
        self.texts: list[list] = [[], []]
        self.bytes = 0
        self.first_at: float | None = None
        self.seconds = 0.0

    def add(self, items: list[tuple[str, int, str, str | None]], results: list[list[dict]],
            seconds: float = 0.0) -> None:
        """One model batch: (request id, position in the request, text as the model saw it (sanitised),
        sanitiser warning) per text, its entities, and the batch's seconds."""
        with self.lock:
            if self.first_at is None:
                self.first_at = time.monotonic()
            self.seconds += seconds
            for (request_id, i, text, warning), found in zip(items, results):
                doc_id = f"{request_id}:{i}"
                values = {"doc_id": doc_id, "status": "ok" if text.strip() else "empty", "error": None,
                          "n_chars": len(text), "n_words": len(text.split()), "n_tokens": None,
                          "n_entities": len(found), "source": f"serve:{request_id}#{i}", "warning": warning,
                          "shard": None, "index": len(self.docs["doc_id"])}
                for k, v in values.items():
                    self.docs[k].append(v)
                for e in found:
                    row = {"doc_id": doc_id, "label": e["label"],
                           "text": "sha256:" + sha256(e["text"]) if self.hash else e["text"],
                           "start": e["start"], "end": e["end"], "score": e["score"], "model": self.model_id}
                    for k, v in row.items():
                        self.ents[k].append(v)
                self.texts[0].append(doc_id)
                self.texts[1].append(sha256(text) if self.hash else text)
                self.bytes += (64 if self.hash else len(text)) + 96 + 64 * len(found)

    def due(self) -> bool:
        with self.lock:
            return self.first_at is not None and (
                self.bytes >= self.rotate_bytes or time.monotonic() - self.first_at >= self.rotate_seconds)

    def maybe_flush(self) -> str | None:
        return self.flush() if self.due() else None

    def flush(self) -> str | None:
        """Write what is buffered as one part (nothing when empty); the part's id."""
        from extract.job import shard_stats

        with self.lock:
            if not self.docs["doc_id"]:
                return None
            docs, ents, texts, seconds = self.docs, self.ents, self.texts, self.seconds
            self._reset()
            self.seq += 1
            part = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{self.writer}-{self.seq:06d}"
        docs["shard"] = [part] * len(docs["doc_id"])
        doc_table = pa.table(docs, schema=schema.DOCS)
        ent_table = pa.table(ents, schema=schema.ENTITIES)
        text_table = pa.table(texts, schema=TEXTS_HASH if self.hash else TEXTS_FULL)
        name = f"part-{part}"
        fs.write_parquet_atomic(ent_table, fs.join(self.path, "entities", f"{name}.parquet"))
        fs.write_parquet_atomic(text_table, fs.join(self.path, "texts", f"{name}.parquet"))
        stats = {"shard": part, "docs": doc_table.num_rows,
                 "ok": sum(1 for s in docs["status"] if s == "ok"), "words": sum(docs["n_words"]),
                 "entities": ent_table.num_rows, "seconds": round(seconds, 4), "finished_at": round(time.time(), 3),
                 shard_stats.KEY: shard_stats.of_tables(doc_table, ent_table)}
        fs.write_bytes_atomic(fs.join(self.path, "stats", f"{name}.json"), json.dumps(stats).encode("utf-8"))
        fs.write_parquet_atomic(doc_table, fs.join(self.path, "docs", f"{name}.parquet"))  # last: the mark
        return part
