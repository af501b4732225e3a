"""Input files -> deterministic shards -> records. Bad records become error rows, never exceptions.

Formats: JSON lines (.jsonl/.ndjson, or .json that is not an array), JSON arrays (.json), Parquet,
CSV and folders of .txt files (id = path relative to the folder), each optionally compressed
(.gz, .bz2, .xz, .zst). One reader class per format with one method, ``read(shard)``.

Paths are local paths or URIs (extract/fs.py); a text file's id is its path relative to the
folder it was listed under, for URIs too. Planning reads no record: an uncompressed JSON-lines
file is cut into byte ranges of ``shard_bytes`` that the reader aligns to line starts, Parquet by
row counts from the footer, text folders into groups of ``shard_size`` files; a compressed file, a
CSV or a JSON array cannot be split and is one shard. A JSON-lines record's source is ``file@byte offset`` of its line. Duplicate ids are settled after the run over the docs table (extract/duplicates.py).
"""
from __future__ import annotations

import json
import os
import re
from typing import Iterator

from extract.core import fs
from extract.core.config import suggest
from extract.core.job_config import InputConfig
from extract.text.sanitize import sanitize
from extract.core.types import InputChanged, Record, Shard
from extract.io.sources import Line, not_regular, open_binary, read_bounded, read_csv_records, read_lines

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


def max_line_bytes(cfg: InputConfig) -> int:
    # A JSON line may escape every character as \uXXXX: 6 bytes a character, plus the other fields.
    return 6 * cfg.max_chars + (1 << 16)


def decode(raw: bytes, cfg: InputConfig) -> tuple[str | None, str | None, str | None]:
    """(text, warning, error): the declared encoding first, then the fallback."""
    try:
        return raw.decode(cfg.encoding), None, None
    except UnicodeDecodeError as exc:
        where = f"byte 0x{raw[exc.start]:02X} at offset {exc.start}"
        if not cfg.encoding_fallback:
            return None, None, f"not valid {cfg.encoding} ({where}); set input.encoding_fallback to decode it"
        text = raw.decode(cfg.encoding_fallback, errors="replace")
        return text, f"not valid {cfg.encoding} ({where}); decoded as {cfg.encoding_fallback}", None


def _join_warnings(*parts: str | None) -> str | None:
    found = [p for p in parts if p]
    return "; ".join(found) if found else None


def _keys(obj: dict) -> list[str]:
    """The keys, for a message: a JSON key may hold a lone surrogate, which no output can store."""
    return [sanitize(str(k))[0] for k in obj]


def record_from_mapping(obj, source: str, cfg: InputConfig, warning: str | None = None) -> Record:
    """One record from a JSON object / CSV row / Parquet row, with every problem named."""
    if not isinstance(obj, dict):
        return Record(None, None, source, f"expected a JSON object, found {type(obj).__name__}", warning)
    raw_id = obj.get(cfg.id_column)
    if isinstance(raw_id, str):
        raw_id, id_warning = sanitize(raw_id)
        warning = _join_warnings(warning, id_warning and f"id: {id_warning}")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return Record(None, None, source, f"missing id column '{cfg.id_column}'"
                      + ("" if cfg.id_column in obj else suggest(cfg.id_column, _keys(obj))),
                      warning)
    if isinstance(raw_id, (dict, list, float)) or isinstance(raw_id, bool):
        return Record(None, None, source, f"id column '{cfg.id_column}' holds {type(raw_id).__name__} "
                      f"{str(raw_id)[:40]!r}, expected a string or an integer", warning)
    doc_id = str(raw_id)
    present = [c for c in cfg.text_columns if c in obj]
    if not present:
        return Record(doc_id, None, source, f"missing text column(s) {', '.join(cfg.text_columns)}"
                      + suggest(cfg.text_columns[0], _keys(obj)), warning)
    parts = []
    for col in present:
        val = obj[col]
        if val is None:
            continue
        if not isinstance(val, str):
            return Record(doc_id, None, source, f"text column '{col}' holds {type(val).__name__} "
                          f"{str(val)[:40]!r}, expected a string", warning)
        if val:
            parts.append(val)
    return Record(doc_id, cfg.joiner.join(parts), source, warning=warning)


def limit(rec: Record, cfg: InputConfig) -> Record:
    """Over-long texts are `skipped` with the reason; text is sanitised for the tokenizer."""
    if rec.error is None and rec.text is not None:
        if len(rec.text) > cfg.max_chars:
            rec.status = "skipped"
            rec.error = (f"{len(rec.text):,} characters is over input.max_chars={cfg.max_chars:,}; "
                         "raise it to process this record")
            rec.text = None
        else:
            rec.text, note = sanitize(rec.text)
            rec.warning = _join_warnings(rec.warning, note)
    return rec


def _too_long(line: Line, source: str, cfg: InputConfig) -> Record:
    return Record(None, None, source, f"a line of over {line.too_long:,} bytes is over input.max_chars="
                  f"{cfg.max_chars:,} (at most {max_line_bytes(cfg):,} bytes a line); raise it to read this "
                  "record", status="skipped")


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


