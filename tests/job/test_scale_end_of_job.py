"""Internet scale: the end of a job holds shards, never records.

run.json and the run report come from per-shard stats merged in the driver (extract/job/shard_stats.py)
and must equal the numbers computed from the whole tables; duplicate ids are settled by an external
hash-partitioned pass (extract/job/duplicates.py) that must give the tables the in-memory rule gives;
summarising reads no table.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from extract.core import fs, schema
from extract.job import duplicates, partitions, shard_stats, summary
from extract.monitor import run_report
from tests.helpers import common, run_cli, tables


# ------------------------------------------------------------------------------ a small job

def dirty_corpus(path: Path) -> None:
    """JSON lines with ids repeated across shards, malformed lines, missing ids and overlong records."""
    rng = random.Random(5)
    names = ["John Smith", "Bonn", "Paris", "Acme Corp", "Reuters", "Mary Jones", "Berlin", "IBM"]
    lines = []
    for i in range(160):
        doc_id = f"d{rng.randrange(90)}"
        text = " ".join(rng.choice(names) + " said" for _ in range(rng.randrange(1, 6)))
        if i % 17 == 3:
            lines.append("{not json " + str(i))
            continue
        if i % 19 == 5:
            lines.append(json.dumps({"title": "no id", "body": text}))
            continue
        if i % 13 == 7:
            text = text + " Bonn" * 40  # over input.max_chars: skipped, and still claims its id
        lines.append(json.dumps({"id": doc_id, "title": f"T{i}", "body": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def job_args(model: Path, src: Path, out: Path, runner: str) -> list[str]:
    return [*common(model, out, runner), "--set", f"input.path=[{src}]", "--set", "input.shard_bytes=900",
            "--set", "input.max_chars=150"]


def table_report_numbers(out: Path, labels: list[str]) -> dict:
    """The run report's numbers as they were computed before (from the whole entities table)."""
    ents, _ = tables(out)
    scores = ents["score"].to_numpy(zero_copy_only=False).astype(float)
    by_label = {}
    for l in labels:
        s = scores[np.asarray(pc.equal(ents["label"], l).to_numpy(zero_copy_only=False), bool)]
        by_label[l] = np.bincount(np.clip((s * 10).astype(np.int64), 0, 9), minlength=10).tolist()
    g = ents.group_by(["label", "text"]).aggregate([("score", "count"), ("score", "mean")])
    top = {}
    for l in labels:
        t = g.filter(pc.equal(g["label"], l)).sort_by([("score_count", "descending"),
                                                       ("text", "ascending")]).slice(0, 10)
        top[l] = [[a, int(n), round(float(m), 3)] for a, n, m in
                  zip(t["text"].to_pylist(), t["score_count"].to_pylist(), t["score_mean"].to_pylist())]
    return {"by_label": by_label, "top": top}


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_run_json_and_report_from_stats_equal_the_tables(tiny_model_dir, tmp_path, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    src = tmp_path / "c.jsonl"
    dirty_corpus(src)
    out = tmp_path / "out"
    assert run_cli(*job_args(tiny_model_dir, src, out, runner)) == 0
    run = json.loads((out / "run.json").read_text())
    assert len(list((out / "docs").glob("part-*.parquet"))) >= 8
    assert run["input"]["duplicate_ids"] > 5 and run["by_status"]["error"] > 0 and run["by_status"]["skipped"] > 0
    from_tables = summary.summarize_tables(out)
    assert summary.summarize(out) == from_tables
    assert {k: run[k] for k in from_tables} == from_tables
    # Every shard's stats hold the summary of its parts as settled (the duplicate pass rewrote some).
    for shard in shard_stats.done_shards(str(out)):
        stats = json.loads((out / "stats" / f"part-{shard}.json").read_text())
        assert stats[shard_stats.KEY] == shard_stats.of_parts(str(out), shard), shard
    data = run_report.compute(str(out))
    labels = data["labels"]
    ref = table_report_numbers(out, labels)
    assert data["confidence"]["by_label"] == ref["by_label"]
    assert data["top_entities_note"]["exact"] and data["top_entities"] == ref["top"]
    assert data["error_reasons"] == from_tables["error_reasons"] and data["documents"] == from_tables["documents"]


# ------------------------------------------------------------- a synthetic finished output

def synthetic_output(out: Path, n_shards: int = 30, rows: int = 40, seed: int = 0) -> None:
    """Finished shards as the job leaves them before the duplicate pass: ids repeated within
    (already settled by the processor) and across shards (not yet), error rows with ids, null ids,
    rows skipped for length; entity rows for ok rows; stats with their summaries."""
    rng = random.Random(seed)
    for sub in ("docs", "entities", "stats"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        shard = f"00000-{s:05d}"
        docs = {f.name: [] for f in schema.DOCS}
        ents = {f.name: [] for f in schema.ENTITIES}
        seen: dict[str, str] = {}
        for i in range(rows):
            doc_id = None if rng.random() < 0.03 else f"id{rng.randrange(n_shards * rows // 3)}"
            src = f"f.jsonl@{s * 10000 + i * 100}"
            kind = rng.random()
            status, error, n_words = "ok", None, rng.randrange(1, 50)
            if kind < 0.08:
                status, error, n_words = "error", f"malformed JSON: line {i}", 0
            elif kind < 0.12:
                status, error, n_words = "skipped", f"{rng.randrange(200, 900)} characters is over input.max_chars", 0
            elif kind < 0.15:
                status, error, n_words = "empty", None, 0
            if doc_id is not None and status != "error":
                if doc_id in seen:  # the processor settles repeats within a shard
                    status, error, n_words = "skipped", duplicates.message(seen[doc_id]), 0
                else:
                    seen[doc_id] = src
            n_ent = rng.randrange(0, 4) if status == "ok" else 0
            for k in range(n_ent):
                ents["doc_id"].append(doc_id)
                ents["label"].append(rng.choice(["PER", "LOC", "ORG"]))
                ents["text"].append(rng.choice(["Bonn", "Paris", "IBM", "John", "Mary", "Acme"]))
                ents["start"].append(k)
                ents["end"].append(k + 1)
                ents["score"].append(rng.random())
                ents["model"].append("m")
            row = {"doc_id": doc_id, "status": status, "error": error, "n_chars": n_words * 6, "n_words": n_words,
                   "n_tokens": n_words * 2, "n_entities": n_ent, "source": src, "warning": None,
                   "shard": shard, "index": i}
            for k, v in row.items():
                docs[k].append(v)
        d, e = pa.table(docs, schema=schema.DOCS), pa.table(ents, schema=schema.ENTITIES)
        pq.write_table(e, out / "entities" / f"part-{shard}.parquet")
        stats = {"shard": shard, "docs": rows, "ok": 0, "words": 0, "entities": e.num_rows, "seconds": 1.0,
                 "finished_at": 1.7e9 + s, shard_stats.KEY: shard_stats.of_tables(d, e)}
        (out / "stats" / f"part-{shard}.json").write_text(json.dumps(stats))
        pq.write_table(d, out / "docs" / f"part-{shard}.parquet")


def expected_after_settle(out: Path) -> tuple[pa.Table, pa.Table, int]:
    """The tables the in-memory rule (``later_duplicates`` over the whole docs table) gives."""
    ents, docs = tables(out)
    later = duplicates.later_duplicates(docs).to_pylist()
    msgs = {(r["shard"], r["index"]): duplicates.message(r["first_source"]) for r in later}
    drop = {(r["shard"], r["doc_id"]) for r in later if r["first_shard"] != r["shard"]}
    rows = []
    for r in docs.to_pylist():
        m = msgs.get((r["shard"], r["index"]))
        if m is not None:
            r = {**r, "status": "skipped", "error": m, "n_chars": 0, "n_words": 0, "n_tokens": 0, "n_entities": 0}
        rows.append(r)
    ent_shard = []  # entity rows by the shard of their part
    for p in sorted((out / "entities").glob("part-*.parquet")):
        shard = p.name[len("part-"):-len(".parquet")]
        ent_shard += [r for r in pq.read_table(p).to_pylist() if (shard, r["doc_id"]) not in drop]
    return (pa.Table.from_pylist(rows, schema=schema.DOCS), pa.Table.from_pylist(ent_shard, schema=schema.ENTITIES),
            len(later))


def sort_docs(t: pa.Table) -> pa.Table:
    return t.sort_by([("shard", "ascending"), ("index", "ascending")])


def sort_ents(t: pa.Table) -> pa.Table:
    return t.sort_by([("doc_id", "ascending"), ("start", "ascending"), ("label", "ascending"), ("score", "ascending")])


# (keys per partition, files per split, whether every partition fits: 4 split levels of `fanout`
# files each reach 1,200 keys / 40 with fanout 4, not / 7 with fanout 3 nor / 25 with fanout 2,
# where the deepest level is settled as it is)
@pytest.mark.parametrize("max_rows,fanout,fits", [(1_000_000, 256, True), (40, 4, True), (7, 3, False), (25, 2, False)])
def test_external_duplicate_pass_gives_the_in_memory_tables(tmp_path, monkeypatch, max_rows, fanout, fits):
    out = tmp_path / "out"
    synthetic_output(out)
    exp_docs, exp_ents, n_later = expected_after_settle(out)
    assert n_later > 20 and len({r for r in exp_docs.column("shard").to_pylist()}) == 30
    monkeypatch.setattr(partitions, "MAX_FANOUT", fanout)
    calls = []
    real = duplicates.later_of
    monkeypatch.setattr(duplicates, "later_of", lambda keys: calls.append(keys.num_rows) or real(keys))
    spill = tmp_path / "spill"
    assert duplicates.settle(out, ("entities",), max_rows=max_rows, spill_dir=str(spill)) == n_later
    if max_rows < 100:
        assert len(calls) > 5  # many partitions
    assert max(calls) <= max_rows or not fits
    assert list(spill.iterdir()) == []  # the spill is cleaned up
    ents, docs = tables(out)
    assert sort_docs(docs).equals(sort_docs(exp_docs))
    assert sort_ents(ents).equals(sort_ents(exp_ents))
    # Stats follow the rewritten shards: run.json's numbers from stats equal those from the tables.
    assert summary.summarize(out) == summary.summarize_tables(out)
    # A rerun finds the same duplicates and rewrites nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("part-*")}
    assert duplicates.settle(out, ("entities",), max_rows=max_rows, spill_dir=str(spill)) == n_later
    assert {p: p.stat().st_mtime_ns for p in out.rglob("part-*")} == mtimes


@pytest.mark.ray
def test_duplicate_pass_as_ray_tasks_gives_the_same_tables(tmp_path, ray_local):
    from extract.core.job_config import RayConfig
    from extract.job import runner_ray

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    synthetic_output(local, seed=3)
    shutil.copytree(local, on_ray)
    n = duplicates.settle(local, ("entities",), max_rows=11)
    assert runner_ray.settle_ray(str(on_ray), ("entities",), RayConfig()) == n > 0
    assert not (on_ray / duplicates.RAY_SPILL).exists()
    (le, ld), (re_, rd) = tables(local), tables(on_ray)
    assert sort_docs(ld).equals(sort_docs(rd)) and sort_ents(le).equals(sort_ents(re_))
    for shard in shard_stats.done_shards(str(on_ray)):
        a = json.loads((local / "stats" / f"part-{shard}.json").read_text())
        b = json.loads((on_ray / "stats" / f"part-{shard}.json").read_text())
        assert a == b


def test_hash_is_the_same_for_equal_strings_however_the_array_is_cut():
    words = ["", "a", "ab", "id1", "id10", "x" * 200, "北京", "😀", "id1"] * 7
    whole = duplicates.hash_strings(pa.array(words))
    assert whole[3] == whole[8] and whole[1] != whole[2]
    chunked = pa.chunked_array([pa.array(words[:10]), pa.array(words[10:])])
    assert (duplicates.hash_strings(chunked) == whole).all()
    assert (duplicates.hash_strings(pa.array(words).slice(5, 30)) == whole[5:35]).all()
    assert (duplicates.hash_strings(pa.array(["pad"] + words).slice(1)) == whole).all()
    big = duplicates.hash_strings(pa.array([f"id{i}" for i in range(20000)]))
    assert len(set(big.tolist())) == 20000
    counts = np.bincount(duplicates._bucket(big, 1, 8), minlength=8)
    assert counts.min() > 2000  # spread evenly


def test_bounded_split_keeps_order_and_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(partitions, "MAX_FANOUT", 2)
    ids = [f"k{i % 13}" for i in range(300)]
    keys = pa.table({"h": duplicates.hash_strings(pa.array(ids)), "shard_no": pa.array([0] * 300, pa.int32()),
                     "index": pa.array(range(300), pa.int64()), "doc_id": ids, "source": ids}, schema=duplicates.KEYS)
    spill = duplicates.Spill(str(tmp_path / "k"), "p", 1, duplicates.KEYS)
    spill.write(keys, 0)
    (n,) = spill.close()
    parts = list(duplicates.bounded([spill.path(0)], n, duplicates.KEYS, 50, str(tmp_path)))
    assert len(parts) > 2 and sum(p.num_rows for p in parts) == 300
    owner = {}
    for i, p in enumerate(parts):
        idx = p["index"].to_pylist()
        assert idx == sorted(idx)  # order kept
        for d in set(p["doc_id"].to_pylist()):
            assert owner.setdefault(d, i) == i  # an id wholly in one part


# ------------------------------------------------------------- summarising reads no table

def test_summary_and_report_read_no_table(tmp_path, monkeypatch):
    out = tmp_path / "out"
    synthetic_output(out, n_shards=12)
    duplicates.settle(out, ("entities",))
    want = summary.summarize_tables(out)
    page_want = run_report.compute(str(out))

    def refuse(*a, **k):
        raise AssertionError(f"a table was read: {a}")

    with monkeypatch.context() as m:
        m.setattr(fs, "read_parquet", refuse)
        m.setattr(summary, "table_of", refuse)
        m.setattr(pq, "read_table", refuse)
        assert summary.summarize(out) == want
        got = run_report.compute(str(out))
    for k in ("documents", "by_status", "error_reasons", "words", "entities", "by_label", "confidence", "top_entities"):
        assert got[k] == page_want[k], k
    # Entity parts gone (or corrupt) after the stats were written: the numbers still come from stats.
    for p in (out / "entities").glob("part-*.parquet"):
        p.write_bytes(b"not parquet")
    assert summary.summarize(out) == want


def test_stats_without_summaries_fall_back_to_each_shards_own_parts(tmp_path, monkeypatch):
    """Output folders written before the summaries existed: one shard's parts at a time."""
    out = tmp_path / "out"
    synthetic_output(out, n_shards=9)
    duplicates.settle(out, ("entities",))
    want = summary.summarize_tables(out)
    for p in (out / "stats").glob("part-*.json"):
        stats = json.loads(p.read_text())
        stats.pop(shard_stats.KEY)
        p.write_text(json.dumps(stats))
    (out / "stats" / "part-00000-00004.json").unlink()  # a lost stats file: the same
    read = []
    real = fs.read_parquet

    def one_part(uri, *a, **k):
        assert uri.endswith(".parquet") and "/part-" in uri  # a part file, never a folder
        read.append(uri)
        return real(uri, *a, **k)

    monkeypatch.setattr(fs, "read_parquet", one_part)
    monkeypatch.setattr(summary, "table_of", lambda *a, **k: (_ for _ in ()).throw(AssertionError("table read")))
    assert summary.summarize(out) == want
    assert len(read) == 18  # docs + entities of each of the 9 shards
    data = run_report.compute(str(out))
    assert data["shards"] == {"summarised": 9, "from_parts": 9} and len(data["throughput"]["shards"]) == 8


def test_merged_reasons_keep_first_appearance_for_ties_and_top_is_flagged_when_cut(monkeypatch):
    t = shard_stats.Totals()
    def docs(errs: list[str]) -> pa.Table:
        return pa.table({"status": pa.array(["error"] * len(errs), pa.string()),
                         "n_words": pa.array([0] * len(errs), pa.int64()),
                         "n_tokens": pa.array([0] * len(errs), pa.int64()), "error": pa.array(errs, pa.string())})


    t.add(shard_stats.of_tables(docs(["b: 1", "a: 2"]), None))
    t.add(shard_stats.of_tables(docs(["c: 1", "a: 1", "b: 3"]), None))
    assert list(t.error_reasons().items()) == [("b", 2), ("a", 2), ("c", 1)]
    monkeypatch.setattr(shard_stats, "TOP_K", 2)
    ents = pa.table({"label": ["PER"] * 4, "text": ["x", "y", "z", "x"], "score": pa.array([0.5] * 4, pa.float32())})
    s = shard_stats.of_tables(docs([]), ents)
    assert s["top"]["PER"] == [["x", 2, 1.0], ["y", 1, 0.5]] and not s["top_complete"]
