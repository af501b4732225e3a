"""CSV: records cut by following their quotes (a quoted field may hold line breaks; LF, CRLF and
CR-only line ends), each bounded like a JSON line, then split into fields and made records."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from extract.core.job_config import InputConfig
from extract.core.types import Record, Shard
from extract.io.records import decode, limit, max_line_bytes, record_from_mapping
from extract.io.sources import BOM, CHUNK, open_binary, safe_read
from extract.text.sanitize import sanitize


# ------------------------------------------------------------------------------ CSV records

@dataclass
class CsvRecord:
    """The raw bytes of one CSV record, whose end was found by following its quotes (a quoted field
    may hold line breaks), or a marker: over the limit, unclosed at the end, a broken stream."""

    lines: list[bytes]  # its physical lines without their line ends (over the limit: the first max_bytes)
    ends: list[bytes]  # the line end after each line but the last: b"\n", b"\r\n" or b"\r"
    first: int  # 1-based number of its first physical line
    last: int  # and of its last
    too_long: int = 0  # bytes of the whole record when it was over the limit (lines: a prefix)
    unclosed: bool = False  # the file ends inside a quoted field that this record opened
    broken: str | None = None  # the stream failed here: why (a partial record is dropped)


_EOL = re.compile(rb"\r\n|\r|\n")
# at a field's start, in an unquoted one, in quotes, after a quote in quotes
_START, _UNQUOTED, _QUOTED, _QUOTE = range(4)
_COMMA, _DQUOTE = 0x2C, 0x22


def _scan_quotes(state: int, data: bytes, i: int, j: int) -> int:
    """The quoting state after ``data[i:j]`` (no line end in it), as Python's csv (excel dialect,
    not strict) parses it: a quote opens a quoted field only at the field's start, "" inside quotes
    is a quote, and what follows a closing quote up to the next comma is kept unquoted. A few
    bytes.find calls a quoted field, so a multi-GB field streams past in C."""
    while i < j:
        if state == _QUOTED:
            k = data.find(b'"', i, j)
            if k < 0:
                return _QUOTED
            state, i = _QUOTE, k + 1
        elif state == _UNQUOTED:  # only a comma followed by a quote opens quotes again
            k = data.find(b',"', i, j)
            if k < 0:
                return _START if data[j - 1] == _COMMA else _UNQUOTED
            state, i = _QUOTED, k + 2
        elif data[i] == _DQUOTE:  # _START: a quoted field; _QUOTE: "" is an escaped quote
            state, i = _QUOTED, i + 1
        else:
            state = _UNQUOTED
    return state


class _CsvScanner:
    """Cuts a byte stream into CSV records: a line end (LF, CRLF or a lone CR, as spreadsheets on
    any system save them) ends a record unless it lies inside quotes. A record keeps at most
    ``max_bytes``; past that its bytes are only counted while the scan follows its quotes to its
    real end, so one over-long record is reported once and the next record starts where it should."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.state = _START
        self.lineno = self.first = 1
        self._reset()

    def _reset(self) -> None:
        self.lines: list[bytes] = []
        self.ends: list[bytes] = []
        self.parts: list[bytes] = []  # the current physical line so far
        self.size = 0  # bytes of the record so far, kept or not
        self.keep = True

    def pending(self) -> bool:
        return self.size > 0 or bool(self.lines)

    def feed(self, data: bytes) -> list[CsvRecord]:
        """The records that end in ``data`` (which must not end with a CR that may be half a CRLF)."""
        out = []
        i, n = 0, len(data)
        while i < n:
            m = _EOL.search(data, i)
            j = m.start() if m else n
            if i < j:
                self.state = _scan_quotes(self.state, data, i, j)
                self._take(data, i, j)
            if m is None:
                break
            if self.state == _QUOTED:  # a line break inside a quoted field: part of the record
                self.size += m.end() - j
                if self.keep and self.size <= self.max_bytes:
                    self.lines.append(b"".join(self.parts))
                    self.ends.append(m.group())
                    self.parts = []
                else:
                    self.keep = False
            else:
                out.append(self._record())
            self.lineno += 1
            i = m.end()
        return out

    def _take(self, data: bytes, i: int, j: int) -> None:
        room = self.max_bytes - self.size
        self.size += j - i
        if not self.keep:
            return
        if j - i <= room:
            self.parts.append(data[i:j])
        else:  # over the limit: keep the first max_bytes (the fields before, an id say), count the rest
            if room > 0:
                self.parts.append(data[i:i + room])
            self.keep = False

    def _record(self, unclosed: bool = False) -> CsvRecord:
        rec = CsvRecord(self.lines + [b"".join(self.parts)], self.ends, self.first, self.lineno,
                        too_long=0 if self.keep else self.size, unclosed=unclosed)
        self._reset()
        self.state = _START
        self.first = self.lineno + 1
        return rec

    def finish(self) -> list[CsvRecord]:
        """The last record when the file does not end with a line end; ``unclosed`` when it ends in quotes."""
        if not self.pending():
            return []
        if not self.parts and not self.size - sum(map(len, self.lines)) - sum(map(len, self.ends)):
            self.lineno -= 1  # the file ends with a line end inside quotes: no line after it
        return [self._record(unclosed=self.state == _QUOTED)]


def read_csv_records(stream: BinaryIO, max_bytes: int) -> Iterator[CsvRecord]:
    """The raw records of a CSV stream in order (a UTF-8 byte order mark at the start dropped), each
    of at most ``max_bytes`` kept; a stream that breaks ends with one ``broken`` marker after every
    complete record before the cut. Structure is found in bytes (comma, quote, CR and LF are single
    bytes in UTF-8, cp1252 and latin-1), so each physical line can be decoded on its own."""
    scan = _CsvScanner(max_bytes)
    head = b""
    while len(head) < len(BOM):  # as read_lines: a read may give fewer bytes than asked
        more = safe_read(stream, len(BOM) - len(head))
        if isinstance(more, Exception):
            yield CsvRecord([], [], 1, 1, broken=f"{type(more).__name__}: {more} at byte {len(head)}")
            return
        if not more:
            break
        head += more
    pos = len(head)
    pending = head.removeprefix(BOM)
    carry = b""  # a CR at the end of a chunk waits for the next byte: CRLF or a lone CR
    while True:
        fresh = not pending  # bytes not counted in pos yet
        chunk, pending = (pending, b"") if pending else (safe_read(stream, CHUNK), b"")
        if isinstance(chunk, Exception):
            partial = (f"; a partial record from line {scan.first:,} was dropped" if scan.pending() or carry else "")
            yield CsvRecord([], [], scan.first, scan.lineno, broken=f"{type(chunk).__name__}: {chunk} at byte {pos:,} "
                                                                     f"(after line {scan.first - 1:,}){partial}")
            return
        if not chunk:
            break
        pos += len(chunk) if fresh else 0
        data = carry + chunk
        carry = b"\r" if data.endswith(b"\r") else b""
        yield from scan.feed(data[:-1] if carry else data)
    yield from scan.feed(carry)
    yield from scan.finish()


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
                      f"{cfg.max_chars:,} (at most {max_line_bytes(cfg):,} bytes a record); raise it to read this "
                      "record")
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


def _decode_record(lines: list[bytes], ends: list[bytes],
                   cfg: InputConfig) -> tuple[str | None, str | None, str | None]:
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
