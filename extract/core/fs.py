"""One small filesystem layer: every input, output and model path may be a local path or a URI
(``file://``, ``s3://``, ``gs://``/``gcs://``, ``hdfs://``), read and written through pyarrow.fs.

Plain functions over strings. A "uri" below is either a local path (relative paths stay relative
in what these functions return) or ``scheme://authority/path``. Object-store keys are taken as
written (no percent-decoding; spaces are fine); ``file://`` URIs are percent-decoded.

- ``resolve`` maps a uri to ``(filesystem, path)``: a LocalFileSystem and an absolute path, or a
  cached filesystem per scheme + authority (+ the S3 settings in the environment) and the path that
  filesystem expects (``bucket/key`` on object stores, ``/path`` on HDFS).
- S3 honours the standard environment: credentials through the AWS default chain
  (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
  ``~/.aws``, instance roles), ``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_NO_SIGN_REQUEST=YES``,
  and an endpoint override from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (an S3-compatible
  server such as MinIO or moto; ``http://`` endpoints use plain HTTP).
- Writes are atomic: on a local disk (and HDFS) through a temporary ``.<name>.tmp`` in the same
  folder and a rename; on an object store the bytes are complete in memory first and go up in one
  upload, which only becomes visible when it completes.
- Bytes are stored and read as they are: pyarrow's open_input_stream/open_output_stream would
  (de)compress by the name's suffix (".gz", ".bz2", ".zst"), so these calls pass compression=None.
- Object stores have no folders: a "folder" is a key prefix, ``makedirs`` does nothing there, and
  pyarrow reports no modification time for prefixes (``mtime_ns`` is None). Deleting a file can
  leave an empty "folder/" marker behind (extract/core/listing.py lists files, folders and globs).
- ``stat`` gives a file's (size, mtime_ns) in one lookup; compare stamps only with stamps from the
  same call (a listing may give an object store's times at another precision).
- ``download`` streams one file to a local path atomically (the model cache, extract/model/files.py).
- A ``pathlib.Path`` is accepted wherever a uri is and taken as the local path it names.
"""
from __future__ import annotations

import atexit
import errno
import io
import os
import posixpath
import re
import threading
from typing import BinaryIO, Callable, Iterable, Union
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

__all__ = [
    "resolve", "is_local", "is_object_store", "join", "parent", "basename", "exists", "is_file", "is_dir",
    "size", "mtime_ns", "open_input", "read_bytes", "read_text", "write_bytes_atomic", "write_local_atomic",
    "write_parquet_atomic", "read_parquet", "parquet_file", "delete", "makedirs", "clear_cache",
    "split", "stat", "download", "LOCAL",
]

Bytes = Union[bytes, bytearray, memoryview, pa.Buffer]
Uri = Union[str, "os.PathLike[str]"]  # a pathlib.Path is taken as the local path it names

OBJECT_STORES = frozenset({"s3", "gs", "gcs"})  # scheme://bucket/key; no folders, a PUT is atomic
READ_BUFFER = 1 << 20  # remote reads: one ranged GET per MiB, however small the caller's reads

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
LOCAL = pafs.LocalFileSystem()
_cache: dict[tuple, pafs.FileSystem] = {}
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------- URIs

def _split(uri: Uri) -> tuple[str, str, str]:
    """(scheme, authority, path); scheme is "" for a local path (which is then the whole path)."""
    uri = os.fspath(uri)
    m = _URI.match(uri)
    if not m or len(m[1]) == 1:  # no scheme, or a Windows drive letter
        return "", "", uri
    authority, slash, path = m[2].partition("/")
    return m[1].lower(), authority, slash + path


def split(uri: Uri) -> tuple[str, str, str]:
    """``(scheme, authority, path)`` without touching any filesystem: ``("s3", "bkt", "/a/b")`` for
    ``s3://bkt/a/b``; ``("", "", uri)`` for a local path. The scheme is lower-cased."""
    return _split(uri)


