"""Input files -> deterministic shards -> records. Bad records become error rows, never exceptions.

Formats: JSON lines (.jsonl/.ndjson, or .json that is not an array), JSON arrays (.json), Parquet,
CSV and folders of .txt files (id = path relative to the folder), each optionally compressed
(.gz, .bz2, .xz, .zst). One reader class per format with one method, ``read(shard)``.

Paths are local paths or URIs (extract/core/fs.py); a text file's id is its path relative to the
folder it was listed under, for URIs too. Planning reads no record: an uncompressed JSON-lines
file is cut into byte ranges of ``shard_bytes`` that the reader aligns to line starts, Parquet by
row counts from the footer, text folders into groups of ``shard_size`` files; a compressed file, a
CSV or a JSON array cannot be split and is one shard. A JSON-lines record's source is ``file@byte offset``
of its line. Duplicate ids are settled after the run over the docs table (extract/job/duplicates.py).
"""
from __future__ import annotations

import json
import os
from typing import Iterator

from extract.core import fs
from extract.core.job_config import InputConfig
from extract.text.sanitize import sanitize
from extract.core.types import InputChanged, Record, Shard
from extract.io.csv_records import CsvReader
from extract.io.records import _too_long, decode, limit, max_line_bytes, record_from_mapping
from extract.io.entries import not_regular
from extract.io.sources import open_binary, read_bounded, read_lines

MAX_JSON_ARRAY_BYTES = 256 << 20  # a JSON array is parsed whole: past this, ask for JSON lines


def stamps_of(paths: list[str]) -> list[list]:
    """``[size, mtime_ns]`` per file, from fs.stat (os.stat locally; one lookup per object on a
    store, whose mtime may be whole seconds or None: planning and checking both use this call, so
    they compare like with like). Remote lookups run a few at a time."""
    if len(paths) > 1 and not all(fs.is_local(p) for p in paths):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(16, len(paths))) as pool:
            return [list(st) for st in pool.map(_stat, paths)]
    return [list(_stat(p)) for p in paths]


def _stat(path: str) -> tuple[int, int | None]:
    """fs.stat; a local symlink whose target is missing (or loops) is stamped by the link itself, so
    a text folder holding one plans and reads (its reader gives it an error row)."""
    try:
        return fs.stat(path)
    except OSError:
        if not fs.is_local(path):
            raise
        local = fs.resolve(path)[1]
        if not os.path.islink(local):
            raise
        st = os.lstat(local)
        return st.st_size, st.st_mtime_ns


def check_stamps(shard: Shard) -> None:
    files = shard.files or [shard.file]
    for path, (size, mtime), (now_size, now_mtime) in zip(files, shard.stamps, stamps_of(files)):
        if (now_size, now_mtime) != (size, mtime):
            raise InputChanged(f"input file {path} changed after this job planned it (size {size:,} -> "
                               f"{now_size:,}); its results would mix two versions. Write to a new "
                               "output.path (or pass --overwrite) to plan the job again.")


