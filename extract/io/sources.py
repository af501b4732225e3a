"""Input files: which ones, in which format and compression, and bounded line reading.

Paths are local paths or URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``), listed and opened
through extract/fs.py. Suffixes match case-insensitively (``NEWS.JSONL.GZ``); files under a
folder or glob whose suffix names no known format are not read but counted, with their first few
names, for run.json. Entries of a local folder or glob that are not regular files (FIFOs, sockets,
dangling symlinks, symlinked folders) are never silent and never opened: under a text name
they are listed, and the text reader gives each an error row; anything else is counted with its
reason (run.json: input.skipped_file_reasons).
CSV records are cut by following their quotes (read_csv_records): LF, CRLF and CR-only line
ends, and a record over the limit streams past to its real end and is reported once.
Reading is bounded: a line longer than the limit is skipped while it streams past (never held in
memory), so a multi-GB line or a gzip bomb costs time, not memory; a stream that breaks (a
truncated .gz) ends with one marker saying where, after every complete line before the cut.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

from extract.core import fs, listing
from extract.core.config import ConfigError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet",
           ".csv": "csv", ".txt": "text"}
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
BOM = b"\xef\xbb\xbf"
CHUNK = 1 << 20


@dataclass
class InputFile:
    path: str
    fmt: str
    root: str  # folder a text file's id is relative to
    compression: str | None


UNKNOWN_SUFFIX = "unknown suffix"


@dataclass
class Listing:
    files: list[InputFile] = field(default_factory=list)
    # entries under a folder or glob that are not read: an unknown suffix, or not a regular file
    # (a FIFO, a socket, a dangling symlink, a symlinked or unreadable folder), counted by reason
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)  # "path", or "path (reason)"
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    _odd_examples: int = 0

    def skip(self, path: str, reason: str = UNKNOWN_SUFFIX) -> None:
        self.skipped += 1
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1
        if reason == UNKNOWN_SUFFIX:
            if len(self.skipped_examples) - self._odd_examples < 5:
                self.skipped_examples.append(path)
        elif self._odd_examples < 5:  # a few of these are shown however many suffixes were skipped
            self._odd_examples += 1
            self.skipped_examples.append(f"{path} ({reason})")


def compression_of(path: str) -> str | None:
    return COMPRESSIONS.get(os.path.splitext(path)[1].lower())


def format_of(path: str, declared: str) -> str | None:
    if declared != "auto":
        return declared
    base = path[: -len(os.path.splitext(path)[1])] if compression_of(path) else path
    return FORMATS.get(os.path.splitext(base)[1].lower())


def _known() -> str:
    return f"{', '.join(FORMATS)}, optionally compressed ({', '.join(COMPRESSIONS)})"


def list_inputs(paths: tuple[str, ...], declared: str) -> Listing:
    """Every input file in a stable order; unknown suffixes under folders and globs are counted.

    A spec is a local path or a URI (extract/fs.py): a folder lists every file below it in os.walk
    order (a folder's files by name, then its subfolders), a glob its matches sorted by name."""
    out = Listing()

    def add(full: str, root: str) -> None:
        fmt = format_of(full, declared)
        if fmt:
            out.files.append(InputFile(full, fmt, root, compression_of(full)))
        else:
            out.skip(full)

    def add_odd(full: str, root: str, why: str) -> None:
        """An entry that is not a regular file: a text file's reader gives it an error row with its id
        (it never opens one: a FIFO would block); anything else is skipped with the reason."""
        if why not in NEVER_LISTED and format_of(full, declared) == "text":
            out.files.append(InputFile(full, "text", root, compression_of(full)))
        else:
            out.skip(full, why)

    for spec in paths:
        local = fs.is_local(spec)
        globbed = any(ch in spec for ch in listing.GLOB_CHARS)
        try:
            if not spec.strip():
                raise FileNotFoundError(spec)
            if (local or not globbed) and fs.is_dir(spec):  # as ever: a folder first, then a glob, then a file
                found = [full for full, _ in listing.list_files(spec, what="input.path", literal=True)]
                for full, why in _with_odd_entries(found, _odd_in_folder(spec) if local else [], spec):
                    if why is None:
                        add(full, spec)
                    else:
                        add_odd(full, spec, why)
            elif globbed:
                root = os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."
                found = [full for full, _ in listing.list_files(spec, what="input.path")]
                for full, why in _with_odd_entries(found, _odd_in_glob(spec, found), None):
                    if why is None:
                        add(full, root)
                    else:
                        add_odd(full, root, why)
            elif fs.is_file(spec):
                if not format_of(spec, declared):
                    raise ConfigError(f"input.path: cannot tell the format of {spec}; expected a name ending in "
                                      f"{_known()}, or set input.format.")
                add(spec, os.path.dirname(spec))
            else:
                raise FileNotFoundError(spec)
        except ConfigError:
            raise
        except FileNotFoundError:
            where = f"the working directory is {os.getcwd()}" if local else "nothing exists there"
            raise ConfigError(f"input.path: '{spec}' matched no file. Expected a file, a folder or a glob "
                              f"(e.g. 'corpus/*.jsonl'); {where}.") from None
        except ValueError as exc:  # a malformed URI, a glob in a bucket name
            raise ConfigError(f"input.path: {exc}") from None
        except OSError as exc:  # permissions, an unreachable store, missing credentials
            raise ConfigError(f"input.path: cannot list '{spec}': {type(exc).__name__}: {exc}") from None
    if not out.files:
        more = f" ({out.skipped} file(s) skipped for their suffix or as not regular files, e.g. {out.skipped_examples[0]})" if out.skipped else ""
        raise ConfigError(f"input.path: {list(paths)} matched no readable input file{more}; known suffixes: {_known()}.")
    return out


# skipped with the reason even under a text name (a symlink loop is not a path the job can resolve)
NEVER_LISTED = ("symlink to a folder, not followed", "unreadable folder", "unreadable symlink")


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return f"file of mode {mode:o}"


def not_regular(path: str) -> str | None:
    """Why a local path is not a readable regular file (None when it is one, or does not exist at
    all), from stat calls only: nothing is opened, so a FIFO never blocks."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if not os.path.islink(path):
            return None  # gone, or unreadable: opening it says why
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(exc, FileNotFoundError):
            return f"dangling symlink: its target {target!r} does not exist"
        return f"unreadable symlink (to {target!r}): {exc.strerror or type(exc).__name__}"
    if stat.S_ISREG(st.st_mode):
        return None
    link = " (through a symlink)" if os.path.islink(path) else ""
    return f"not a regular file: {file_kind(st.st_mode)}{link}"


def _why_skipped(entry: os.DirEntry) -> str | None:
    """"dir" for a subfolder to walk, None for a regular file (or a symlink to one), else the reason
    (short, for the counts in run.json) an entry of a local folder is not read as a file."""
    try:
        if entry.is_symlink():
            try:
                st = os.stat(entry.path)
            except FileNotFoundError:
                return "dangling symlink"
            except OSError:
                return "unreadable symlink"
            if stat.S_ISREG(st.st_mode):
                return None
            if stat.S_ISDIR(st.st_mode):
                return "symlink to a folder, not followed"
            return f"not a regular file: {file_kind(st.st_mode)}"
        if entry.is_dir(follow_symlinks=False):
            return "dir"
        if entry.is_file(follow_symlinks=False):
            return None
        return f"not a regular file: {file_kind(entry.stat(follow_symlinks=False).st_mode)}"
    except OSError:
        return "cannot stat"


def _odd_in_folder(spec: str) -> list[tuple[str, str]]:
    """``(uri, reason)`` of every entry below a local folder that its listing (regular files, by
    os.walk) leaves out: FIFOs, sockets, devices, dangling symlinks, symlinked folders (os.walk does
    not follow them), subfolders that cannot be listed. One scandir per folder; only symlinks and
    entries of an unusual type are stat-ed."""
    _, folder = fs.resolve(spec)
    prefix = spec if spec.endswith("/") else spec + "/"
    out: list[tuple[str, str]] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(folder, rel_dir)) as it:
                entries = list(it)
        except OSError:
            out.append((prefix + rel_dir if rel_dir else spec, "unreadable folder"))
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            why = _why_skipped(entry)
            if why == "dir":
                pending.append(rel)
            elif why is not None:
                out.append((prefix + rel, why))
    out.sort(key=lambda e: _walk_order(e[0][len(prefix):]))
    return out


def _odd_in_glob(spec: str, found: list[str]) -> list[tuple[str, str]]:
    """``(uri, reason)`` of a plain local glob's matches (glob.glob's, which the listing follows)
    that are neither listed regular files nor folders: FIFOs, sockets, devices, dangling symlinks."""
    if fs.split(spec)[0]:
        return []
    import glob

    listed = set(found)
    out = []
    for path in sorted(glob.glob(spec, recursive=True)):
        if path in listed or os.path.isdir(path):
            continue
        why = _why_path_skipped(path)
        if why:
            out.append((path, why))
    return out


def _why_path_skipped(path: str) -> str | None:
    """The short reason a glob's match is not read as a file; None for a regular file or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone since it was matched
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return "dangling symlink"
        except OSError:
            return "unreadable symlink"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"not a regular file: {file_kind(mode)}"


