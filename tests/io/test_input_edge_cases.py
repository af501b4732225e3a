"""Input edge cases a user found: a CSV field far over input.max_chars, CSV files with CR-only
(classic Mac) line ends, and text folders holding FIFOs and dangling symlinks.

The principle throughout: a bad record never kills a job or takes other records with it; it is
one row (`skipped` or `error`) with the reason, or a counted skipped file; never a record that
was not in the file. Unit-level through plan() + read_shard, and end to end through the CLI.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import signal
from pathlib import Path
from unittest import mock

import pytest

from extract.core.config import ConfigError
from extract.core.job_config import InputConfig
from extract.io import sources
from extract.io.plan import plan, probe_columns
from extract.io.readers import read_shard
from extract.io.records import max_line_bytes
from tests.helpers import common, run_cli, tables

EOLS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
LONG_LINES = 12_000


@contextlib.contextmanager
def deadline(seconds: int = 60):
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""
    def boom(*_):
        raise TimeoutError(f"took over {seconds} s: something blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_all(cfg: InputConfig):
    with deadline():
        shards, facts = plan(cfg)
        probe_columns(shards, cfg)
        return [rec for shard in shards for rec in read_shard(shard, cfg)], facts


def status(rec) -> str:
    return rec.status or ("error" if rec.error else "ok")


def line_of(rec) -> int:
    return int(rec.source.rsplit(":", 1)[1])


def long_field(lines: int = LONG_LINES) -> str:
    """~1.1 MB over ``lines`` lines, with commas and quotes inside, and lines that look like records."""
    body = [f'r{i},"John Smith said in Paris, line {i}: ""quoted"" text of the long field ....."'
            for i in range(lines)]
    return "\n".join(body)


def csv_bytes(rows: list[list[str]], eol: str) -> bytes:
    """As csv.writer writes them, every line end (also inside quoted fields) being ``eol``."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol, quoting=csv.QUOTE_MINIMAL).writerows(
        [[cell.replace("\n", eol) for cell in row] for row in rows])
    return buf.getvalue().encode("utf-8")


# --- 1. a quoted field far over input.max_chars ---------------------------------------------------

