"""extract/core/fs.py on local paths, file:// URIs and a local S3 (moto's server, tests/s3server.py)."""
from __future__ import annotations

import glob
import gzip
import os

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from extract.core import fs, listing
from tests.s3server import moto_endpoint, s3_bucket  # noqa: F401  (fixtures)

TREE = {  # relative path -> content
    "a.json": b"[1]",
    "b.jsonl": b'{"x": 1}\n',
    "c.txt": b"ccc",
    ".hidden.json": b"{}",
    "d1/x.txt": b"x1",
    "d1/y.json": b"yy1",
    "d2/x.txt": b"x22",
    "d2/deep/z.json": b"zzzz",
    "d2/deep/.dot/w.json": b"w",
    "e f/sp ace.txt": b"space",
}


@pytest.fixture(params=["local", "file_uri", "s3"])
def root(request, tmp_path) -> str:
    """A folder to work in, as a plain local path, a file:// URI or an s3:// URI."""
    if request.param == "local":
        return str(tmp_path / "root")
    if request.param == "file_uri":
        return "file://" + str(tmp_path / "root")
    return request.getfixturevalue("s3_bucket") + "/root"


def make_tree(base: str) -> None:
    for rel, data in TREE.items():
        fs.write_bytes_atomic(fs.join(base, rel), data)


def local_mirror(tmp_path) -> str:
    mirror = tmp_path / "mirror"
    for rel, data in TREE.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
    return str(mirror)


def table() -> pa.Table:
    return pa.table({"doc_id": ["a", "b", None], "n": pa.array([1, 2, 3], pa.int64())})


# --------------------------------------------------------------------------------- pure URIs

def test_join_keeps_scheme():
    assert fs.join("s3://bkt", "out", "part-0.parquet") == "s3://bkt/out/part-0.parquet"
    assert fs.join("s3://bkt/out/", "/docs", "x") == "s3://bkt/out/docs/x"
    assert fs.join("gs://bkt/a", "b") == "gs://bkt/a/b"
    assert fs.join("hdfs://nn:8020/data", "x.jsonl") == "hdfs://nn:8020/data/x.jsonl"
    assert fs.join("file:///tmp/out", "run.json") == "file:///tmp/out/run.json"
    assert fs.join("out/run1", "docs", "p.parquet") == os.path.join("out/run1", "docs", "p.parquet")
    assert fs.join("s3://bkt") == "s3://bkt"
    assert fs.parent("s3://bkt/a/b.json") == "s3://bkt/a"
    assert fs.parent("s3://bkt/a") == "s3://bkt"
    assert fs.parent("file:///tmp/x/y") == "file:///tmp/x"
    assert fs.parent("corpus/a.jsonl") == "corpus"
    assert fs.basename("s3://bkt/a/b.json") == "b.json"
    assert fs.basename("s3://bkt") == "bkt"
    assert fs.basename("corpus/a.jsonl") == "a.jsonl"


def test_is_local():
    assert fs.is_local("corpus/a.jsonl") and fs.is_local("/abs") and fs.is_local("file:///abs")
    assert not fs.is_local("s3://b/k") and not fs.is_local("gs://b/k") and not fs.is_local("hdfs://nn/p")
    assert fs.is_object_store("s3://b/k") and fs.is_object_store("gs://b") and not fs.is_object_store("/x")


def test_resolve_local_and_gs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f, p = fs.resolve("corpus/a.jsonl")
    assert isinstance(f, pafs.LocalFileSystem) and p == str(tmp_path / "corpus" / "a.jsonl")
    f, p = fs.resolve("file:///tmp/with%20space/x")
    assert isinstance(f, pafs.LocalFileSystem) and p == "/tmp/with space/x"
    with pytest.raises(ValueError, match="file:// URI names a local path"):
        fs.resolve("file://otherhost/x")
    g, p = fs.resolve("gs://some-bucket/a b/c.json")  # no request is made until a call needs one
    assert type(g).__name__ == "GcsFileSystem" and p == "some-bucket/a b/c.json"
    assert fs.resolve("gs://some-bucket/other")[0] is g  # cached per scheme + authority
    with pytest.raises(ValueError, match="bucket"):
        fs.resolve("s3:///key")


def test_glob_regex_matches_glob_glob(tmp_path, monkeypatch):
    mirror = local_mirror(tmp_path)
    patterns = ["*", "*.json", "**", "**/*.json", "*/x.txt", "d?/*", "d[12]/x.txt", "d[!1]/*", "**/deep/*",
                ".*", "**/.dot/*", "e f/*", "d2/**", "d2/**/*.json", "[ab].*", "nothing*", "*/*/*"]
    for pat in patterns:
        expected = sorted(os.path.relpath(p, mirror) for p in glob.glob(os.path.join(mirror, pat), recursive=True)
                          if os.path.isfile(p))
        got = sorted(rel for rel in TREE if listing.glob_regex(pat).fullmatch(rel))
        assert got == expected, pat
    # the relative form keeps paths relative, exactly as glob.glob gives them
    monkeypatch.chdir(mirror)
    assert [u for u, _ in listing.list_files("*.json")] == sorted(glob.glob("*.json"))
    assert [u for u, _ in listing.list_files("**/*.json")] == sorted(glob.glob("**/*.json", recursive=True))