def _walk_order(rel: str) -> tuple:
    """os.walk's order with sorted names (the listing's): a folder's own entries, then each subfolder."""
    parts = rel.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def _with_odd_entries(found: list[str], odd: list[tuple[str, str]], folder: str | None):
    """The listed files (reason None) and the odd entries in one listing order: os.walk order
    below ``folder``, else (a glob) sorted by uri."""
    import heapq

    if not odd:
        return [(full, None) for full in found]
    if folder is None:
        key = lambda e: e[0]
    else:
        cut = len(folder if folder.endswith("/") else folder + "/")
        key = lambda e: _walk_order(e[0][cut:])
    return list(heapq.merge([(full, None) for full in found], odd, key=key))


class _Owning:
    """A decompressor that also closes the file it reads from (gzip.open(path) would; a
    GzipFile/BZ2File/LZMAFile given a file object leaves it open)."""

    _source: BinaryIO | None = None

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        finally:
            if self._source is not None:
                self._source.close()


class _Gzip(_Owning, gzip.GzipFile):
    pass


class _Bz2(_Owning, bz2.BZ2File):
    pass


class _Lzma(_Owning, lzma.LZMAFile):
    pass


def open_binary(path: str, compression: str | None) -> BinaryIO:
    """A local path or a URI (extract/fs.py), decompressed by ``compression``."""
    raw = fs.open_input(path)
    try:
        if compression == "gzip":
            f: Any = _Gzip(fileobj=raw, mode="rb")
        elif compression == "bz2":
            f = _Bz2(raw, "rb")
        elif compression == "xz":
            f = _Lzma(raw, "rb")
        elif compression == "zstd":
            return ZstdReader(raw)
        else:
            return raw
    except BaseException:
        raw.close()
        raise
    f._source = raw
    return f


