"""A shard in three stages: prepare (read, tokenise; CPU) -> infer (the model; an actor, GPU or
CPU) -> finish (decode, write two Parquet parts; CPU).

``Processor`` is the one base: the entity job (extract/entity_processor.py) and teacher labelling
(training/label.py) fill in four hooks. The local runner calls ``process`` (the three stages in a
row, in-process); the Ray runner runs each stage as its own streaming ``map_batches`` step, so both
write the same bytes. Whatever goes wrong with one record (reading, tokenising, predicting,
decoding) becomes that record's `error` row and the rest of the shard completes; a record that
kills the model's worker is handled by extract/attempts.py.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pyarrow as pa

from extract.core import fs, schema
from extract.job import shard_stats
from extract.job.attempts import Attempts
from extract.job.attempts import clear as clear_attempts
from extract.job.duplicates import message as duplicate_message
from extract.core.job_config import InputConfig
from extract.core.types import Record, Shard
from extract.io.readers import read_shard
from extract.text.sanitize import sanitize


def shard_to_json(shard: Shard) -> str:
    return json.dumps(dataclasses.asdict(shard))


def shard_from_json(text: str) -> Shard:
    return Shard(**json.loads(text))


def part_paths(out: str, shard_id: str, data_dir: str = "entities") -> tuple[str, str]:
    return (fs.join(str(out), data_dir, f"part-{shard_id}.parquet"),
            fs.join(str(out), "docs", f"part-{shard_id}.parquet"))


def is_done(out: str, shard_id: str) -> bool:
    return fs.is_file(part_paths(out, shard_id)[1])  # docs part is written last: the completion mark


def write_atomic(table: pa.Table, path: Any) -> None:
    fs.write_parquet_atomic(table, str(path))


def _error(exc: BaseException, stage: str) -> str:
    return f"{stage} failed: {type(exc).__name__}: {str(exc)[:300]}"


@dataclasses.dataclass
class Outcome:
    rows: dict[str, list]  # this record's rows of the data table, column -> values
    n_words: int = 0
    n_tokens: int = 0
    n_entities: int = 0


@dataclasses.dataclass
class Payload:
    """What travels between the stages for one shard (small and mostly numpy arrays)."""

    shard: Shard
    records: list[Record]
    features: dict[int, Any]  # record index -> model input (e.g. wordpiece windows)
    results: dict[int, Any] = dataclasses.field(default_factory=dict)  # record index -> model output
    seconds: float = 0.0


class Processor:
    """Shared shard logic; subclasses say how to prepare, predict and turn predictions into rows."""

    data_dir = "entities"

    def __init__(self, out: str, input_cfg: InputConfig, record_kill_limit: int = 1):
        self.out = str(out)
        self.input_cfg = input_cfg
        self.record_kill_limit = record_kill_limit

    # -- hooks --------------------------------------------------------------------------------
    def features(self, text: str) -> Any:
        """CPU work before the model for one text (default: the text itself)."""
        return text

    def predict(self, features: list[Any]) -> list[Any]:
        raise NotImplementedError

    def outcome(self, rec: Record, features: Any, result: Any) -> Outcome:
        raise NotImplementedError

    def data_table(self, columns: dict[str, list]) -> pa.Table:
        raise NotImplementedError

    # -- the three stages ---------------------------------------------------------------------
    def process(self, shard: Shard) -> dict:
        return self.finish(self.infer(self.prepare(shard)))

    def prepare(self, shard: Shard) -> Payload:
        t0 = time.perf_counter()
        records = list(read_shard(shard, self.input_cfg))
        _mark_duplicates(records)
        features = {}
        for i, rec in enumerate(records):
            if rec.error is None and rec.status is None and rec.text and rec.text.strip():
                try:
                    features[i] = self.features(rec.text)
                except Exception as exc:  # noqa: BLE001 - one record's failure is its own row
                    rec.error, rec.status = _error(exc, "tokenising"), "error"
        return Payload(shard, records, features, seconds=time.perf_counter() - t0)

    def infer(self, payload: Payload) -> Payload:
        t0 = time.perf_counter()
        attempts = Attempts.start(self.out, payload.shard.shard_id)
        if attempts.careful:
            payload.results = self._careful(payload, attempts)
        else:
            payload.results = self._predict_isolated(payload, list(payload.features))
        payload.seconds += time.perf_counter() - t0
        return payload

    def finish(self, payload: Payload) -> dict:
        t0 = time.perf_counter()
        shard, records = payload.shard, payload.records
        columns: dict[str, list] = {}
        docs: dict[str, list] = {f.name: [] for f in schema.DOCS}
        n_words = n_ok = n_rows = 0
        for i, rec in enumerate(records):
            out = None
            if i in payload.results:
                try:
                    out = self.outcome(rec, payload.features[i], payload.results[i])
                except Exception as exc:  # noqa: BLE001 - one record's failure is its own row
                    rec.error, rec.status = _error(exc, "decoding entities"), "error"
            if out is not None:
                n_ok += 1
                n_words += out.n_words
                n_rows += len(next(iter(out.rows.values()), []))
                for k, v in out.rows.items():
                    columns.setdefault(k, []).extend(v)
            _doc_row(docs, rec, out, shard.shard_id, i)
        data_path, doc_path = part_paths(self.out, shard.shard_id, self.data_dir)
        data = self.data_table(columns)
        write_atomic(data, data_path)
        doc_table = pa.table(docs, schema=schema.DOCS)
        # This shard's numbers for run.json and the run report (extract/job/shard_stats.py), so the
        # driver merges shards instead of reading tables; entity numbers only for entity rows.
        summary = shard_stats.of_tables(doc_table, data if self.data_dir == "entities" else None)
        stats = {"shard": shard.shard_id, "docs": len(records), "ok": n_ok, "words": n_words,
                 "entities": n_rows, "seconds": round(payload.seconds + time.perf_counter() - t0, 4),
                 "finished_at": round(time.time(), 3)}
        # Per-shard stats for the run report (throughput over time) and run.json; the docs part stays last.
        fs.write_bytes_atomic(fs.join(self.out, "stats", f"part-{shard.shard_id}.json"),
                              json.dumps({**stats, shard_stats.KEY: summary}).encode())
        write_atomic(doc_table, doc_path)
        clear_attempts(self.out, shard.shard_id)
        return stats

    # -- isolation ----------------------------------------------------------------------------
    def _predict_isolated(self, payload: Payload, todo: list[int]) -> dict[int, Any]:
        """All records in one batched call; if it fails, each alone, so only the culprit errs."""
        records = payload.records
        try:
            return dict(zip(todo, self.predict([payload.features[i] for i in todo])))
        except Exception:  # noqa: BLE001 - find the record(s) that failed, keep the rest
            results = {}
            for i in todo:
                try:
                    results[i] = self.predict([payload.features[i]])[0]
                except Exception as exc:  # noqa: BLE001
                    records[i].error, records[i].status = _error(exc, "prediction"), "error"
            return results

    def _careful(self, payload: Payload, attempts: Attempts) -> dict[int, Any]:
        """One record at a time, noting each before it runs (this shard's worker died before)."""
        results = {}
        for i in list(payload.features):
            rec = payload.records[i]
            kills = attempts.killed_by(i, self.record_kill_limit)
            if kills:
                rec.status = "error"
                rec.error = (f"this record killed its worker process {kills + 1} time(s) (out of memory or a "
                             f"crash) and was given up after {attempts.attempt - 1} attempt(s) of its shard; "
                             "split or shorten it, or lower input.max_chars")
                continue
            attempts.begin(i)
            results.update(self._predict_isolated(payload, [i]))
        attempts.begin(None)
        return results


def _mark_duplicates(records: list[Record]) -> None:
    """The duplicate-id policy within the shard (extract/duplicates.py has it across shards)."""
    first: dict[str, str] = {}
    for rec in records:
        if rec.doc_id is None or (rec.error is not None and rec.status is None):
            continue  # error rows never claim an id
        if rec.doc_id in first:
            rec.status, rec.error, rec.text = "skipped", duplicate_message(first[rec.doc_id]), None
        else:
            first[rec.doc_id] = rec.source


def _doc_row(docs: dict[str, list], rec: Record, out: Outcome | None, shard_id: str, index: int) -> None:
    if rec.status:
        status = rec.status
    elif rec.error:
        status = "error"
    elif out is None:
        status = "empty"
    else:
        status = "ok"
    # A file name with undecodable bytes carries surrogates that Parquet cannot store; a message
    # listing thousands of keys helps nobody: both are made writable here, whatever produced them.
    clean = lambda v, n=2000: v if v is None else sanitize(v[:n])[0]  # noqa: E731
    values = {"doc_id": rec.doc_id, "status": status, "error": clean(rec.error),
              "n_chars": len(rec.text) if rec.text is not None and status != "skipped" else 0,
              "n_words": out.n_words if out else 0, "n_tokens": out.n_tokens if out else 0,
              "n_entities": out.n_entities if out else 0, "source": clean(rec.source), "warning": clean(rec.warning),
              "shard": shard_id, "index": index}
    for k, v in values.items():
        docs[k].append(v)
