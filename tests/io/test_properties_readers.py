"""Property tests of the input readers: plan() + read_shard never raise, every input record comes
out exactly once (ok, error or skipped), text is sanitised with offsets unchanged.

Files are written into fresh temporary folders per example (function-scoped tmp_path does not mix
with @given). ``extract.io.sources.CHUNK`` is patched to tiny sizes in some examples so that lines,
byte order marks and compressed frames straddle read boundaries.
"""
from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import json
import lzma
import os
import tempfile
import zlib
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from extract.io import sources
from extract.core.job_config import InputConfig
from extract.core.types import Record
from extract.io.readers import read_shard
from extract.io.records import max_line_bytes
from extract.io.plan import plan

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
BOM = b"\xef\xbb\xbf"
SUFFIX = {None: "", "gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}
COMPRESSIONS = list(SUFFIX)
CHUNKS = [None, None, 1, 2, 3, 5, 64]  # None: the real CHUNK


# --- helpers -----------------------------------------------------------------------------------

def compress_one(data: bytes, comp: str | None) -> bytes:
    if comp is None:
        return data
    if comp == "gzip":
        return gzip.compress(data, mtime=0)
    if comp == "bz2":
        return bz2.compress(data)
    if comp == "xz":
        return lzma.compress(data)
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def compress(data: bytes, comp: str | None, cuts: list[int] = ()) -> bytes:
    """``data`` compressed; with ``cuts``, as concatenated members/frames/streams."""
    if comp is None:
        return data
    points = sorted({min(max(c, 0), len(data)) for c in cuts})
    pieces, prev = [], 0
    for p in points + [len(data)]:
        pieces.append(data[prev:p])
        prev = p
    return b"".join(compress_one(p, comp) for p in pieces)


def chunk_patch(chunk: int | None):
    return mock.patch.object(sources, "CHUNK", chunk) if chunk else contextlib.nullcontext()


def read_all(cfg: InputConfig) -> list[Record]:
    shards, _ = plan(cfg)
    out: list[Record] = []
    for shard in shards:
        out.extend(read_shard(shard, cfg))
    return out


def utf8_ok(s: str | None) -> bool:
    if s is None:
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_record(rec: Record) -> None:
    """Every record, good or bad, can be written out (pyarrow strings are UTF-8)."""
    assert isinstance(rec, Record)
    for name in ("doc_id", "text", "source", "error", "warning"):
        assert utf8_ok(getattr(rec, name)), f"{name} holds a lone surrogate: {getattr(rec, name)!r}"
    if rec.error is None:
        assert rec.status is None and isinstance(rec.text, str) and isinstance(rec.doc_id, str)
    else:
        assert isinstance(rec.error, str) and rec.error.strip() and rec.text is None
        assert rec.status in (None, "skipped")


def is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF


def clean(text: str) -> str:
    return "".join("\ufffd" if is_surrogate(c) else c for c in text)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def jsonl_line(obj, mode: str) -> bytes:
    """One JSON line. ascii: \\uXXXX escapes; utf8: raw UTF-8, a lone surrogate written as its JSON
    escape (UTF-8 cannot hold one); surrogatepass: raw surrogates, so the line is not UTF-8."""
    if mode == "ascii":
        return json.dumps(obj, ensure_ascii=True).encode("ascii")
    s = json.dumps(obj, ensure_ascii=False)
    return s.encode("utf-8", "backslashreplace" if mode == "utf8" else "surrogatepass")


# --- strategies --------------------------------------------------------------------------------

surrogate = st.integers(0xD800, 0xDFFF).map(chr)
SPECIAL = ["\x00", "\r\n", "\r", "\n", "\t", " ", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\ufeff",
           "\ufffd", "\u200f", "\u202e", "\u0301", "\u0308", "\u20dd", "מרחבא", "مرحبا", "😀", "👨\u200d👩\u200d👧",
           "北京", "\ud83d", "\ude00", '"', "'", ",", "\\", "\\u0041", "\\ud800", "é", "\xa0", "\u3000",
           "\x80", "\x9f", "\U0010ffff", "Reuters", "said"]
piece = st.one_of(
    st.sampled_from(SPECIAL), st.sampled_from(SPECIAL),
    surrogate,
    st.text("abc XYZ", min_size=1, max_size=8),
    st.characters(exclude_categories=()),  # any code point, surrogates included
)
texts = st.lists(piece, max_size=16).map("".join)
any_text = st.one_of(texts, st.text(st.characters(exclude_categories=()), max_size=20))

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)
json_values = st.recursive(
    json_scalar,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(any_text, kids, max_size=3)),
    max_leaves=8,
)
ids = st.one_of(any_text, st.integers(), st.none(), st.booleans(), st.floats(), st.just(""), st.just(" \u3000"),
                st.lists(st.integers(), max_size=2))
