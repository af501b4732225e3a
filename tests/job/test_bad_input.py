"""Issue 7: every bad input class through the real CLI, on both runners, with the same assertions."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.corpus import big_text, write_bad_corpus
from tests.helpers import common, run_cli, tables


def as_line(source: str) -> str:
    """``file@byte`` (a JSON-lines source) as ``file:line``, which is easier to write down."""
    if "@" not in source:
        return source
    path, offset = source.rsplit("@", 1)
    from extract.io.sources import compression_of, open_binary

    with open_binary(path, compression_of(path)) as f:
        head = f.read(int(offset))
    line = head.count(b"\n") + 1
    return f"{path}:{line}"


def _key(row: dict, root: Path) -> str:
    """Error rows and duplicates by where they came from; the rest by their id."""
    if row["doc_id"] is None or row["status"] == "error" or (row["error"] or "").startswith("duplicate id"):
        rel = os.path.relpath(as_line(row["source"]), root)
        rel = rel[len("in/"):] if rel.startswith("in/") else rel
        if rel.startswith("h.jsonl.gz:"):
            return "h.jsonl.gz"  # the line where the cut fell
        return rel
    return row["doc_id"]


# On Ray: minutes on 2 cores (hundreds of 300-byte shards, each a task through the three stages), so slow.
@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def test_every_bad_input_is_accounted_for(tiny_model_dir, tmp_path, runner, request):
    root = tmp_path
    if runner == "ray":
        request.getfixturevalue("ray_local")
    expected = write_bad_corpus(tmp_path)
    out = tmp_path / "out"
    paths = f"[{tmp_path / 'in'}, {tmp_path / 'texts1'}, {tmp_path / 'texts2'}]"
    assert run_cli(*common(tiny_model_dir, out, runner), "--set", f"input.path={paths}",
                   "--set", "input.shard_size=4", "--set", "input.shard_bytes=300") == 0
    ents, docs = tables(out)
    rows = docs.to_pylist()
    by_key: dict[str, dict] = {}
    for r in rows:
        key = _key(r, tmp_path)
        assert key not in by_key, f"two rows for {key}"
        by_key[key] = r
    trunc = sorted((k for k in by_key if k.startswith("trunc-")), key=lambda k: int(k.split("-")[1]))
    assert trunc and trunc == [f"trunc-{i}" for i in range(len(trunc))] and len(trunc) < 400  # a prefix
    assert all(by_key.pop(k)["status"] == "ok" for k in trunc)
    assert {k: by_key[k]["status"] for k in expected} == {k: v[0] for k, v in expected.items()}
    for key, (status, fragment) in expected.items():
        if fragment:
            said = f"{by_key[key]['error']} {by_key[key]['warning']}"
            said = said.replace(f"{root}/in/0first.jsonl@0", "0first.jsonl:1")
            assert fragment in said, (key, said)
    assert set(by_key) == set(expected), set(by_key) ^ set(expected)  # nothing else, nothing lost
    # Offsets slice the original text everywhere, also past thousands of window borders.
    big = big_text()
    big_ents = [r for r in ents.to_pylist() if r["doc_id"] == "big"]
    assert big_ents and big_ents[-1]["end"] > 0.9 * len(big)
    assert all(big[r["start"]:r["end"]] == r["text"] for r in big_ents)
    surrogate = [r for r in ents.to_pylist() if r["doc_id"] == "surrogate"]
    assert all("\ufffd" not in r["text"] or r["text"] for r in surrogate)
    # Skipped and duplicate rows contribute no entities; every entity belongs to an ok row.
    ok_ids = {r["doc_id"] for r in rows if r["status"] == "ok"}
    assert set(ents.column("doc_id").to_pylist()) <= ok_ids
    report = json.loads((out / "run.json").read_text())
    assert report["complete"] and report["documents"] == len(rows)
    assert report["input"]["skipped_files"] == 2
    assert {os.path.basename(p) for p in report["input"]["skipped_file_examples"]} == {"notes.md", "k.jsonl.lz4"}
    assert report["input"]["duplicate_ids"] == 3
    # A rerun has nothing to do and changes nothing.
    before = tables(out)
    assert run_cli(*common(tiny_model_dir, out, runner), "--set", f"input.path={paths}",
                   "--set", "input.shard_size=4", "--set", "input.shard_bytes=300") == 0
    after = tables(out)
    assert before[0].equals(after[0]) and before[1].equals(after[1])