def is_local(uri: str) -> bool:
    """A local path or a ``file://`` URI."""
    return _split(uri)[0] in ("", "file")


def is_object_store(uri: str) -> bool:
    return _split(uri)[0] in OBJECT_STORES


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended by "/", scheme kept. Local paths join like os.path.join;
    in a URI a part's leading "/" is dropped (it never replaces the bucket)."""
    uri = os.fspath(uri)
    if not parts:
        return uri
    if _split(uri)[0] == "":
        return os.path.join(uri, *parts)
    out = uri
    for part in parts:
        part = part.lstrip("/")
        if part:
            out = (out if out.endswith("/") else out + "/") + part
    return out


def parent(uri: str) -> str:
    """The folder holding ``uri``, in the same form ("" for a bare relative name, as os.path.dirname)."""
    uri = os.fspath(uri)
    scheme, _, path = _split(uri)
    if scheme == "":
        return os.path.dirname(uri.rstrip("/")) if uri.rstrip("/") else uri
    if not path.strip("/"):
        return uri
    folder = posixpath.dirname(path.rstrip("/"))
    return uri[: len(uri) - len(path)] + ("" if folder == "/" and scheme != "file" else folder)


def basename(uri: str) -> str:
    uri = os.fspath(uri)
    scheme, authority, path = _split(uri)
    return posixpath.basename((path if scheme else uri).rstrip("/")) or authority


# ---------------------------------------------------------------------------------- filesystems

def clear_cache() -> None:
    """Forget cached filesystems (they are also keyed by the S3 environment, so tests that change
    it need not call this)."""
    with _lock:
        _cache.clear()


atexit.register(clear_cache)  # drop S3 clients before pyarrow finalizes its S3 subsystem at exit


def _s3_env() -> tuple[str | None, str | None, bool]:
    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    anonymous = env.get("AWS_NO_SIGN_REQUEST", "").strip().lower() in ("1", "true", "yes")
    return endpoint, region, anonymous


def _make_s3(bucket: str, endpoint: str | None, region: str | None, anonymous: bool) -> pafs.FileSystem:
    if endpoint:
        u = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        if not u.netloc:
            raise ValueError(f"AWS_ENDPOINT_URL(_S3) {endpoint!r} is not a URL; expected e.g. http://127.0.0.1:9000")
        # An S3-compatible server: path-style requests to it, any region (most ignore it).
        return pafs.S3FileSystem(endpoint_override=u.netloc + u.path.rstrip("/"), scheme=u.scheme or "https",
                                 region=region or "us-east-1", anonymous=anonymous)
    if region:
        return pafs.S3FileSystem(region=region, anonymous=anonymous)
    # No region configured: let pyarrow look up the bucket's region.
    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}" + ("?anonymous=true" if anonymous else ""))
    return fs