text_values = st.one_of(any_text, any_text, st.none(), st.integers(), st.lists(any_text, max_size=2))
records = st.one_of(
    st.fixed_dictionaries({"id": ids, "text": text_values}, optional={"other": json_values}),
    st.fixed_dictionaries({"id": ids}, optional={"txt": text_values, "\ud800id": st.integers()}),
    st.fixed_dictionaries({"text": text_values}, optional={"i\udc80d": st.integers(), "Text": any_text}),
    json_values,
)

LINE_PIECES = [b"\n", b"\n", b"\r\n", b" ", b"\t\n", b"\n\n", b"{}", b"[]", b"null", b'{"id":1,"text":"a"}',
               b'{"id":"x","text":"\\ud800"}', b'{"id":"x"', BOM, b"\xff", b"\xed\xa0\x80", b"\xe2\x80\xa8",
               b"[", b'"', b"\\", b"\x00", b"\x81\x8d"]
random_bytes = st.lists(st.one_of(st.binary(max_size=16), st.sampled_from(LINE_PIECES)), max_size=30).map(b"".join)


def line_starts(data: bytes) -> list[int]:
    """Byte offset of each line (a JSON-lines record's source is ``file@offset``); a leading BOM
    is not part of the first line."""
    starts, pos = [], len(BOM) if data.startswith(BOM) else 0
    for line in (data[pos:] if pos else data).split(b"\n"):
        starts.append(pos)
        pos += len(line) + 1
    return starts


def as_json(value):
    """The value a JSON line holds: an escaped surrogate pair is one astral character there."""
    return json.loads(json.dumps(value))


def expected_record(value):
    """('ok', doc_id, text) or ('error',) for one parsed JSON value, per the reader's contract."""
    if not isinstance(value, dict):
        return ("error",)
    raw_id = value.get("id")
    if isinstance(raw_id, str):
        raw_id = clean(raw_id)
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        return ("error",)
    if isinstance(raw_id, (bool, float, list, dict)):
        return ("error",)
    if "text" not in value:
        return ("error",)
    text = value["text"]
    if text is None:
        text = ""
    elif not isinstance(text, str):
        return ("error",)
    return ("ok", str(raw_id), clean(text))


# --- 1. random bytes: one record per non-blank line, whatever the shard size ---------------------

@settings(max_examples=120, **SETTINGS)
@given(data=random_bytes, comp=st.sampled_from(COMPRESSIONS), shard_size=st.integers(1, 10),
       chunk=st.sampled_from(CHUNKS), cuts=st.lists(st.integers(0, 400), max_size=2), upper=st.booleans())
@example(data=b"[" * 100_000 + b"\n" + b'{"id":1,"text":"a"}\n', comp=None, shard_size=1, chunk=None, cuts=[],
         upper=False)
