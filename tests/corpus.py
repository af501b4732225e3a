"""A bad-input corpus: every kind of broken record and file the batch job must account for."""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
from pathlib import Path

BIG_CHARS = 300_000  # long enough for thousands of window borders, under the default max_chars
SURROGATE_LINE = b'{"id": "surrogate", "body": "Reuters \\ud83d said in Bonn"}'


def big_text() -> str:
    """Mostly whitespace runs so the tiny model's work stays small: ~12k words."""
    unit = "John Smith of Germany said" + " " * 100 + "\n"
    return (unit * (BIG_CHARS // len(unit) + 1))[:BIG_CHARS]


def _jsonl(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


def write_bad_corpus(root: Path) -> dict[str, tuple[str, str | None]]:
    """Writes files under ``root/in`` (and a second text root ``root/in2``); returns, per record key
    (doc id, or ``file:line`` / file name for records without a usable id), the expected
    (status, a fragment of its error or warning)."""
    src = root / "in"
    src.mkdir(parents=True, exist_ok=True)
    lines = [
        {"id": "ok-1", "title": "John Smith", "body": "John Smith said in New York."},
        b"{not json at all",
        {"title": "no id here", "body": "x"},
        {"id": "no-text", "other": "y"},
        {"id": "num-text", "body": 42},
        b'{"id": "bad-utf8", "body": "caf\xe9 in Paris"}',
        b"",  # blank line: not a record
        {"id": "empty", "title": "", "body": "   "},
        {"id": "ok-1", "body": "duplicate id"},
        ["a", "list"],
        {"id": "big", "body": big_text()},
        {"id": 7, "body": "Numeric id from Germany."},
        SURROGATE_LINE,
        {"id": "later-good", "body": 3.5},  # an error row: it must not claim the id
        {"id": "later-good", "body": "The good one, from Bonn."},
        b'{"id": "dup-cp1252", "body": "Caf\xe9 again"}',  # a cp1252 line whose id is a duplicate
        {"id": "too-long", "body": "x" * 1_100_000},  # over max_chars (1,000,000)
    ]
    (src / "a.jsonl").write_bytes(_jsonl(*lines))
    (src / "0first.jsonl").write_bytes(_jsonl({"id": "dup-cp1252", "body": "First, in UTF-8."}))
    (src / "empty.jsonl").write_bytes(b"")
    # A JSON-lines file named .json, with line and paragraph separators inside strings.
    (src / "c.json").write_text(json.dumps({"id": "u2028", "body": "Bonn\u2028Paris\u2029Rome\x85end"},
                                           ensure_ascii=False) + "\n", encoding="utf-8")
    (src / "broken.json").write_text('[{"id": 1,', encoding="utf-8")
    # Compressed, one per codec, with an upper-case suffix among them.
    (src / "d.JSONL.GZ").write_bytes(gzip.compress(_jsonl({"id": "gz-1", "body": "Reuters in Bonn."})))
    (src / "e.jsonl.bz2").write_bytes(bz2.compress(_jsonl({"id": "bz2-1", "body": "Bonn."})))
    (src / "f.jsonl.xz").write_bytes(lzma.compress(_jsonl({"id": "xz-1", "body": "Bonn."})))
    import zstandard

    (src / "g.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl({"id": "zst-1", "body": "Bonn."})))
    # A truncated download: every complete record before the cut survives, plus one error row.
    full = gzip.compress(_jsonl(*({"id": f"trunc-{i}", "body": f"Record {i} from Bonn, " * 20} for i in range(400))))
    (src / "h.jsonl.gz").write_bytes(full[: len(full) * 2 // 3])
    # A gzip bomb: 64 MB of zeros on one line, 64 kB on disk; skipped in bounded memory.
    (src / "i.jsonl.gz").write_bytes(gzip.compress(b"\0" * (64 << 20) + b"\n"
                                                   + _jsonl({"id": "after-bomb", "body": "Bonn."}),
                                                   compresslevel=9))
    # A spreadsheet's CSV: byte order mark, CRLF, a quoted field with a newline.
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerows([["id", "body"], ["csv-1", "Line one,\nline two in Paris"], ["csv-2", "Bonn"]])
    (src / "j.csv").write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))
    # Files with unknown suffixes are skipped and counted.
    (src / "notes.md").write_text("not an input", encoding="utf-8")
    (src / "k.jsonl.lz4").write_bytes(b"\x04\x22\x4d\x18")
    # Two text roots holding the same relative path: the second is a duplicate id.
    for name in ("texts1", "texts2"):
        (root / name / "sub").mkdir(parents=True, exist_ok=True)
        (root / name / "sub" / "same.txt").write_text(f"Angela Merkel in Berlin ({name})", encoding="utf-8")
    return {
        "ok-1": ("ok", None), "a.jsonl:2": ("error", "malformed JSON"),
        "a.jsonl:3": ("error", "missing id column 'id'"),
        "a.jsonl:4": ("error", "missing text column"), "a.jsonl:5": ("error", "expected a string"),
        "bad-utf8": ("ok", "cp1252"), "empty": ("empty", None), "a.jsonl:9": ("skipped", "duplicate id, first seen at"),
        "a.jsonl:10": ("error", "expected a JSON object"), "big": ("ok", None), "7": ("ok", None),
        "surrogate": ("ok", "surrogate"), "a.jsonl:14": ("error", "expected a string"), "later-good": ("ok", None),
        "a.jsonl:16": ("skipped", "0first.jsonl:1"), "too-long": ("skipped", "input.max_chars"),
        "dup-cp1252": ("ok", None), "u2028": ("ok", None), "broken.json": ("error", "malformed JSON array"),
        "gz-1": ("ok", None), "bz2-1": ("ok", None), "xz-1": ("ok", None), "zst-1": ("ok", None),
        "h.jsonl.gz": ("error", "ends early"), "i.jsonl.gz:1": ("skipped", "a line of over"),
        "after-bomb": ("ok", None), "csv-1": ("ok", None), "csv-2": ("ok", None),
        "sub/same.txt": ("ok", None), "texts2/sub/same.txt": ("skipped", "texts1/sub/same.txt"),
    }


SMALL_TEXTS = {  # a few news-like documents, one blank, one with an emoji
    "d1": "John Smith said in Germany that the bank of New York grew.",
    "d2": "Reuters reported from Bonn \U0001F600 that Angela Merkel met Helmut Kohl.",
    "d3": "   ",
    "d4": "The European Commission in Brussels fined Microsoft Corp on Tuesday.",
    "d5": "Shares of Volkswagen AG rose in Frankfurt, said Peter Hartz.",
}


def run_small_job(root: Path, model: Path, texts: dict[str, str]) -> Path:
    """The batch job (local runner, tiny shards) on ``{id: text}``; returns its output folder."""
    from extract.__main__ import main

    corpus = root / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n" for k, v in texts.items()),
                      encoding="utf-8")
    out = root / "out"
    config = Path(__file__).resolve().parents[1] / "configs" / "extract.yaml"
    rc = main(["run", "--config", str(config), "--set", f"model.path={model}", "--set", f"output.path={out}",
               "--set", "runner=local", "--set", f"input.path={corpus}", "--set", "input.text_columns=[text]",
               "--set", "inference.threads=1", "--set", "show_progress=false",
               "--set", "model.labels=[PER, LOC, ORG, MISC]", "--set", "input.shard_bytes=200", "--show", "0"])
    assert rc == 0
    return out
