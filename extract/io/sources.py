"""Input files: which ones, in which format and compression, and bounded line reading.

Paths are local paths or URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``), listed and opened
through extract/core/fs.py. Suffixes match case-insensitively (``NEWS.JSONL.GZ``); files under a
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
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

from extract.core import fs, listing
from extract.core.config import ConfigError
from extract.io.entries import NEVER_LISTED, odd_in_folder, odd_in_glob, with_odd_entries

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

    A spec is a local path or a URI (extract/core/fs.py): a folder lists every file below it in os.walk
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
                for full, why in with_odd_entries(found, odd_in_folder(spec) if local else [], spec):
                    if why is None:
                        add(full, spec)
                    else:
                        add_odd(full, spec, why)
            elif globbed:
                root = os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."
                found = [full for full, _ in listing.list_files(spec, what="input.path")]
                for full, why in with_odd_entries(found, odd_in_glob(spec, found), None):
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
        more = (f" ({out.skipped} file(s) skipped for their suffix or as not regular files, "
                f"e.g. {out.skipped_examples[0]})" if out.skipped else "")
        raise ConfigError(f"input.path: {list(paths)} matched no readable input file{more}; "
                          f"known suffixes: {_known()}.")
    return out


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
    """A local path or a URI (extract/core/fs.py), decompressed by ``compression``."""
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
            more = safe_read(stream, len(BOM) - len(head))
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
        chunk, pending = (pending, b"") if pending else (safe_read(stream, CHUNK), b"")
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


def safe_read(stream: BinaryIO, n: int) -> bytes | Exception:
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
