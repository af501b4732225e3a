"""Input files -> deterministic shards -> records. Bad records become error rows, never exceptions.

Formats: JSONL (.jsonl/.ndjson), JSON (an array of objects, or JSON lines), Parquet, CSV, and
folders of .txt files (id = path relative to the folder); any of them gzipped (.gz).

Planning is one cheap pass in the driver: it lists files, counts records (JSONL: byte offsets every
``shard_size`` lines, so a shard seeks instead of re-reading), checks columns of Parquet/CSV
(a missing column is a config error, found before any work) and finds duplicate ids.
Duplicate-id policy: the first occurrence (in file order, then record order) is processed; every
later one is written to docs/ as ``skipped`` with "duplicate id, first seen at <source>".
"""
from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator

from extract.config import ConfigError, suggest
from extract.job_config import InputConfig

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
            ".csv": "csv", ".txt": "text"}


@dataclass
class Record:
    doc_id: str | None
    text: str | None
    source: str
    error: str | None = None
    warning: str | None = None
    status: str | None = None  # set for records decided before the model (skipped/error)


@dataclass
class Shard:
    shard_id: str
    fmt: str
    file: str = ""
    start: int = 0  # first record ordinal in the file
    stop: int = 0
    byte_offset: int = 0  # JSONL: where record ``start`` begins
    line: int = 0  # JSONL: line number of record ``start`` (1-based)
    files: list[str] = field(default_factory=list)  # text shards: one record per file
    root: str = ""
    dups: dict[int, str] = field(default_factory=dict)  # ordinal -> source of the first occurrence


def format_of(path: str, declared: str) -> str | None:
    if declared != "auto":
        return declared
    p = path[:-3] if path.endswith(".gz") else path
    return SUFFIXES.get(os.path.splitext(p)[1].lower())


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def list_inputs(cfg: InputConfig) -> list[tuple[str, str, str]]:
    """(path, format, root) for every input file, in a stable order."""
    found: list[tuple[str, str, str]] = []
    for spec in cfg.path:
        if os.path.isdir(spec):
            for dirpath, dirnames, filenames in os.walk(spec):
                dirnames.sort()
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    fmt = format_of(full, cfg.format)
                    if fmt:
                        found.append((full, fmt, spec))
        elif any(ch in spec for ch in "*?["):
            for full in sorted(glob.glob(spec, recursive=True)):
                fmt = format_of(full, cfg.format)
                if os.path.isfile(full) and fmt:
                    found.append((full, fmt, os.path.dirname(spec.split("*")[0]) or "."))
        elif os.path.isfile(spec):
            fmt = format_of(spec, cfg.format)
            if not fmt:
                raise ConfigError(f"input.path: cannot tell the format of {spec}; expected one of "
                                  f"{', '.join(SUFFIXES)} (optionally .gz) or set input.format.")
            found.append((spec, fmt, os.path.dirname(spec)))
        else:
            raise ConfigError(f"input.path: '{spec}' matched no file. Expected a file, a folder or a glob "
                              f"(e.g. 'corpus/*.jsonl'); the working directory is {os.getcwd()}.")
    if not found:
        raise ConfigError(f"input.path: {list(cfg.path)} matched no readable input file "
                          f"(known suffixes: {', '.join(SUFFIXES)}, optionally .gz).")
    return found


def decode(raw: bytes, cfg: InputConfig) -> tuple[str | None, str | None, str | None]:
    """(text, warning, error): UTF-8 first, then the declared fallback."""
    try:
        return raw.decode(cfg.encoding), None, None
    except UnicodeDecodeError as exc:
        where = f"byte 0x{raw[exc.start]:02X} at offset {exc.start}"
        if not cfg.encoding_fallback:
            return None, None, f"not valid {cfg.encoding} ({where}); set input.encoding_fallback to decode it"
        text = raw.decode(cfg.encoding_fallback, errors="replace")
        return text, f"not valid {cfg.encoding} ({where}); decoded as {cfg.encoding_fallback}", None