class JsonLinesReader:
    """Lines whose first byte lies in [start, stop): a range starting mid-line skips to the next
    line start, and the line running past ``stop`` is read whole (Hadoop's input splits)."""

    def read(self, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        with open_binary(shard.file, shard.compression) as f:
            lines = read_lines(f, max_line_bytes(cfg))
            if shard.start > 0:
                f.seek(shard.start - 1)
                lines = read_lines(f, max_line_bytes(cfg), shard.start - 1)
                next(lines, None)  # the rest of the line that began before this range (maybe just "\n")
            for line in lines:
                if 0 <= shard.stop <= line.offset:
                    return
                source = f"{shard.file}@{line.offset}"
                if line.broken:
                    yield Record(None, None, source, f"the file ends early or is corrupt: {line.broken}; "
                                 "every complete line before it was read")
                    return
                if line.data is not None and not line.data.strip():
                    continue
                if line.data is None:
                    yield _too_long(line, source, cfg)
                    continue
                yield self.parse(line.data, source, cfg)

    @staticmethod
    def parse(raw: bytes, source: str, cfg: InputConfig) -> Record:
        text, warning, err = decode(raw, cfg)
        if err:
            return Record(None, None, source, err)
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            return Record(None, None, source, f"malformed JSON: {exc}")
        return limit(record_from_mapping(obj, source, cfg, warning), cfg)


class JsonReader:
    """A JSON array of objects, parsed whole (bounded); anything else is read as JSON lines."""

    def read(self, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        if not is_json_array(shard.file, shard.compression):
            yield from JsonLinesReader().read(shard, cfg)
            return
        with open_binary(shard.file, shard.compression) as f:
            raw, more = read_bounded(f, MAX_JSON_ARRAY_BYTES)
        if more:
            yield Record(None, None, shard.file, f"a JSON array over {MAX_JSON_ARRAY_BYTES >> 20} MB is parsed "
                         "whole and was not read; write it as JSON lines (e.g. jq -c '.[]' FILE > FILE.jsonl)")
            return
        text, warning, err = decode(raw.removeprefix(b"\xef\xbb\xbf"), cfg)
        if err:
            yield Record(None, None, shard.file, err)
            return
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield Record(None, None, shard.file, f"malformed JSON array: {exc}")
            return
        for i, obj in enumerate(data):
            yield limit(record_from_mapping(obj, f"{shard.file}#{i}", cfg, warning), cfg)


def is_json_array(path: str, compression: str | None) -> bool:
    try:
        with open_binary(path, compression) as f:
            head = f.read(4096)
    except Exception:  # noqa: BLE001 - the reader reports an unreadable file
        return False
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


class ParquetReader:
    def read(self, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        with fs.parquet_file(shard.file) as pf:
            yield from self._rows(pf, shard, cfg)

    @staticmethod
    def _rows(pf, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        cols = [c for c in dict.fromkeys([cfg.id_column, *cfg.text_columns]) if c in pf.schema_arrow.names]
        stop = pf.metadata.num_rows if shard.stop < 0 else shard.stop
        base = 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if base + n > shard.start and base < stop:
                for batch in pf.iter_batches(batch_size=1024, row_groups=[g], columns=cols):
                    for i, row in enumerate(batch.to_pylist()):
                        if shard.start <= base + i < stop:
                            yield limit(record_from_mapping(row, f"{shard.file}#{base + i}", cfg), cfg)
                    base += batch.num_rows
            else:
                base += n


class TextReader:
    def read(self, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        from extract.io.sources import compression_of

        for path in shard.files:
            doc_id = sanitize(relative_to(path, shard.root))[0]  # undecodable file-name bytes
            why = not_regular(fs.resolve(path)[1]) if fs.is_local(path) else None
            if why:  # a FIFO, a socket, a dangling symlink: never opened (a FIFO would block)
                yield Record(doc_id, None, path, why)
                continue
            try:
                with open_binary(path, compression_of(path)) as f:
                    # UTF-8 takes at most 4 bytes a character: more bytes than that is surely too long.
                    raw, more = read_bounded(f, 4 * cfg.max_chars)
            except Exception as exc:  # noqa: BLE001 - unreadable file: its own error row
                yield Record(doc_id, None, path, f"unreadable file: {type(exc).__name__}: {exc}")
                continue
            if more:
                yield Record(doc_id, None, path, f"over {4 * cfg.max_chars:,} bytes, so over input.max_chars="
                             f"{cfg.max_chars:,}; raise it to process this file", status="skipped")
                continue
            text, warning, err = decode(raw.removeprefix(b"\xef\xbb\xbf"), cfg)
            yield limit(Record(doc_id, text, path, err, warning), cfg)


def relative_to(path: str, root: str) -> str:
    """A text file's id: its path relative to the folder it was listed under ("sub/a.txt"), for
    local paths as os.path.relpath gives it, for URIs the part of the key below the root."""
    if fs.split(path)[0] == "":
        return os.path.relpath(path, root)
    base = root.rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else fs.basename(path)


READERS = {"jsonl": JsonLinesReader, "json": JsonReader, "csv": CsvReader, "parquet": ParquetReader,
           "text": TextReader}


def read_shard(shard: Shard, cfg: InputConfig) -> Iterator[Record]:
    """Every record of the shard, in order; any failure of the reader itself becomes one error
    record after the records already read, never an exception."""
    where = shard.file or (shard.files[0] if shard.files else shard.shard_id)
    n = 0
    check_stamps(shard)  # raises: a changed input fails the job, it is not a bad record
    try:
        for rec in READERS[shard.fmt]().read(shard, cfg):
            n += 1
            yield rec
    except Exception as exc:  # noqa: BLE001 - a file we cannot read is an error row, not a dead job
        yield Record(None, None, where, f"unreadable file after {n:,} record(s): {type(exc).__name__}: {exc}")
