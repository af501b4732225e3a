"""A bad-input corpus: every kind of broken record the batch job must account for."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

BIG_CHARS = 5 * 1024 * 1024


def big_text() -> str:
    """5 MB of text, mostly whitespace runs so the tiny model's work stays small: ~40k words."""
    unit = "John Smith of Germany said" + " " * 100 + "\n"
    return (unit * (BIG_CHARS // len(unit) + 1))[:BIG_CHARS]


def write_bad_corpus(root: Path) -> dict[str, str]:
    """Writes files under ``root``; returns the expected status per record source key."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": "ok-1", "title": "John Smith", "body": "John Smith said in New York."}).encode(),
        b"{not json at all",
        json.dumps({"title": "no id here", "body": "x"}).encode(),
        json.dumps({"id": "no-text", "other": "y"}).encode(),
        json.dumps({"id": "num-text", "body": 42}).encode(),
        b'{"id": "bad-utf8", "body": "caf\xe9 in Paris"}',
        b"",  # blank line: not a record
        json.dumps({"id": "empty", "title": "", "body": "   "}).encode(),
        json.dumps({"id": "ok-1", "body": "duplicate id"}).encode(),
        json.dumps(["a", "list"]).encode(),
        json.dumps({"id": "big", "body": big_text()}).encode(),
        json.dumps({"id": 7, "body": "Numeric id from Germany."}).encode(),
    ]
    (root / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (root / "empty.jsonl").write_bytes(b"")
    with gzip.open(root / "c.jsonl.gz", "wb") as f:
        f.write(json.dumps({"id": "gz-1", "body": "Reuters in Bonn."}).encode() + b"\n")
    (root / "broken.json").write_text("[{\"id\": 1,", encoding="utf-8")
    return {
        "ok-1": "ok", "a.jsonl:2": "error", "a.jsonl:3": "error", "no-text": "error", "num-text": "error",
        "bad-utf8": "ok", "empty": "empty", "a.jsonl:9": "skipped", "a.jsonl:10": "error", "big": "ok",
        "7": "ok", "gz-1": "ok", "broken.json": "error",
    }
