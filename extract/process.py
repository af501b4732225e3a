"""One shard end to end: read records, predict, turn predictions into rows, write two Parquet parts.

``ShardProcessor`` (entities) and the teacher's ``SilverProcessor`` (training/label.py) share
``Processor``: the local runner calls ``process`` in-process, the Ray runner uses the class as a
callable-class UDF, so both write the same bytes. Whatever goes wrong with one record (decoding,
tokenising, predicting, decoding entities) becomes that record's `error` row and the rest of the
shard completes; a record that kills the worker is handled by extract/attempts.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from extract import schema
from extract.attempts import Attempts
from extract.duplicates import message as duplicate_message
from extract.job_config import ExtractConfig, InputConfig
from extract.readers import Record, Shard, read_shard
from extract.sanitize import sanitize

# Tests set this to a marker string: a record holding it kills its worker (a stand-in for a record
# that runs a worker out of memory), so the fault handling can be exercised for real.
KILL_ON = "NERBATCH_TEST_KILL_ON"


def shard_to_json(shard: Shard) -> str:
    return json.dumps(dataclasses.asdict(shard))


def shard_from_json(text: str) -> Shard:
    return Shard(**json.loads(text))


def part_paths(out: Path, shard_id: str, data_dir: str = "entities") -> tuple[Path, Path]:
    return out / data_dir / f"part-{shard_id}.parquet", out / "docs" / f"part-{shard_id}.parquet"


def is_done(out: Path, shard_id: str) -> bool:
    return part_paths(out, shard_id)[1].is_file()  # docs part is written last: the completion mark


def write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def process_batch(processor, batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Ray's callable-class protocol for any processor with ``process(shard) -> dict``."""
    rows = [processor.process(shard_from_json(str(s))) for s in batch["shard"]]
    return {k: [r[k] for r in rows] for k in rows[0]}


def _error(exc: BaseException, stage: str) -> str:
    return f"{stage} failed: {type(exc).__name__}: {str(exc)[:300]}"


@dataclasses.dataclass
class Outcome:
    rows: dict[str, list]  # this record's rows of the data table, column -> values
    n_words: int = 0
    n_tokens: int = 0
    n_entities: int = 0


class Processor:
    """Shared shard logic; subclasses say how to predict and how a prediction becomes rows."""

    data_dir = "entities"
    input_cfg: InputConfig
    record_kill_limit: int = 1

    def __init__(self, out: str):
        self.out = Path(out)

    __call__ = process_batch

    # -- what a subclass provides -------------------------------------------------------------
    def predict(self, texts: list[str]) -> list[Any]:
        raise NotImplementedError

    def outcome(self, rec: Record, result: Any) -> Outcome:
        raise NotImplementedError

    def data_table(self, columns: dict[str, list]) -> pa.Table:
        raise NotImplementedError

    # -- the shard ----------------------------------------------------------------------------
    def process(self, shard: Shard) -> dict:
        t0 = time.perf_counter()
        attempts = Attempts.start(self.out, shard.shard_id)
        records = list(read_shard(shard, self.input_cfg))
        _mark_duplicates(records)
        todo = [i for i, r in enumerate(records) if r.error is None and r.status is None and r.text and r.text.strip()]
        results = self._careful(records, todo, attempts) if attempts.careful else self._predict_isolated(records, todo)
        columns: dict[str, list] = {}
        docs: dict[str, list] = {f.name: [] for f in schema.DOCS}
        n_words = n_ok = 0
        for i, rec in enumerate(records):
            out = None
            if i in results:
                try:
                    out = self.outcome(rec, results[i])
                except Exception as exc:  # noqa: BLE001 - one record's failure is its own row
                    rec.error, rec.status = _error(exc, "decoding entities"), "error"
            if out is not None:
                n_ok += 1
                n_words += out.n_words
                for k, v in out.rows.items():
                    columns.setdefault(k, []).extend(v)
            _doc_row(docs, rec, out, shard.shard_id, i)
        data_path, doc_path = part_paths(self.out, shard.shard_id, self.data_dir)
        write_atomic(self.data_table(columns), data_path)
        write_atomic(pa.table(docs, schema=schema.DOCS), doc_path)
        attempts.finish()
        return {"shard": shard.shard_id, "docs": len(records), "ok": n_ok, "words": n_words,
                "entities": len(next(iter(columns.values()), [])), "seconds": time.perf_counter() - t0}

    def _predict_isolated(self, records: list[Record], todo: list[int]) -> dict[int, Any]:
        """All records in one batched call; if it fails, each alone, so only the culprit errs."""
        texts = [records[i].text for i in todo]
        _kill_if_marked(texts)
        try:
            return dict(zip(todo, self.predict(texts)))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - find the record(s) that failed, keep the rest
            results = {}
            for i in todo:
                try:
                    results[i] = self.predict([records[i].text])[0]  # type: ignore[list-item]
                except Exception as exc:  # noqa: BLE001
                    records[i].error, records[i].status = _error(exc, "prediction"), "error"
            return results

    def _careful(self, records: list[Record], todo: list[int], attempts: Attempts) -> dict[int, Any]:
        """One record at a time, noting each before it runs (this shard's worker died before)."""
        results = {}
        for i in todo:
            kills = attempts.killed_by(i, self.record_kill_limit)
            if kills:
                records[i].status = "error"
                records[i].error = (f"this record killed its worker process {kills + 1} time(s) (out of memory or a "
                                    f"crash) and was given up after {attempts.attempt - 1} attempt(s) of its shard; "
                                    "split or shorten it, or lower input.max_chars")
                continue
            attempts.begin(i)
            _kill_if_marked([records[i].text])  # type: ignore[list-item]
            results.update(self._predict_isolated(records, [i]))
        attempts.begin(None)
        return results


def _kill_if_marked(texts: list[str]) -> None:
    marker = os.environ.get(KILL_ON)
    if marker and any(marker in t for t in texts):
        os._exit(137)


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


class ShardProcessor(Processor):
    """Entities: loads the model once; writes entities/ and docs/ parts per shard."""

    def __init__(self, cfg: ExtractConfig, out: str, model_id: str = "", threads: int = 0):
        from extract.model import load

        super().__init__(out)
        self.cfg = cfg
        self.input_cfg = cfg.input
        self.record_kill_limit = cfg.ray.record_kill_limit
        self.loaded = load(cfg.model.path, cfg.inference.device, cfg.inference.dtype,
                           threads or cfg.inference.threads)
        self.model_id = model_id or self.loaded.model_id
        self.keep = set(cfg.model.labels)
        self.repair = self.loaded.settings.get("repair", "drop")

    def predict(self, texts: list[str]) -> list[Any]:
        from extract.predict import predict_probs

        m = self.cfg.model
        return predict_probs(self.loaded, texts, self.cfg.inference.batch_size, m.max_length or None,
                             None if m.stride < 0 else m.stride)

    def outcome(self, rec: Record, result: Any) -> Outcome:
        from extract.predict import decode

        found = [e for e in decode(result, rec.text, self.loaded.labels, self.repair, self.keep)  # type: ignore[arg-type]
                 if e["score"] >= self.cfg.model.min_score]
        rows = {k: [e[k] for e in found] for k in ("label", "text", "start", "end", "score")}
        rows["doc_id"] = [rec.doc_id] * len(found)
        rows["model"] = [self.model_id] * len(found)
        return Outcome(rows, len(result.probs), len(result.enc.ids), len(found))

    def data_table(self, columns: dict[str, list]) -> pa.Table:
        return pa.table({f.name: columns.get(f.name, []) for f in schema.ENTITIES}, schema=schema.ENTITIES)