def record_from_mapping(obj, source: str, cfg: InputConfig, warning: str | None = None) -> Record:
    """One record from a JSON object / CSV row / Parquet row, with every problem named."""
    if not isinstance(obj, dict):
        return Record(None, None, source, f"expected a JSON object, found {type(obj).__name__}")
    raw_id = obj.get(cfg.id_column)
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return Record(None, None, source, f"missing id column '{cfg.id_column}'"
                      + ("" if cfg.id_column in obj else suggest(cfg.id_column, list(map(str, obj)))))
    if isinstance(raw_id, (dict, list)):
        return Record(None, None, source, f"id column '{cfg.id_column}' holds a {type(raw_id).__name__}, expected a string or number")
    doc_id = str(raw_id)
    present = [c for c in cfg.text_columns if c in obj]
    if not present:
        return Record(doc_id, None, source, f"missing text column(s) {', '.join(cfg.text_columns)}"
                      + suggest(cfg.text_columns[0], list(map(str, obj))))
    parts = []
    for col in present:
        val = obj[col]
        if val is None:
            continue
        if not isinstance(val, str):
            return Record(doc_id, None, source, f"text column '{col}' holds {type(val).__name__} {str(val)[:40]!r}, expected a string")
        if val:
            parts.append(val)
    return Record(doc_id, cfg.joiner.join(parts), source, warning=warning)


def _jsonl_lines(path: str, offset: int, start: int, stop: int, line: int) -> Iterator[tuple[int, int, bytes]]:
    """(ordinal, line number, bytes) of non-blank lines ``start..stop``, seeking to ``offset``."""
    with _open(path) as f:
        f.seek(offset)
        ordinal, lineno = start, line - 1
        for raw in f:
            lineno += 1
            if ordinal >= stop:
                break
            if raw.strip():
                yield ordinal, lineno, raw
                ordinal += 1


def _plan_jsonl(path: str, cfg: InputConfig) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, str, str]]]:
    """Shard ranges (start, stop, byte offset, first line) and (ordinal, id, source) for duplicate checks."""
    ranges, ids = [], []
    ordinal, pos, lineno = 0, 0, 0
    with _open(path) as f:
        for raw in f:
            lineno += 1
            if raw.strip():
                if ordinal % cfg.shard_size == 0:
                    ranges.append([ordinal, ordinal, pos, lineno])
                try:
                    obj = json.loads(raw)
                    if isinstance(obj, dict) and obj.get(cfg.id_column) is not None:
                        ids.append((ordinal, str(obj[cfg.id_column]), f"{path}:{lineno}"))
                except ValueError:
                    pass  # reported when the shard reads it
                ordinal += 1
                ranges[-1][1] = ordinal
            pos += len(raw)
    return [tuple(r) for r in ranges], ids


def _rows_json(path: str, cfg: InputConfig) -> list:
    with _open(path) as f:
        raw = f.read()
    text, _, err = decode(raw, cfg)
    if err:
        raise ValueError(err)
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("expected a JSON array of objects")
        return data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rows_csv(path: str, cfg: InputConfig) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    with _open(path) as f:
        raw = f.read()
    text, _, err = decode(raw, cfg)
    if err:
        raise ValueError(err)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _check_columns(path: str, columns: list[str], cfg: InputConfig) -> None:
    if cfg.id_column not in columns:
        raise ConfigError(f"input.id_column '{cfg.id_column}' is not a column of {path}." + suggest(cfg.id_column, columns))
    if not any(c in columns for c in cfg.text_columns):
        raise ConfigError(f"input.text_columns {list(cfg.text_columns)}: none is a column of {path}."
                          + suggest(cfg.text_columns[0], columns))


def _plan_table(path: str, fmt: str, cfg: InputConfig) -> tuple[int, list[tuple[int, str, str]]]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        _check_columns(path, pf.schema_arrow.names, cfg)
        ids = pf.read(columns=[cfg.id_column]).column(0).to_pylist()
    else:
        rows = _rows_csv(path, cfg) if fmt == "csv" else _rows_json(path, cfg)
        if fmt == "csv":
            _check_columns(path, list(rows[0].keys()) if rows else [cfg.id_column, cfg.text_columns[0]], cfg)
        ids = [r.get(cfg.id_column) if isinstance(r, dict) else None for r in rows]
    return len(ids), [(i, str(v), f"{path}#{i}") for i, v in enumerate(ids) if v is not None]