class ZstdReader:
    """zstandard's own stream reader ends quietly on a truncated file; this one raises EOFError
    there, like gzip, bz2 and xz do, and reads concatenated frames."""

    def __init__(self, raw: BinaryIO):
        import zstandard

        self.raw, self.zstd = raw, zstandard
        self.dec = zstandard.ZstdDecompressor().decompressobj()
        self.in_frame = False

    def read1(self, n: int = CHUNK) -> bytes:
        while True:
            data = self.raw.read(CHUNK)
            if not data:
                if self.in_frame:
                    raise EOFError("zstd stream ended before the end of its frame")
                return b""
            out = bytearray()
            while data:
                self.in_frame = True
                out += self.dec.decompress(data)
                if not self.dec.eof:
                    break
                data, self.in_frame = self.dec.unused_data, False
                self.dec = self.zstd.ZstdDecompressor().decompressobj()
            if out:
                return bytes(out)

    read = read1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.raw.close()


@dataclass
class Line:
    """One line of a file (without its newline), or a marker for a line too long / a broken stream."""

    data: bytes | None
    lineno: int  # 1-based
    offset: int  # byte offset of the line start in the (decompressed) stream
    too_long: int = 0  # bytes seen when the line was over the limit (data is None)
    broken: str | None = None  # the stream failed here: why (data is None)