@pytest.mark.parametrize("eol", list(EOLS))
@pytest.mark.parametrize("chunk", [None, 7, 4096])
@pytest.mark.parametrize("gz", [False, True])
def test_long_quoted_field_is_one_skipped_row_with_its_id(tmp_path, eol, chunk, gz):
    nl = EOLS[eol]
    text = long_field()  # csv_bytes writes its line ends as the file's
    assert len(text) > 1_000_000 and text.count("\n") == LONG_LINES - 1
    rows = [["id", "text"], ["before", "Angela Merkel in Berlin"], ["long", text],
            ["after-1", "Line one,\nline two in Bonn"], ["after-2", "plain, \"odd\" quotes"], ["after-3", "Rome"]]
    data = b"\xef\xbb\xbf" + csv_bytes(rows, nl)
    path = tmp_path / ("in.csv.gz" if gz else "in.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    patch = mock.patch.object(sources, "CHUNK", chunk) if chunk else contextlib.nullcontext()
    with patch:
        recs, _ = read_all(InputConfig(path=(str(path),), max_chars=4000))
    assert [(r.doc_id, status(r)) for r in recs] == [
        ("before", "ok"), ("long", "skipped"), ("after-1", "ok"), ("after-2", "ok"), ("after-3", "ok")]
    skipped = recs[1]
    assert "input.max_chars=4,000" in skipped.error and f"lines 3-{2 + LONG_LINES:,}" in skipped.error
    assert skipped.text is None and line_of(skipped) == 2 + LONG_LINES
    # the records after it are intact, from the lines they are on
    assert [r.text for r in recs[2:]] == [f"Line one,{nl}line two in Bonn", 'plain, "odd" quotes', "Rome"]
    assert [line_of(r) for r in recs] == [2, 2 + LONG_LINES, 4 + LONG_LINES, 5 + LONG_LINES, 6 + LONG_LINES]


def test_long_field_under_default_limit_is_read_and_over_it_skipped(tmp_path):
    """The same field within the default max_chars is one ok record, its text exactly the field;
    a field past ~6 MB (the byte bound) with the default limit is one skipped row."""
    text = long_field(8_000)  # ~750,000 characters
    assert 4000 < len(text) < 1_000_000
    path = tmp_path / "a.csv"
    path.write_bytes(csv_bytes([["id", "text"], ["long", text], ["next", "Bonn"]], "\n"))
    recs, _ = read_all(InputConfig(path=(str(path),)))
    assert [(r.doc_id, status(r)) for r in recs] == [("long", "ok"), ("next", "ok")]
    assert recs[0].text == text
    huge = "x, \"y\"\n" * 1_000_000  # 7 MB, a million lines
    path.write_bytes(csv_bytes([["id", "text"], ["huge", huge], ["next", "Bonn"]], "\n"))
    recs, _ = read_all(InputConfig(path=(str(path),)))
    assert [(r.doc_id, status(r)) for r in recs] == [("huge", "skipped"), ("next", "ok")]
    assert "max_chars=1,000,000" in recs[0].error
    assert recs[1].text == "Bonn" and line_of(recs[1]) == 1_000_003


@pytest.mark.parametrize("eol", list(EOLS))
def test_over_long_records_id_only_when_read_before_the_cut(tmp_path, eol):
    nl = EOLS[eol]
    cfg = InputConfig(path=(str(tmp_path / "a.csv"),), max_chars=100)
    over = max_line_bytes(cfg) + 10
    rows = [["text", "id"], ["x" * over, "after-field"],  # the id comes after the cut: not known
            ["ok text", "good"]]
    (tmp_path / "a.csv").write_bytes(csv_bytes(rows, nl))
    recs, _ = read_all(cfg)
    assert [(r.doc_id, status(r)) for r in recs] == [(None, "skipped"), ("good", "ok")]
    # an unquoted line over the limit (once an error with a null id): skipped, with its id
    rows = [["id", "text"], ["u-1", "y" * over], ["u-2", "Paris"], ["caf\u00e9", "z" * over], ["u-3", "Rome"]]
    (tmp_path / "a.csv").write_bytes(csv_bytes(rows, nl))
    recs, _ = read_all(cfg)
    assert [(r.doc_id, status(r)) for r in recs] == [
        ("u-1", "skipped"), ("u-2", "ok"), ("caf\u00e9", "skipped"), ("u-3", "ok")]
    assert all("max_chars" in r.error for r in recs if r.status == "skipped")
    # a record just over max_chars but within the byte bound is skipped by its character count
    rows = [["id", "text"], ["c-1", "w" * 101], ["c-2", "w" * 100]]
    (tmp_path / "a.csv").write_bytes(csv_bytes(rows, nl))
    recs, _ = read_all(cfg)
    assert [(r.doc_id, status(r)) for r in recs] == [("c-1", "skipped"), ("c-2", "ok")]
    assert "101 characters" in recs[0].error


def test_other_csv_problems_stay_with_their_record(tmp_path):
    cfg = InputConfig(path=(str(tmp_path / "a.csv"),), max_chars=100)
    path = tmp_path / "a.csv"
    # a record with a wrong field count, a cp1252 line inside a quoted field, then an unclosed quote
    path.write_bytes(b'id,text\nk1,"Bonn"\nk2,a,b\nk3,"caf\xe9\nParis"\nk4,Rome\nk5,"never closed\nk6,lost\n')
    recs, _ = read_all(cfg)
    got = [(r.doc_id, status(r), line_of(r)) for r in recs]
    assert got == [("k1", "ok", 2), (None, "error", 3), ("k3", "ok", 5), ("k4", "ok", 6), (None, "error", 8)]
    assert "expected 2 fields" in recs[1].error
    assert recs[2].text == "caf\u00e9\nParis" and "cp1252" in recs[2].warning
    assert "never closed" in recs[4].error and "line 7" in recs[4].error
    # a header over the limit: one row saying why, no invented records
    path.write_bytes(b"id," + b"h" * (max_line_bytes(cfg) + 1) + b"\nk1,Bonn\n")
    recs, _ = read_all(cfg)
    assert len(recs) == 1 and recs[0].error.startswith("unreadable CSV header") and "max_chars" in recs[0].error


# --- 2. CR-only, LF and CRLF read alike ---------------------------------------------------------

ROWS = [["id", "text", "note"], ["m1", "John Smith in New York.", "a"], ["m2", "Line one,\nline two in Paris", ""],
        ["m3", 'She said "Bonn", twice', "x,y"], ["", "no id here", "z"], ["m4", "", "blank text"],
        ["m5", "three\nlines\nhere", "\n"], ["m6", "caf\u00e9 \U0001F600 Z\u00fcrich", "end"]]


@pytest.mark.parametrize("bom", [False, True])
def test_cr_lf_and_crlf_files_give_the_same_records(tmp_path, bom):
    results = {}
    for name, nl in EOLS.items():
        path = tmp_path / f"{name}.csv"
        data = csv_bytes(ROWS, nl) + b"\n,,\n".replace(b"\n", nl.encode())  # a trailing blank-ish row
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
        cfg = InputConfig(path=(str(path),), text_columns=("text",))
        recs, _ = read_all(cfg)
        # line ends inside quoted fields are the file's own: the same text once they are made "\n"
        results[name] = [(r.doc_id, status(r), line_of(r), r.text.replace(nl, "\n") if r.text else r.text,
                          r.error, r.warning) for r in recs]
        for rec, row in zip([r for r in recs if r.doc_id], [row for row in ROWS[1:] if row[0]]):
            assert rec.text == row[1].replace("\n", nl)
    assert results["lf"] == results["crlf"] == results["cr"]
    assert [(r[0], r[1]) for r in results["cr"]] == [("m1", "ok"), ("m2", "ok"), ("m3", "ok"), (None, "error"),
                                                     ("m4", "ok"), ("m5", "ok"), ("m6", "ok")]
    assert [r[2] for r in results["cr"]] == [2, 4, 5, 6, 7, 11, 12]


def test_cr_only_file_is_probed_for_its_columns(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(csv_bytes(ROWS, "\r"))
    cfg = InputConfig(path=(str(path),), text_columns=("body",))
    shards, _ = plan(cfg)
    with pytest.raises(ConfigError, match="columns found: id, text, note"):
        probe_columns(shards, cfg)


# --- 3. FIFOs and dangling symlinks in a text folder -----------------------------------------------

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def odd_folder(root: Path) -> Path:
    """A text folder with regular files among entries that are not regular files."""
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "hidden.txt").write_text("Not read: behind a symlinked folder.", encoding="utf-8")
    (docs / "a.txt").write_text("John Smith visited Paris.", encoding="utf-8")
    (docs / "sub" / "b.txt").write_text("Angela Merkel in Berlin.", encoding="utf-8")
    (docs / "z.txt").write_text("Reuters in London.", encoding="utf-8")
    os.mkfifo(docs / "pipe.txt")
    os.mkfifo(docs / "sub" / "pipe2.txt.gz")
    os.mkfifo(docs / "pipe.jsonl")  # not a text file: skipped, with the reason
    (docs / "dangling.txt").symlink_to(root / "nowhere.txt")
    (docs / "loop.txt").symlink_to(docs / "loop.txt")
    (docs / "link.txt").symlink_to(docs / "a.txt")  # a symlink to a regular file is read
    (docs / "folder-link").symlink_to(root / "elsewhere")
    return docs


@needs_fifo
@pytest.mark.parametrize("how", ["folder", "glob"])
def test_fifos_and_dangling_symlinks_are_accounted_for(tmp_path, how):
    docs = odd_folder(tmp_path)
    spec = str(docs) if how == "folder" else f"{docs}/**/*.txt*"
    recs, facts = read_all(InputConfig(path=(spec,), shard_size=2))
    got = {r.doc_id: (status(r), r.error) for r in recs}
    assert len(got) == len(recs)
    want = {"a.txt": "ok", "dangling.txt": "error", "link.txt": "ok", "pipe.txt": "error", "z.txt": "ok",
            "sub/b.txt": "ok", "sub/pipe2.txt.gz": "error"}
    if how == "glob":  # "**" follows a symlinked folder, as glob.glob(recursive=True) does
        want["folder-link/hidden.txt"] = "ok"
    assert {k: v[0] for k, v in got.items()} == want
    assert got["pipe.txt"][1] == "not a regular file: FIFO" and got["sub/pipe2.txt.gz"][1] == "not a regular file: FIFO"
    assert got["dangling.txt"][1].startswith("dangling symlink") and "nowhere.txt" in got["dangling.txt"][1]
    assert [r.doc_id for r in recs] == (["a.txt", "dangling.txt", "link.txt", "pipe.txt", "z.txt",
                                         "sub/b.txt", "sub/pipe2.txt.gz"] if how == "folder" else
                                        sorted(got, key=lambda k: str(docs / k)))
    # a symlink loop cannot even be resolved as a path: skipped and counted, never read
    loop = f"{docs}/loop.txt (unreadable symlink)"
    if how == "folder":  # the glob matches only *.txt*: neither the .jsonl FIFO nor the folder link
        assert facts["skipped_files"] == 3
        assert facts["skipped_file_reasons"] == {"not a regular file: FIFO": 1, "symlink to a folder, not followed": 1,
                                                 "unreadable symlink": 1}
        assert sorted(facts["skipped_file_examples"]) == sorted([
            f"{docs}/folder-link (symlink to a folder, not followed)", loop,
            f"{docs}/pipe.jsonl (not a regular file: FIFO)"])
    else:
        assert facts["skipped_files"] == 1 and facts["skipped_file_examples"] == [loop]


@needs_fifo
def test_an_entry_that_becomes_a_fifo_after_planning_is_not_opened(tmp_path):
    from extract.io.readers import TextReader

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Bonn", encoding="utf-8")
    (docs / "b.txt").write_text("Paris", encoding="utf-8")
    cfg = InputConfig(path=(str(docs),))
    shards, _ = plan(cfg)
    (docs / "b.txt").unlink()
    os.mkfifo(docs / "b.txt")
    with deadline():  # read_shard stops at the changed stamp first; the reader itself must not block either
        recs = list(TextReader().read(shards[0], cfg))
    assert [(r.doc_id, r.text, r.error) for r in recs] == [("a.txt", "Bonn", None),
                                                           ("b.txt", None, "not a regular file: FIFO")]


# --- the CSV record cutter agrees with Python's csv module --------------------------------------------

def test_records_match_python_csv_on_random_closed_input():
    import random

    from extract.io.csv_records import split_fields
    from extract.io.csv_records import read_csv_records

    rng = random.Random(7)
    alphabet = [b'"', b",", b"\n", b"\r", b"\r\n", b"a", b"b", b" ", b'""', b"\xc3\xa9"]
    checked = 0
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        with mock.patch.object(sources, "CHUNK", rng.choice([1, 2, 3, 1 << 20])):
            raws = list(read_csv_records(io.BytesIO(data), 1 << 20))
        if any(r.unclosed for r in raws):
            continue  # csv (not strict) returns the rest of the file as one row; the reader says "never closed"
        got = [split_fields("".join(line.decode() + (r.ends[k].decode() if k < len(r.ends) else "")
                                    for k, line in enumerate(r.lines))) for r in raws]
        assert got == list(csv.reader(io.StringIO(data.decode(), newline=""))), data
        checked += 1
    assert checked > 1500


# --- 4. end to end through the CLI ------------------------------------------------------------------

@needs_fifo
def test_cli_accounts_for_every_edge_case(tiny_model_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    long = long_field()
    (src / "long.csv").write_bytes(csv_bytes([["id", "text"], ["csv-before", "John Smith in Paris."],
                                              ["csv-long", long], ["csv-after", "Angela Merkel in Berlin."]],
                                             "\r\n"))
    (src / "mac.csv").write_bytes(csv_bytes([["id", "text"], ["mac-1", "Reuters in London."],
                                             ["mac-2", "Line one,\nline two in Bonn."]], "\r"))
    docs = odd_folder(tmp_path)
    out = tmp_path / "out"
    args = [*common(tiny_model_dir, out, "local"), "--set", f"input.path=[{src}, {docs}]",
            "--set", "input.text_columns=[text]", "--set", "input.max_chars=4000", "--set", "input.shard_size=3"]
    with deadline(300):
        assert run_cli(*args) == 0
    ents, docs_table = tables(out)
    rows = {r["doc_id"]: r for r in docs_table.to_pylist()}
    assert len(rows) == docs_table.num_rows  # one row per record, every row with its id
    assert {k: r["status"] for k, r in rows.items()} == {
        "csv-before": "ok", "csv-long": "skipped", "csv-after": "ok", "mac-1": "ok", "mac-2": "ok",
        "a.txt": "ok", "dangling.txt": "error", "link.txt": "ok", "pipe.txt": "error",
        "z.txt": "ok", "sub/b.txt": "ok", "sub/pipe2.txt.gz": "error"}
    assert "input.max_chars=4,000" in rows["csv-long"]["error"]
    assert rows["pipe.txt"]["error"] == "not a regular file: FIFO"
    assert rows["dangling.txt"]["error"].startswith("dangling symlink")
    assert rows["mac-2"]["n_chars"] == len("Line one,\rline two in Bonn.")
    # entities only for ok rows: nothing from inside the long field
    ok = {k for k, r in rows.items() if r["status"] == "ok"}
    assert set(ents.column("doc_id").to_pylist()) <= ok
    report = json.loads((out / "run.json").read_text())
    assert report["complete"] and report["documents"] == len(rows)
    assert report["input"]["skipped_files"] == 3
    assert report["input"]["skipped_file_reasons"] == {"not a regular file: FIFO": 1,
                                                       "symlink to a folder, not followed": 1, "unreadable symlink": 1}
    # a rerun has nothing to do and changes nothing
    with deadline(300):
        assert run_cli(*args) == 0
    again = tables(out)
    assert again[0].equals(ents) and again[1].equals(docs_table)