class CsvReader:
    """CSV as spreadsheets save it: byte order mark, LF, CRLF or CR-only (classic Mac) line ends,
    quoted fields with line breaks (kept as the file has them). Records are cut by following the
    quotes (sources.read_csv_records), so a record over the limit is one `skipped` row, with its id
    when the id field came before the cut, and the next record reads normally. Each physical line
    is decoded on its own, so one cp1252 line warns only the record it belongs to."""

    def read(self, shard: Shard, cfg: InputConfig) -> Iterator[Record]:
        with open_binary(shard.file, shard.compression) as f:
            yield from csv_records(f, shard.file, cfg)


def csv_records(f, file: str, cfg: InputConfig) -> Iterator[Record]:
    """One record per CSV record of the stream after the header (blank ones are not records)."""
    header: list[str] | None = None
    for raw in read_csv_records(f, max_line_bytes(cfg)):
        source = f"{file}:{raw.last}"
        if raw.broken:
            yield Record(None, None, source if header is not None else file,
                         f"the file ends early or is corrupt: {raw.broken}; every complete record before it was read")
            return
        where = f"line {raw.first:,}" if raw.first == raw.last else f"lines {raw.first:,}-{raw.last:,}"
        if raw.unclosed:
            problem = (f"a quoted field opened on line {raw.first:,} is never closed: the file ends inside it "
                       f"({where} were read as that one record)")
            yield Record(None, None, file if header is None else source,
                         f"unreadable CSV header: {problem}" if header is None else f"malformed CSV: {problem}")
            return
        if raw.too_long:
            reason = (f"a CSV record of over {raw.too_long:,} bytes ({where}) is over input.max_chars="
                      f"{cfg.max_chars:,} (at most {max_line_bytes(cfg):,} bytes a record); raise it to read this record")
            if header is None:
                yield Record(None, None, file, f"unreadable CSV header: {reason}")
                return
            yield Record(_id_before_cut(raw, header, cfg), None, source, reason, status="skipped")
            continue
        text, warning, err = _decode_record(raw.lines, raw.ends, cfg)
        if err:
            if header is None:
                yield Record(None, None, file, f"unreadable CSV header: {err}")
                return
            yield Record(None, None, source, err)
            continue
        row = split_fields(text)
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            yield Record(None, None, source, f"expected {len(header)} fields as in the header, found {len(row)}")
            continue
        yield limit(record_from_mapping(dict(zip(header, row)), source, cfg, warning), cfg)


def csv_mappings(f, cfg: InputConfig) -> Iterator[dict]:
    """The well-formed rows of a CSV stream as {header: value} (for the column probe)."""
    header: list[str] | None = None
    for raw in read_csv_records(f, max_line_bytes(cfg)):
        if raw.broken or raw.unclosed:
            return
        if raw.too_long:
            if header is None:
                return
            continue
        text, _, err = _decode_record(raw.lines, raw.ends, cfg)
        row = split_fields(text or "")
        if err or not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = row
        elif len(row) == len(header):
            yield dict(zip(header, row))


def _decode_record(lines: list[bytes], ends: list[bytes], cfg: InputConfig) -> tuple[str | None, str | None, str | None]:
    """(text, warning, error) of a record's physical lines, each decoded on its own, joined by the
    line ends they had in the file."""
    if len(lines) == 1:
        return decode(lines[0], cfg)
    parts, warning = [], None
    for k, line in enumerate(lines):
        text, note, err = decode(line, cfg)
        if err:
            return None, None, err
        warning = warning or note
        parts.append(text)
        if k < len(ends):
            parts.append(ends[k].decode("ascii"))
    return "".join(parts), warning, None


_QUOTED_BODY = re.compile(r'[^"]*+(?:""[^"]*+)*+')


def split_fields(text: str) -> list[str]:
    """The fields of one CSV record (its line ends inside quotes included), as Python's csv module
    (excel dialect, not strict) gives them: [] for an empty record, "" inside quotes is a quote,
    text after a closing quote is kept, a quote inside an unquoted field is an ordinary character."""
    if not text:
        return []
    if '"' not in text:
        return text.split(",")
    fields = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            m = _QUOTED_BODY.match(text, i + 1)
            value, j = m.group().replace('""', '"'), m.end()
            j += j < n  # the closing quote (absent only at the end of an unclosed record)
            k = text.find(",", j)
            k = n if k < 0 else k
            value += text[j:k]
        else:
            k = text.find(",", i)
            k = n if k < 0 else k
            value = text[i:k]
        fields.append(value)
        if k >= n:
            return fields
        i = k + 1


def _id_before_cut(raw, header: list[str], cfg: InputConfig) -> str | None:
    """The id of an over-long record when its id field lies wholly in the kept prefix."""
    if cfg.id_column not in header:
        return None
    at = len(header) - 1 - header[::-1].index(cfg.id_column)  # dict(zip(header, row)) keeps the last
    lines, ends = list(raw.lines), list(raw.ends)
    cut = lines[-1].rfind(b",")  # a comma is one byte in any of our encodings: never half a character
    if cut < 0:
        lines.pop()
    else:
        lines[-1] = lines[-1][:cut + 1]
    if not lines:
        return None
    text, _, err = _decode_record(lines, ends[:len(lines) - 1], cfg)
    if err or text is None:
        return None
    complete = split_fields(text)[:-1]  # the last field was cut (or is the empty one after the comma)
    if at >= len(complete):
        return None
    doc_id = sanitize(complete[at])[0]
    return doc_id if doc_id.strip() else None


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