def _filesystem(scheme: str, authority: str) -> pafs.FileSystem:
    key: tuple = (scheme, authority)
    if scheme == "s3":
        key += _s3_env()
    with _lock:
        fs = _cache.get(key)
        if fs is None:
            try:
                fs = _make_s3(authority, *key[2:]) if scheme == "s3" else \
                    pafs.FileSystem.from_uri(f"{scheme}://{authority}")[0]
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise OSError(f"cannot open the {scheme}:// filesystem for {scheme}://{authority}: {exc}") from exc
            _cache[key] = fs
        return fs


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or URI; local paths come back absolute."""
    scheme, authority, path = _split(uri)
    if scheme == "":
        return LOCAL, os.path.abspath(os.path.expanduser(uri))
    if scheme == "file":
        if authority not in ("", "localhost"):
            raise ValueError(f"{uri}: a file:// URI names a local path (file:///abs/path), not host {authority!r}")
        return LOCAL, os.path.abspath(unquote(path) or "/")
    if not authority:
        raise ValueError(f"{uri}: expected {scheme}://<bucket or host>/<path>")
    fs = _filesystem(scheme, authority)
    if scheme in OBJECT_STORES:
        key = path.strip("/")
        return fs, f"{authority}/{key}" if key else authority
    if scheme in ("hdfs", "viewfs"):
        return fs, path.rstrip("/") or "/"
    fs, fpath = pafs.FileSystem.from_uri(uri)  # another scheme pyarrow knows: trust its own parsing
    return fs, fpath


# ---------------------------------------------------------------------------------------- info

def _info(uri: str) -> pafs.FileInfo:
    fs, path = resolve(uri)
    return fs.get_file_info(path)


def _not_found(uri: str, expected: str = "a file") -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, f"expected {expected} at {uri}, found nothing there")


def exists(uri: str) -> bool:
    return _info(uri).type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    return _info(uri).type == pafs.FileType.File


def is_dir(uri: str) -> bool:
    """A folder; on an object store, a bucket or a prefix that some key starts with."""
    return _info(uri).type == pafs.FileType.Directory


def _file_info(uri: str) -> pafs.FileInfo:
    info = _info(uri)
    if info.type == pafs.FileType.NotFound:
        raise _not_found(uri)
    if info.type != pafs.FileType.File:
        raise IsADirectoryError(errno.EISDIR, f"expected a file at {uri}, found a folder")
    return info


def size(uri: str) -> int:
    return int(_file_info(uri).size)


def mtime_ns(uri: str) -> int | None:
    """Modification time in ns (S3: whole seconds, from LastModified); None where the store has none."""
    m = _file_info(uri).mtime_ns
    return int(m) if m is not None else None


def stat(uri: str) -> tuple[int, int | None]:
    """``(size, mtime_ns)`` of a file in one call (one request on a remote store). Local files: the
    builtin os.stat (symlinks followed). Compare stamps only with stamps from this same call: a
    listing may report an object store's times at another precision than a lookup of one key."""
    fs, path = resolve(uri)
    if fs is LOCAL:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    info = _file_info(uri)
    return int(info.size), (int(info.mtime_ns) if info.mtime_ns is not None else None)


# ------------------------------------------------------------------------------------- reading

def open_input(uri: str, buffer_size: int = READ_BUFFER) -> BinaryIO:
    """A seekable binary file (read, read1, readline, seek, tell, close, with-statement). Local:
    the builtin file; remote: pyarrow's random-access file behind an io.BufferedReader, so small
    reads do not each cost a request."""
    fs, path = resolve(uri)
    if fs is LOCAL:
        return open(path, "rb")
    try:
        raw = fs.open_input_file(path)
    except FileNotFoundError as exc:
        raise _not_found(uri) from exc
    return io.BufferedReader(raw, buffer_size)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    if fs is LOCAL:
        with open(path, "rb") as f:
            return f.read()
    try:
        with fs.open_input_stream(path, compression=None) as f:
            return f.read()
    except FileNotFoundError as exc:
        raise _not_found(uri) from exc


def read_text(uri: str, encoding: str = "utf-8") -> str:
    return read_bytes(uri).decode(encoding)


def read_parquet(uri: str, columns: list[str] | None = None, schema: pa.Schema | None = None) -> pa.Table:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise _not_found(uri, "a Parquet file")
    return pq.read_table(path, filesystem=fs, columns=columns, schema=schema)


def parquet_file(uri: str) -> pq.ParquetFile:
    """A ParquetFile that owns its source (use it in a with-statement or close() it)."""
    fs, path = resolve(uri)
    try:
        return pq.ParquetFile(path, filesystem=fs)
    except FileNotFoundError as exc:
        raise _not_found(uri, "a Parquet file") from exc


# ------------------------------------------------------------------------------------- writing

def _tmp_name(path: str) -> str:
    """``.<name>.<pid>-<random>.tmp`` beside ``path``: this writer's own, so two writers of one file
    (two jobs, two workers) never write, rename or delete each other's temporary file."""
    name = f".{posixpath.basename(path)}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
    return posixpath.join(posixpath.dirname(path), name)


