"""A shard in three stages: prepare (read, tokenise; CPU) -> infer (the model; an actor, GPU or
CPU) -> finish (decode, write Parquet; CPU), streamed in pieces.

A shard's records flow through the stages in pieces of at most ``inference.piece_chars``
characters of text (at least one record), so a worker holds one piece's tokens, windows and
model outputs, never a whole shard's: its memory is flat in the shard size. A shard of one piece
(the usual case) is written straight to its two parts. A shard of several pieces stages each
finished piece under ``<out>/_pieces/<shard>-<piece_chars>/``; ``assemble`` then streams the pieces,
in order, into the shard's parts (data part first, docs part last: still the completion mark) and
removes them. A rerun skips staged pieces (their boundaries are a function of the input and
``piece_chars``), so a job killed between pieces resumes at the next piece.

``Processor`` is the one base: the entity job (extract/job/entities.py) and teacher labelling
(training/label.py) fill in four hooks. The local runner calls ``process`` (the stages in a row,
in-process); the Ray runner runs each stage as its own streaming ``map_batches`` step with one
piece a row, so both write the same bytes. Whatever goes wrong with one record (reading,
tokenising, predicting, decoding) becomes that record's `error` row and the rest of the shard
completes; a record that kills the model's worker is handled by extract/job/attempts.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Iterator

import pyarrow as pa

from extract.core import fs, schema
from extract.job import shard_stats
from extract.job.attempts import Attempts
from extract.job.attempts import clear as clear_attempts
from extract.job.duplicates import message as duplicate_message
from extract.job.output import PIECES
from extract.core.job_config import InputConfig
from extract.core.types import Record, Shard
from extract.io.readers import read_shard
from extract.text.sanitize import sanitize


def shard_to_json(shard: Shard) -> str:
    return json.dumps(dataclasses.asdict(shard))


def shard_from_json(text: str) -> Shard:
    return Shard(**json.loads(text))


PIECE_CHARS = 200_000  # inference.piece_chars' default: ~60 MB of a worker's tokens, windows and outputs


def part_paths(out: str, shard_id: str, data_dir: str = "entities") -> tuple[str, str]:
    return (fs.join(str(out), data_dir, f"part-{shard_id}.parquet"),
            fs.join(str(out), "docs", f"part-{shard_id}.parquet"))


def piece_paths(out: str, shard_id: str, piece_chars: int, piece: int) -> tuple[str, str, str]:
    """A staged piece's data part, stats and docs part (written in this order: docs marks it done)."""
    base = fs.join(str(out), PIECES, f"{shard_id}-{piece_chars}", f"p{piece:06d}")
    return base + ".data.parquet", base + ".json", base + ".docs.parquet"


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
    records: list[Record]  # this piece's records
    features: dict[int, Any]  # record index in the piece -> model input (e.g. wordpiece windows)
    results: dict[int, Any] = dataclasses.field(default_factory=dict)  # record index -> model output
    seconds: float = 0.0
    piece: int = 0  # the piece's number in its shard
    last: bool = True  # the shard's last piece
    first_index: int = 0  # the shard index of records[0] (docs.index counts records in the shard)
    staged: bool = False  # finished by an earlier run: nothing to compute, its stats are read back


