"""The served log (extract/serve/log.py): parts in the job's docs and entities schemas, written
atomically, rotated by size and time, that `python -m extract report` reads as a job's output."""
from __future__ import annotations

import json
import time

import pyarrow.dataset as pads
import pyarrow.parquet as pq

from extract.__main__ import main
from extract.core import schema
from extract.serve.log import ServeLog, sha256

TEXT = "John Smith met Reuters in Bonn."
ENTS = [{"label": "PER", "text": "John Smith", "start": 0, "end": 10, "score": 0.9},
        {"label": "LOC", "text": "Bonn", "start": 26, "end": 30, "score": 0.7}]


def serve_some(log: ServeLog, n: int, rid: str = "r1") -> None:
    log.add([(rid, i, TEXT if i % 3 else "  ", None) for i in range(n)], [ENTS if i % 3 else [] for i in range(n)],
            0.01)


def parts(out, sub):
    return sorted(p.name for p in (out / sub).glob("part-*"))


def test_parts_in_the_job_schemas_and_the_report_reads_them(tmp_path):
    out = tmp_path / "served"
    info = {"config": {"model": {"labels": ["PER", "LOC", "ORG"]}}, "model": {"path": "nowhere", "id": "m@x"}}
    log = ServeLog(str(out), "full", rotate_mb=100, rotate_seconds=3600, model_id="m@x", run_info=info)
    serve_some(log, 6)
    assert log.flush() and log.flush() is None  # nothing buffered: no empty part
    serve_some(log, 3, "r2")
    log.flush()
    assert len(parts(out, "docs")) == len(parts(out, "entities")) == len(parts(out, "texts")) == 2
    assert not list(out.rglob(".*.tmp"))  # temporary files renamed away
    docs = pads.dataset(str(out / "docs"), schema=schema.DOCS).to_table()
    ents = pads.dataset(str(out / "entities"), schema=schema.ENTITIES).to_table()
    assert pq.read_schema(next((out / "docs").glob("part-*"))).equals(schema.DOCS)
    assert pq.read_schema(next((out / "entities").glob("part-*"))).equals(schema.ENTITIES)
    assert docs.num_rows == 9 and docs.column("status").to_pylist().count("empty") == 3
    assert ents.num_rows == 12 and set(ents.column("model").to_pylist()) == {"m@x"}
    texts = dict(zip(*pads.dataset(str(out / "texts")).to_table().to_pydict().values()))
    for row in ents.to_pylist():  # offsets index the stored text
        assert texts[row["doc_id"]][row["start"]:row["end"]] == row["text"]
    assert main(["report", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["documents"] == 9 and report["entities"] == 12
    assert report["by_label"] == {"LOC": 6, "ORG": 0, "PER": 6}


def test_hash_mode_keeps_no_text(tmp_path):
    log = ServeLog(str(tmp_path), "hash", model_id="m")
    serve_some(log, 3)
    log.flush()
    stored = pads.dataset(str(tmp_path / "texts")).to_table().to_pydict()
    assert stored["text_sha256"][1] == sha256(TEXT) and "text" not in stored
    ents = pads.dataset(str(tmp_path / "entities"), schema=schema.ENTITIES).to_table()
    assert all(t.startswith("sha256:") for t in ents.column("text").to_pylist())
    assert TEXT.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*.parquet"))


def test_rotation_by_size_and_by_time(tmp_path):
    log = ServeLog(str(tmp_path / "size"), "full", rotate_mb=0.001, rotate_seconds=3600)
    for k in range(5):
        serve_some(log, 10, f"r{k}")  # ~10 x 200 bytes > 1 kB: a part each time
        assert log.maybe_flush()
    assert len(parts(tmp_path / "size", "docs")) == 5
    log = ServeLog(str(tmp_path / "time"), "full", rotate_mb=100, rotate_seconds=0.2)
    serve_some(log, 2)
    assert log.maybe_flush() is None  # young and small: kept
    time.sleep(0.25)
    assert log.maybe_flush() and len(parts(tmp_path / "time", "docs")) == 1