@example(data=BOM + b"\n" + b'{"id":1,"text":"a"}', comp="gzip", shard_size=1, chunk=None, cuts=[1, 2], upper=False)
@example(data=BOM + b"\n" + b'{"id":1,"text":"a"}', comp="zstd", shard_size=1, chunk=1, cuts=[], upper=False)
def test_random_bytes_one_record_per_nonblank_line(data, comp, shard_size, chunk, cuts, upper):
    lines = data.split(b"\n")
    if lines[0].startswith(BOM):
        lines[0] = lines[0][len(BOM):]
    want = [i + 1 for i, line in enumerate(lines) if line.strip()]
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        name = "in.jsonl" + SUFFIX[comp]
        path = os.path.join(tmp, name.upper() if upper else name)
        write(path, compress(data, comp, cuts))
        cfg = InputConfig(path=(path,), shard_size=shard_size, shard_bytes=shard_size * 7)  # random byte splits
        recs = read_all(cfg)
    for rec in recs:
        check_record(rec)
    starts = line_starts(data)
    assert [r.source for r in recs] == [f"{path}@{starts[n - 1]}" for n in want]


# --- 2. random JSON values: the right record for each, text sanitised, same length ---------------

@settings(max_examples=150, **SETTINGS)
@given(values=st.lists(records, min_size=1, max_size=8),
       modes=st.lists(st.sampled_from(["ascii", "utf8", "surrogatepass"]), min_size=8, max_size=8),
       comp=st.sampled_from(COMPRESSIONS), shard_size=st.integers(1, 10), chunk=st.sampled_from(CHUNKS))
def test_json_values(values, modes, comp, shard_size, chunk):
    lines = [jsonl_line(v, m) for v, m in zip(values, modes)]
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        path = os.path.join(tmp, "in.jsonl" + SUFFIX[comp])
        write(path, compress(b"\n".join(lines) + b"\n", comp))
        recs = read_all(InputConfig(path=(path,), shard_size=shard_size, shard_bytes=shard_size * 11))
    starts = line_starts(b"\n".join(lines) + b"\n")
    assert len(recs) == len(values)
    for n, (rec, value, line) in enumerate(zip(recs, values, lines), 1):
        check_record(rec)
        value = as_json(value)
        assert rec.source == f"{path}@{starts[n - 1]}"
        try:
            line.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
            # the cp1252 fallback: what the reader must have parsed
            assert rec.warning and "cp1252" in rec.warning
            try:
                value = json.loads(line.decode("cp1252", errors="replace"))
            except ValueError:
                value = None  # an error record
        want = expected_record(value)
        if want[0] == "ok":
            assert rec.error is None, rec.error
            assert rec.doc_id == want[1]
            assert rec.text == want[2]
            if utf8:
                assert len(rec.text) == len(value["text"] or "")
        else:
            assert rec.error is not None and rec.text is None


@pytest.mark.parametrize("depth", [10, 900, 990, 1000, 5000, 200_000])
@pytest.mark.parametrize("where", ["top", "id", "text"])
def test_deeply_nested_json_is_one_error_record(depth, where):
    nested = "[" * depth + "]" * depth
    bad = {"top": nested, "id": '{"id": %s, "text": "a"}' % nested, "text": '{"id": 1, "text": %s}' % nested}[where]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "deep.jsonl")
        write(path, b'{"id":"a","text":"x"}\n' + bad.encode() + b'\n{"id":"b","text":"y"}\n')
        recs = read_all(InputConfig(path=(path,)))
    for rec in recs:
        check_record(rec)
    assert [r.doc_id for r in recs if r.error is None] == ["a", "b"]
    assert len(recs) == 3 and recs[1].error


# --- 3. hostile texts round-trip through every format --------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(items=st.lists(texts, max_size=12), mode=st.sampled_from(["ascii", "utf8"]), bom=st.booleans(),
       comp=st.sampled_from(COMPRESSIONS), shard_size=st.integers(1, 10), chunk=st.sampled_from(CHUNKS))