class Processor:
    """Shared shard logic; subclasses say how to prepare, predict and turn predictions into rows."""

    data_dir = "entities"

    def __init__(self, out: str, input_cfg: InputConfig, record_kill_limit: int = 1, piece_chars: int = PIECE_CHARS):
        self.out = str(out)
        self.input_cfg = input_cfg
        self.record_kill_limit = record_kill_limit
        self.piece_chars = piece_chars

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
        """The local runner: every piece through the stages in a row, then the shard's parts."""
        rows = [self.finish(self.infer(p)) for p in self.pieces(shard)]
        return rows[0] if rows[-1]["pieces"] == 1 else assemble(self.out, rows)

    def pieces(self, shard: Shard, whole: bool = False) -> Iterator[Payload]:
        """Prepare: the shard read lazily and cut into pieces of at most ``piece_chars`` characters
        (a longer record is a piece alone; ``whole``: one piece); duplicate ids are settled across
        the pieces."""
        first: dict[str, str] = {}  # doc id -> source: ids only, the one thing that grows with the shard
        budget = float("inf") if whole else self.piece_chars
        staged = set() if whole else staged_pieces(self.out, shard.shard_id, self.piece_chars)
        records, chars, piece, index = [], 0, 0, 0
        t0 = time.perf_counter()
        stream = read_shard(shard, self.input_cfg)
        nxt = next(stream, None)
        while nxt is not None or piece == 0:
            if nxt is not None:
                records.append(nxt)
                chars += len(nxt.text or "")
                nxt = next(stream, None)
            if nxt is None or chars >= budget:
                yield self._piece(Payload(shard, records, {}, piece=piece, last=nxt is None, first_index=index,
                                          staged=piece in staged), first, t0)
                index, piece, records, chars, t0 = index + len(records), piece + 1, [], 0, time.perf_counter()

    def _piece(self, payload: Payload, first: dict[str, str], t0: float) -> Payload:
        _mark_duplicates(payload.records, first)
        if payload.staged:  # done by an earlier run: only its ids mattered (for the duplicate policy)
            payload.records = []
            return payload
        for i, rec in enumerate(payload.records):
            if rec.error is None and rec.status is None and rec.text and rec.text.strip():
                try:
                    payload.features[i] = self.features(rec.text)
                except Exception as exc:  # noqa: BLE001 - one record's failure is its own row
                    rec.error, rec.status = _error(exc, "tokenising"), "error"
        payload.seconds = time.perf_counter() - t0
        return payload

    def prepare(self, shard: Shard) -> Payload:
        """The whole shard as one piece (tests and tools; the runners stream ``pieces``)."""
        return next(self.pieces(shard, whole=True))

    def _attempts_key(self, payload: Payload) -> str:
        return payload.shard.shard_id if payload.piece == 0 and payload.last else \
            f"{payload.shard.shard_id}-{self.piece_chars}-p{payload.piece:06d}"

    def infer(self, payload: Payload) -> Payload:
        if payload.staged:
            return payload
        t0 = time.perf_counter()
        attempts = Attempts.start(self.out, self._attempts_key(payload))
        if attempts.careful:
            payload.results = self._careful(payload, attempts)
        else:
            payload.results = self._predict_isolated(payload, list(payload.features))
        payload.seconds += time.perf_counter() - t0
        return payload

    def finish(self, payload: Payload) -> dict:
        """Decode and write one piece: the shard's parts when it is the only piece, else staged.
        Returns the piece's stats row (``pieces``: the shard's count, known at its last piece)."""
        shard = payload.shard
        if payload.staged:
            stats = json.loads(fs.read_text(piece_paths(self.out, shard.shard_id, self.piece_chars, payload.piece)[1]))
            return {**stats, **self._piece_fields(payload)}
        t0 = time.perf_counter()
        columns: dict[str, list] = {}
        docs: dict[str, list] = {f.name: [] for f in schema.DOCS}
        n_words = n_ok = n_rows = 0
        for i, rec in enumerate(payload.records):
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
            _doc_row(docs, rec, out, shard.shard_id, payload.first_index + i)
        data, doc_table = self.data_table(columns), pa.table(docs, schema=schema.DOCS)
        # This piece's numbers for run.json and the run report (extract/job/shard_stats.py), so the
        # driver merges shards instead of reading tables; entity numbers only for entity rows.
        summary = shard_stats.of_tables(doc_table, data if self.data_dir == "entities" else None)
        stats = {"shard": shard.shard_id, "docs": len(payload.records), "ok": n_ok, "words": n_words,
                 "entities": n_rows, "seconds": round(payload.seconds + time.perf_counter() - t0, 4),
                 "finished_at": round(time.time(), 3), "pieces": 1}
        if payload.piece == 0 and payload.last:  # the only piece: straight to the shard's parts
            data_path, doc_path = part_paths(self.out, shard.shard_id, self.data_dir)
            stats_path = stats_file(self.out, shard.shard_id)
        else:
            data_path, stats_path, doc_path = piece_paths(self.out, shard.shard_id, self.piece_chars, payload.piece)
        write_atomic(data, data_path)
        fs.write_bytes_atomic(stats_path, json.dumps({**stats, shard_stats.KEY: summary}).encode())
        write_atomic(doc_table, doc_path)  # last: the shard's (or the piece's) completion mark
        clear_attempts(self.out, self._attempts_key(payload))
        return {**stats, **self._piece_fields(payload)}

    def _piece_fields(self, payload: Payload) -> dict:
        """What ``assemble`` needs of a piece's row (the same keys on every row: Ray Data's columns)."""
        return {"piece": payload.piece, "pieces": payload.piece + 1 if payload.last else 0,
                "piece_chars": self.piece_chars, "data_dir": self.data_dir}

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