def read_lines(stream: BinaryIO, max_bytes: int, offset: int = 0, lineno: int = 1) -> Iterator[Line]:
    """Lines split on b"\\n" only (U+2028 and friends stay inside), each at most ``max_bytes``.

    ``offset``/``lineno`` say where the stream already stands (a seek into an uncompressed file);
    at offset 0 a UTF-8 byte order mark is dropped.
    """
    buf = bytearray()
    dropping, dropped = False, 0
    pos = start = offset  # pos: stream offset of the chunk; start: offset of the current line
    pending = b""
    if offset == 0:
        head = b""
        while len(head) < len(BOM):  # a read may give fewer bytes than asked (a 1-byte gzip member)
            more = _safe_read(stream, len(BOM) - len(head))
            if isinstance(more, Exception):
                yield Line(None, lineno, 0, broken=f"{type(more).__name__}: {more} at byte {len(head)}")
                return
            if not more:
                break
            head += more
        if head.startswith(BOM):  # a reader may return more than asked for (ZstdReader)
            pos = start = len(BOM)
            head = head[len(BOM):]
        pending = head
    while True:
        chunk, pending = (pending, b"") if pending else (_safe_read(stream, CHUNK), b"")
        if isinstance(chunk, Exception):
            partial = f"; a partial line of {len(buf) + dropped:,} bytes was dropped" if buf or dropped else ""
            yield Line(None, lineno, start, broken=f"{type(chunk).__name__}: {chunk} at byte {pos:,} "
                                                     f"(after line {lineno - 1:,}){partial}")
            return
        if not chunk:
            break
        i = 0
        while True:
            j = chunk.find(b"\n", i)
            piece = chunk[i:] if j < 0 else chunk[i:j]
            if dropping:
                dropped += len(piece)
            elif len(buf) + len(piece) > max_bytes:
                dropping, dropped = True, len(buf) + len(piece)
                buf.clear()
            else:
                buf += piece
            if j < 0:
                break
            yield Line(None, lineno, start, too_long=dropped) if dropping else Line(bytes(buf), lineno, start)
            start = pos + j + 1
            lineno += 1
            buf.clear()
            dropping, dropped = False, 0
            i = j + 1
        pos += len(chunk)
    if dropping:
        yield Line(None, lineno, start, too_long=dropped)
    elif buf:
        yield Line(bytes(buf), lineno, start)


def _safe_read(stream: BinaryIO, n: int) -> bytes | Exception:
    try:
        # read1: what one underlying read gives, so a truncated stream still yields all it can
        # (a plain read(n) on a cut .gz raises before returning the data it did decompress)
        reader = getattr(stream, "read1", None)
        return reader(n) if reader else stream.read(n)
    except (EOFError, OSError, ValueError, lzma.LZMAError) as exc:  # truncated or corrupt stream
        return exc
    except Exception as exc:  # zstandard.ZstdError and other codec errors
        return exc


def read_bounded(stream: BinaryIO, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of a whole file; True when there was more (the rest is never read)."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        return data[:max_bytes], True
    return data, False


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
_START, _UNQUOTED, _QUOTED, _QUOTE = range(4)  # at a field's start, in an unquoted one, in quotes, after a quote in quotes
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
        more = _safe_read(stream, len(BOM) - len(head))
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
        chunk, pending = (pending, b"") if pending else (_safe_read(stream, CHUNK), b"")
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