def write_local_atomic(path: str, write: Callable[[str], object]) -> None:
    """The one temp-file-then-rename writer for local files: ``write(tmp)`` fills a temporary file
    in ``path``'s folder (created if missing), then it is renamed over ``path``, so a reader sees
    the old file or the whole new one; the temporary file never outlives a failure. The temporary
    name is this writer's own (``_tmp_name``), so concurrent writers of one file never collide."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, os.path.basename(_tmp_name(path)))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes_atomic(uri: str, data: Bytes) -> None:
    """Readers see the old file or the whole new one, never part of it."""
    fs, path = resolve(uri)
    if fs is LOCAL:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(data)
        write_local_atomic(path, write)
    elif _split(uri)[0] in OBJECT_STORES:
        with fs.open_output_stream(path, compression=None) as out:  # visible only once the upload completes
            out.write(data)
    else:  # HDFS and the like: a temporary name, then a rename
        _write_store_atomic(fs, path, lambda out: out.write(data))


def _write_store_atomic(fs: pafs.FileSystem, path: str, fill: Callable[[BinaryIO], object]) -> None:
    """A non-local store: ``fill(stream)`` writes a temporary name beside ``path``, which is then
    moved over it; the temporary file is removed on a failure."""
    fs.create_dir(posixpath.dirname(path), recursive=True)
    tmp = _tmp_name(path)
    try:
        with fs.open_output_stream(tmp, compression=None) as out:
            fill(out)
        fs.move(tmp, path)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:
            pass
        raise


def write_parquet_atomic(table: pa.Table, uri: str) -> None:
    """A zstd Parquet file, written atomically (see write_bytes_atomic)."""
    fs, path = resolve(uri)
    if fs is LOCAL:
        write_local_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return
    buf = pa.BufferOutputStream()  # complete before anything goes up: a failed write uploads nothing
    pq.write_table(table, buf, compression="zstd")
    write_bytes_atomic(uri, buf.getvalue())


def write_parquet_stream_atomic(tables: Iterable[pa.Table], schema: pa.Schema, uri: str) -> None:
    """Tables appended as row groups of one zstd Parquet file, written atomically, holding one table
    at a time in memory (a shard assembled from its pieces): local files by ``write_local_atomic``,
    other stores by a temporary name and a move, so a failed write never shows a partial file."""
    fs, path = resolve(uri)

    def fill(sink) -> None:
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            for t in tables:
                writer.write_table(t.cast(schema) if t.schema != schema else t)

    if fs is LOCAL:
        write_local_atomic(path, fill)
    else:
        _write_store_atomic(fs, path, fill)


def delete(uri: str, missing_ok: bool = False) -> None:
    """Delete one file. (On S3 pyarrow then writes an empty "folder/" marker object so the prefix
    still "exists"; it is listed as a folder, never as a file.)"""
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        if not missing_ok:
            raise _not_found(uri) from None


def download(uri: str, local_path: str, chunk: int = 8 << 20) -> None:
    """Copy one file to a local path, streamed (never whole in memory) and atomic: a temporary name
    unique to this process in the same folder, then a rename, so concurrent downloaders of the same
    file (workers on one node) each see it whole or not at all."""
    import shutil

    fs, path = resolve(uri)
    local_path = os.path.abspath(local_path)
    try:
        src = open(path, "rb") if fs is LOCAL else fs.open_input_stream(path, compression=None)
    except FileNotFoundError as exc:
        raise _not_found(uri) from exc

    def write(tmp: str) -> None:
        with src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, chunk)

    write_local_atomic(local_path, write)


def makedirs(uri: str) -> None:
    """Create a folder and its parents; nothing to do on object stores."""
    scheme = _split(uri)[0]
    if scheme in OBJECT_STORES:
        return
    fs, path = resolve(uri)
    if fs is LOCAL:
        os.makedirs(path, exist_ok=True)
    else:
        fs.create_dir(path, recursive=True)