def stats_file(out: str, shard_id: str) -> str:
    return fs.join(str(out), "stats", f"part-{shard_id}.json")


def staged_pieces(out: str, shard_id: str, piece_chars: int) -> set[int]:
    """Pieces of the shard an earlier run finished (their docs part exists), for this piece size."""
    from extract.core import listing

    try:
        names = listing.listdir(fs.parent(piece_paths(out, shard_id, piece_chars, 0)[0]))
    except OSError:
        return set()
    return {int(n[1:7]) for n in names if n.startswith("p") and n.endswith(".docs.parquet")}


def assemble(out: str, rows: list[dict]) -> dict:
    """A shard's staged pieces, in order, streamed into its parts (one piece in memory at a time):
    the data part, its stats (the pieces' summaries merged), then the docs part; then the pieces go.
    ``rows``: the pieces' rows from ``finish``, in any order. Returns the shard's stats row."""
    n, shard_id = len(rows), rows[0]["shard"]
    data_dir, piece_chars = rows[0]["data_dir"], int(rows[0]["piece_chars"])
    paths = [piece_paths(out, shard_id, piece_chars, k) for k in range(n)]
    data_path, doc_path = part_paths(out, shard_id, data_dir)
    data_schema = fs.parquet_file(paths[0][0]).schema_arrow
    fs.write_parquet_stream_atomic((fs.read_parquet(p[0]) for p in paths), data_schema, data_path)
    staged = [json.loads(fs.read_text(p[1])) for p in paths]
    stats = {"shard": shard_id, **{k: sum(s[k] for s in staged) for k in ("docs", "ok", "words", "entities")},
             "seconds": round(sum(s["seconds"] for s in staged), 4), "finished_at": round(time.time(), 3), "pieces": n}
    merged = shard_stats.merge([s[shard_stats.KEY] for s in staged])
    fs.write_bytes_atomic(stats_file(out, shard_id), json.dumps({**stats, shard_stats.KEY: merged}).encode())
    fs.write_parquet_stream_atomic((fs.read_parquet(p[2], schema=schema.DOCS) for p in paths), schema.DOCS, doc_path)
    for p in paths:
        for f in p:
            fs.delete(f, missing_ok=True)
    folder = fs.parent(paths[0][0])
    if fs.is_local(folder):  # an object store has no folders to remove
        try:
            os.rmdir(fs.resolve(folder)[1])
        except OSError:
            pass  # a temporary file of a killed writer: the next overwrite removes it
    return {**stats, "piece": 0, "piece_chars": piece_chars, "data_dir": data_dir}


class PieceTracker:
    """The pieces' rows of shards in flight (the Ray runner gets them in any order, and a retried
    task may send a piece twice): a shard is ready for ``assemble`` once its last piece has said how
    many there are and every piece has come."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, dict]] = {}
        self.total: dict[str, int] = {}

    def add(self, row: dict) -> list[dict] | None:
        """The shard's rows, in piece order, when this row completes it, else None."""
        shard = str(row["shard"])
        self.rows.setdefault(shard, {})[int(row["piece"])] = row
        if int(row["pieces"]):
            self.total[shard] = int(row["pieces"])
        if len(self.rows[shard]) == self.total.get(shard, -1):
            self.total.pop(shard)
            got = self.rows.pop(shard)
            return [got[k] for k in sorted(got)]
        return None


def _mark_duplicates(records: list[Record], first: dict[str, str] | None = None) -> None:
    """The duplicate-id policy within the shard, across its pieces (``first``: ids seen in earlier
    pieces); extract/job/duplicates.py has it across shards."""
    first = {} if first is None else first
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