def test_texts_jsonl(items, mode, bom, comp, shard_size, chunk):
    data = b"".join(jsonl_line({"id": f"d{i}", "text": t}, mode) + b"\n" for i, t in enumerate(items))
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        path = os.path.join(tmp, "in.jsonl" + SUFFIX[comp])
        write(path, compress((BOM if bom else b"") + data, comp))
        recs = read_all(InputConfig(path=(path,), shard_size=shard_size))
    for rec in recs:
        check_record(rec)
        assert rec.error is None, rec.error
    assert [(r.doc_id, r.text) for r in recs] == [(f"d{i}", clean(as_json(t))) for i, t in enumerate(items)]


@settings(max_examples=60, **SETTINGS)
@given(items=st.lists(texts, max_size=12), crlf=st.booleans(), bom=st.booleans(),
       comp=st.sampled_from(COMPRESSIONS), chunk=st.sampled_from(CHUNKS))
def test_texts_csv(items, crlf, bom, comp, chunk):
    written = [clean(t) for t in items]  # UTF-8 cannot hold a lone surrogate
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        path = os.path.join(tmp, "in.csv" + SUFFIX[comp])
        raw = os.path.join(tmp, "raw.csv")
        with open(raw, "w", encoding="utf-8", newline="") as f:
            # with "\n" line ends csv.writer does not quote a lone "\r": quote every field then
            w = csv.writer(f, lineterminator="\r\n" if crlf else "\n",
                           quoting=csv.QUOTE_MINIMAL if crlf else csv.QUOTE_ALL)
            w.writerow(["id", "text"])
            for i, t in enumerate(written):
                w.writerow([f"d{i}", t])
        with open(raw, "rb") as f:
            data = f.read()
        write(path, compress((BOM if bom else b"") + data, comp))
        recs = read_all(InputConfig(path=(path,), shard_size=3))
    for rec in recs:
        check_record(rec)
        assert rec.error is None, rec.error
    assert [(r.doc_id, r.text) for r in recs] == [(f"d{i}", t) for i, t in enumerate(written)]


@settings(max_examples=40, **SETTINGS)
@given(items=st.lists(st.tuples(texts, st.booleans(), st.sampled_from(COMPRESSIONS)), max_size=10),
       shard_size=st.integers(1, 10))
def test_texts_txt_folder(items, shard_size):
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "docs")
        os.makedirs(folder)
        want = []
        for i, (t, bom, comp) in enumerate(items):
            name = f"{i:03d}.txt" + SUFFIX[comp]
            c = clean(t)
            write(os.path.join(folder, name), compress((BOM if bom else b"") + c.encode("utf-8"), comp))
            want.append((name, c if bom else c.removeprefix("\ufeff")))
        write(os.path.join(folder, "notes.md"), b"not an input")
        if not items:
            return
        recs = read_all(InputConfig(path=(folder,), shard_size=shard_size))
    for rec in recs:
        check_record(rec)
        assert rec.error is None, rec.error
    assert [(r.doc_id, r.text) for r in recs] == want


@settings(max_examples=30, **SETTINGS)
@given(items=st.lists(st.one_of(texts, st.none()), min_size=1, max_size=25), shard_size=st.integers(1, 10),
       group=st.integers(1, 8), int_ids=st.booleans())
def test_texts_parquet(items, shard_size, group, int_ids):
    import pyarrow as pa
    import pyarrow.parquet as pq

    stored = [None if t is None else "".join(c for c in t if not is_surrogate(c)) for t in items]
    ids_ = list(range(len(stored))) if int_ids else [f"d{i}" for i in range(len(stored))]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.parquet")
        pq.write_table(pa.table({"id": ids_, "text": pa.array(stored, pa.string())}), path, row_group_size=group)
        recs = read_all(InputConfig(path=(path,), shard_size=shard_size))
    for rec in recs:
        check_record(rec)
        assert rec.error is None, rec.error
    assert [(r.doc_id, r.text) for r in recs] == [(str(i), t or "") for i, t in zip(ids_, stored)]