def test_folder_order_is_os_walk_order(tmp_path):
    mirror = local_mirror(tmp_path)
    walked = []
    for dirpath, dirnames, filenames in os.walk(mirror):
        dirnames.sort()
        walked += [os.path.join(dirpath, n) for n in sorted(filenames)]
    assert [u for u, _ in listing.list_files(mirror)] == walked


# ------------------------------------------------------------------- every store: local, file://, s3

def test_bytes_text_size_exists(root):
    uri = fs.join(root, "sub", "a.bin")
    assert uri.startswith(root)
    assert not fs.exists(uri)
    fs.write_bytes_atomic(uri, b"hello\x00world")
    assert fs.read_bytes(uri) == b"hello\x00world"
    assert fs.size(uri) == 11
    assert fs.exists(uri) and fs.is_file(uri) and not fs.is_dir(uri)
    assert fs.is_dir(fs.join(root, "sub")) and not fs.is_file(fs.join(root, "sub"))
    fs.write_bytes_atomic(uri, "naïve €".encode())  # overwrite
    assert fs.read_text(uri) == "naïve €" and fs.size(uri) == len("naïve €".encode())
    fs.write_bytes_atomic(fs.join(root, "buf.bin"), pa.py_buffer(b"arrow"))
    assert fs.read_bytes(fs.join(root, "buf.bin")) == b"arrow"
    missing = fs.join(root, "nope.bin")
    for call in (fs.size, fs.read_bytes, fs.mtime_ns, fs.open_input):
        with pytest.raises(FileNotFoundError, match="nope.bin"):
            call(missing)
    assert not fs.exists(missing)
    with pytest.raises(IsADirectoryError, match="found a folder"):
        fs.size(fs.join(root, "sub"))


def test_mtime(root):
    uri = fs.join(root, "m.txt")
    fs.write_bytes_atomic(uri, b"m")
    m = fs.mtime_ns(uri)
    assert isinstance(m, int) and m > 0
    if fs.is_local(uri):
        assert m == os.stat(fs.resolve(uri)[1]).st_mtime_ns
    else:
        assert m % 1_000_000_000 == 0  # S3 LastModified: whole seconds


def test_parquet_round_trip(root):
    uri = fs.join(root, "docs", "part-000.parquet")
    fs.write_parquet_atomic(table(), uri)
    assert fs.read_parquet(uri).equals(table())
    assert fs.read_parquet(uri, columns=["n"]).column_names == ["n"]
    wider = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])
    assert fs.read_parquet(uri, schema=wider).schema.equals(wider)
    with fs.parquet_file(uri) as pf:
        assert pf.metadata.num_rows == 3
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        assert pf.read_row_group(0).equals(table())
    with pytest.raises(FileNotFoundError, match="part-404"):
        fs.read_parquet(fs.join(root, "docs", "part-404.parquet"))


def test_atomic_writes_leave_no_temp_files(root):
    folder = fs.join(root, "out")
    fs.write_bytes_atomic(fs.join(folder, "run.json"), b"{}")
    fs.write_parquet_atomic(table(), fs.join(folder, "part-1.parquet"))
    fs.write_parquet_atomic(table(), fs.join(folder, "part-1.parquet"))  # replace
    assert listing.listdir(folder) == ["part-1.parquet", "run.json"]
    # a write that fails midway leaves the old file whole, and no temporary file
    with pytest.raises(Exception):
        fs.write_parquet_atomic("not a table", fs.join(folder, "part-1.parquet"))  # type: ignore[arg-type]
    assert fs.read_parquet(fs.join(folder, "part-1.parquet")).equals(table())
    assert listing.listdir(folder) == ["part-1.parquet", "run.json"]


def test_list_folder(root, tmp_path):
    make_tree(fs.join(root, "tree"))
    got = listing.list_files(fs.join(root, "tree"))
    walked = [u for u, _ in listing.list_files(local_mirror(tmp_path))]  # os.walk order, checked above
    rels = [os.path.relpath(u, str(tmp_path / "mirror")) for u in walked]
    assert got == [(fs.join(root, "tree", rel), len(TREE[rel])) for rel in rels]
    assert listing.list_files(fs.join(root, "tree") + "/") == got  # a trailing slash makes no difference
    one = fs.join(root, "tree", "d1", "y.json")
    assert listing.list_files(one) == [(one, 3)]
    with pytest.raises(FileNotFoundError, match=r"input.path .*/missing matched no file"):
        listing.list_files(fs.join(root, "missing"), what="input.path")