def plan(cfg: InputConfig) -> tuple[list[Shard], dict]:
    """All shards of the job, in order, and facts about the input for run.json."""
    shards: list[Shard] = []
    first_seen: dict[str, str] = {}
    facts = {"files": 0, "unreadable_files": 0, "duplicate_ids": 0}
    text_files: dict[str, list[str]] = {}
    for index, (path, fmt, root) in enumerate(list_inputs(cfg)):
        facts["files"] += 1
        if fmt == "text":
            text_files.setdefault(root, []).append(path)
            continue
        try:
            if fmt == "jsonl":
                ranges, ids = _plan_jsonl(path, cfg)
            else:
                n, ids = _plan_table(path, fmt, cfg)
                ranges = [(s, min(s + cfg.shard_size, n), 0, 0) for s in range(0, n, cfg.shard_size)]
        except ConfigError:
            raise
        except Exception as exc:  # an unreadable file is one error row, not a dead job
            facts["unreadable_files"] += 1
            shards.append(Shard(f"{index:05d}-00000", "unreadable", path, dups={0: f"{type(exc).__name__}: {exc}"}))
            continue
        dups: dict[int, str] = {}
        for ordinal, doc_id, source in ids:
            if doc_id in first_seen:
                dups[ordinal] = first_seen[doc_id]
            else:
                first_seen[doc_id] = source
        facts["duplicate_ids"] += len(dups)
        for k, (start, stop, offset, line) in enumerate(ranges):
            shards.append(Shard(f"{index:05d}-{k:05d}", fmt, path, start, stop, offset, line,
                                dups={o: s for o, s in dups.items() if start <= o < stop}))
    for r, (root, files) in enumerate(sorted(text_files.items())):
        for k in range(0, len(files), cfg.shard_size):
            shards.append(Shard(f"t{r:04d}-{k // cfg.shard_size:05d}", "text", root=root,
                                files=files[k:k + cfg.shard_size]))
    facts["shards"] = len(shards)
    return shards, facts


def read_shard(shard: Shard, cfg: InputConfig) -> Iterator[Record]:
    """Every record of the shard, exactly once, in order; problems become error records."""
    if shard.fmt == "unreadable":
        yield Record(None, None, shard.file, f"unreadable file: {shard.dups[0]}")
        return
    if shard.fmt == "text":
        for path in shard.files:
            doc_id = os.path.relpath(path, shard.root)
            try:
                with _open(path) as f:
                    raw = f.read()
            except OSError as exc:
                yield Record(doc_id, None, path, f"unreadable file: {exc}")
                continue
            text, warning, err = decode(raw, cfg)
            yield _limit(Record(doc_id, text, path, err, warning), cfg)
        return
    if shard.fmt == "jsonl":
        for ordinal, lineno, raw in _jsonl_lines(shard.file, shard.byte_offset, shard.start, shard.stop, shard.line):
            yield _one(shard, ordinal, None, raw, cfg, f"{shard.file}:{lineno}")
        return
    if shard.fmt == "parquet":
        rows = _parquet_rows(shard, cfg)
    else:
        loader = _rows_csv if shard.fmt == "csv" else _rows_json
        all_rows = loader(shard.file, cfg)
        rows = ((o, all_rows[o], None) for o in range(shard.start, shard.stop))
    for ordinal, obj, raw in rows:
        yield _one(shard, ordinal, obj, raw, cfg)


def _one(shard: Shard, ordinal: int, obj, raw: bytes | None, cfg: InputConfig, source: str = "") -> Record:
    source = source or f"{shard.file}#{ordinal}"
    warning = None
    if raw is not None:
        text, warning, err = decode(raw, cfg)
        if err:
            return Record(None, None, source, err)
        try:
            obj = json.loads(text)
        except ValueError as exc:
            return Record(None, None, source, f"malformed JSON: {exc}")
    rec = record_from_mapping(obj, source, cfg, warning)
    if ordinal in shard.dups and rec.error is None:
        rec.status, rec.error, rec.text = "skipped", f"duplicate id, first seen at {shard.dups[ordinal]}", None
    return _limit(rec, cfg)


def _limit(rec: Record, cfg: InputConfig) -> Record:
    if rec.error is None and rec.text is not None and len(rec.text) > cfg.max_chars:
        rec.status = "skipped"
        rec.error = f"{len(rec.text):,} characters is over input.max_chars={cfg.max_chars:,}; raise it to process this record"
        rec.text = None
    return rec


def _parquet_rows(shard: Shard, cfg: InputConfig):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard.file)
    cols = [c for c in [cfg.id_column, *cfg.text_columns] if c in pf.schema_arrow.names]
    base = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if base + n > shard.start and base < shard.stop:
            table = pf.read_row_group(g, columns=cols)
            for i, row in enumerate(table.to_pylist()):
                if shard.start <= base + i < shard.stop:
                    yield base + i, row, None
        base += n