# --- 4. a truncated file: a prefix of the records, then one error saying where -------------------

def recovered_gzip(blob: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return d.decompress(blob)
    except zlib.error:
        return b""


@settings(max_examples=80, **SETTINGS)
@given(items=st.lists(texts, min_size=1, max_size=15), comp=st.sampled_from(["gzip", "gzip", "bz2", "xz", "zstd"]),
       chunk=st.sampled_from(CHUNKS), data=st.data())
def test_truncated_file(items, comp, chunk, data):
    lines = [jsonl_line({"id": f"d{i}", "text": t}, "ascii") + b"\n" for i, t in enumerate(items)]
    full = compress(b"".join(lines), comp)
    cut = data.draw(st.integers(0, len(full)), label="cut")
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        path = os.path.join(tmp, "in.jsonl" + SUFFIX[comp])
        write(path, full[:cut])
        recs = read_all(InputConfig(path=(path,), shard_size=2))
    for rec in recs:
        check_record(rec)
    ok = [r for r in recs if r.error is None]
    errors = recs[len(ok):]
    assert [(r.doc_id, r.text) for r in ok] == [(f"d{i}", clean(as_json(t))) for i, t in enumerate(items)][:len(ok)]
    assert len(errors) <= 1
    if 0 < cut < len(full):
        assert len(errors) == 1, "a truncated file must say so"
    if cut == len(full):
        assert len(ok) == len(items) and not errors
    if errors:
        assert "ends early or is corrupt" in errors[0].error and "at byte" in errors[0].error
    if comp == "gzip":  # every complete line the cut left must have been read
        complete = recovered_gzip(full[:cut]).count(b"\n")
        assert len(ok) == complete


# --- 5. a line over the limit: one skipped record, the rest intact --------------------------------

@settings(max_examples=30, **SETTINGS)
@given(n=st.integers(0, 6), data=st.data(), comp=st.sampled_from(COMPRESSIONS), chunk=st.sampled_from([None, 7, 4096]),
       shard_size=st.integers(1, 10), junk=st.booleans(), trailing=st.booleans())
def test_over_long_line_is_one_skipped_record(n, data, comp, chunk, shard_size, junk, trailing):
    cfg = InputConfig(max_chars=50, shard_size=shard_size)
    limit = max_line_bytes(cfg)
    extra = data.draw(st.integers(1, 3000), label="extra")
    where = data.draw(st.integers(0, n), label="where")
    short = data.draw(st.lists(st.text(max_size=50), min_size=n, max_size=n), label="short")
    if junk:
        long = bytes(b % 255 + 1 if b % 255 + 1 != 10 else 32 for b in range(limit + extra))
    else:
        long = json.dumps({"id": "long", "text": "x" * (limit + extra)}).encode()
    assert len(long) > limit
    lines = [jsonl_line({"id": f"d{i}", "text": t}, "utf8") for i, t in enumerate(short)]
    lines.insert(where, long)
    with tempfile.TemporaryDirectory() as tmp, chunk_patch(chunk):
        path = os.path.join(tmp, "in.jsonl" + SUFFIX[comp])
        write(path, compress(b"\n".join(lines) + (b"\n" if trailing else b""), comp))
        recs = read_all(InputConfig(path=(path,), max_chars=50, shard_size=shard_size, shard_bytes=shard_size * 13))
    starts = line_starts(b"\n".join(lines))
    for rec in recs:
        check_record(rec)
    assert len(recs) == n + 1
    skipped = recs[where]
    assert skipped.status == "skipped" and "max_chars" in skipped.error and skipped.source == f"{path}@{starts[where]}"
    rest = recs[:where] + recs[where + 1:]
    assert all(r.error is None for r in rest)
    assert [(r.doc_id, r.text) for r in rest] == [(f"d{i}", t) for i, t in enumerate(short)]