def test_list_glob(root, tmp_path):
    base = fs.join(root, "tree")
    make_tree(base)
    mirror = local_mirror(tmp_path)
    for pat in ["*.json", "**/*.json", "d?/x.txt", "d[12]/*", "**/deep/*", "e f/*", "d2/**", "zzz*"]:
        expected = sorted(os.path.relpath(p, mirror) for p in glob.glob(os.path.join(mirror, pat), recursive=True)
                          if os.path.isfile(p))
        got = listing.list_files(fs.join(base, pat))
        assert got == [(fs.join(base, rel), len(TREE[rel])) for rel in expected], pat
        assert all(u.startswith(base + "/") for u, _ in got)
    assert listing.list_files(fs.join(root, "no-such-folder", "*.json")) == []


def test_open_input_seek_read(root):
    uri = fs.join(root, "lines.txt")
    data = b"".join(b"line %d\n" % i for i in range(1000))
    fs.write_bytes_atomic(uri, data)
    with fs.open_input(uri) as f:
        assert f.seekable() and f.readable()
        assert f.read(4) == b"line" and f.tell() == 4
        f.seek(len(data) - 9)
        assert f.read() == b"line 999\n" and f.read(10) == b""
        f.seek(7)
        assert f.readline() == b"line 1\n"
        chunk = f.read1(100)
        assert 0 < len(chunk) <= 100 and data[14:].startswith(chunk)
        f.seek(-9, os.SEEK_END)
        assert f.tell() == len(data) - 9
    assert f.closed
    gz = fs.join(root, "lines.txt.gz")
    fs.write_bytes_atomic(gz, gzip.compress(data))
    with fs.open_input(gz) as raw, gzip.GzipFile(fileobj=raw) as f:  # as extract/io/sources.py would wrap it
        assert f.read() == data


def test_delete_and_listdir(root):
    folder = fs.join(root, "d")
    fs.makedirs(fs.join(folder, "sub"))
    fs.write_bytes_atomic(fs.join(folder, "a.txt"), b"a")
    fs.write_bytes_atomic(fs.join(folder, "sub", "b.txt"), b"b")
    assert listing.listdir(folder) == ["a.txt", "sub"]
    fs.delete(fs.join(folder, "a.txt"))
    assert not fs.exists(fs.join(folder, "a.txt"))
    with pytest.raises(FileNotFoundError, match="a.txt"):
        fs.delete(fs.join(folder, "a.txt"))
    fs.delete(fs.join(folder, "a.txt"), missing_ok=True)
    fs.delete(fs.join(folder, "sub", "b.txt"))
    assert listing.list_files(folder) == []  # S3 may keep an empty "sub/" marker: a folder, never a file
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        listing.listdir(fs.join(root, "never"))
    fs.write_bytes_atomic(fs.join(folder, "f"), b"")
    with pytest.raises(NotADirectoryError):
        listing.listdir(fs.join(folder, "f"))


def test_makedirs(root):
    target = fs.join(root, "x", "y")
    fs.makedirs(target)
    fs.makedirs(target)  # idempotent
    if fs.is_local(target):
        assert fs.is_dir(target)
    fs.write_bytes_atomic(fs.join(target, "z"), b"z")
    assert fs.is_dir(target) and listing.listdir(fs.join(root, "x")) == ["y"]


# ------------------------------------------------------------------------------------------ S3 only

def test_s3_paths_and_endpoint_env(s3_bucket, moto_endpoint, monkeypatch):  # noqa: F811  (fixtures)
    bucket = s3_bucket.removeprefix("s3://")
    f, p = fs.resolve(f"{s3_bucket}/a b/c.json")
    assert isinstance(f, pafs.S3FileSystem) and p == f"{bucket}/a b/c.json"
    assert fs.resolve(s3_bucket)[1] == bucket and fs.resolve(s3_bucket + "/")[1] == bucket
    assert fs.resolve(f"{s3_bucket}/other")[0] is f  # cached
    fs.write_bytes_atomic(f"{s3_bucket}/a b/c.json", b"{}")
    assert fs.is_dir(s3_bucket) and listing.listdir(s3_bucket) == ["a b"]
    # AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    assert fs.read_bytes(f"{s3_bucket}/a b/c.json") == b"{}"
    # the cache follows the environment
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    g = fs.resolve(s3_bucket)[0]
    assert g is not f and g.region == "eu-west-1"
    assert fs.read_bytes(f"{s3_bucket}/a b/c.json") == b"{}"
    # a name ending in .gz is stored as given, never compressed again
    fs.write_bytes_atomic(f"{s3_bucket}/x.gz", b"not gzip")
    assert fs.size(f"{s3_bucket}/x.gz") == 8 and fs.read_bytes(f"{s3_bucket}/x.gz") == b"not gzip"
    with pytest.raises(ValueError, match="glob in the bucket"):
        listing.list_files("s3://buck*/x.json")
