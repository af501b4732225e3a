"""scripts/bench_pipeline.py without Ray (fast): the corpus, the fake model, the ceiling measurement
on one small shard through the job's own stages, and the table."""
from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pyarrow.parquet as pq

from tests.helpers import ROOT


def _bench():
    name = "bench_pipeline_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "bench_pipeline.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_corpus_repeats_the_sample_with_new_ids(tmp_path):
    bench = _bench()
    facts = bench.make_corpus(tmp_path / "c.jsonl", 450)
    recs = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(recs) == facts["docs"] == 450 and len({r["id"] for r in recs}) == 450
    assert facts["words"] == sum(bench.text_words(r, ("title", "body")) for r in recs) > 0
    assert recs[200]["body"] == recs[0]["body"] and recs[200]["id"] != recs[0]["id"]


def test_fake_session_gives_seeded_logits_of_the_batch_shape():
    bench = _bench()
    feed = {"input_ids": np.zeros((3, 17), dtype=np.int64)}
    a, b = bench.FakeSession(9, 1).run(["logits"], feed)[0], bench.FakeSession(9, 1).run(["logits"], feed)[0]
    assert a.shape == (3, 17, 9) and a.dtype == np.float32 and np.array_equal(a, b)
    assert [i.name for i in bench.FakeSession(9, 1).get_inputs()] == list(bench.INPUTS)


def test_ceiling_runs_the_job_stages_and_the_table_reports_against_it(tmp_path):
    bench = _bench()
    corpus = bench.make_corpus(tmp_path / "c.jsonl", 60)
    cfg = bench.job_config(tmp_path / "c.jsonl", tmp_path / "out", 1, None)
    ceiling = bench.both_ceilings(bench.measure_ceiling(cfg, tmp_path / "out", 1),
                                  {"per_core_wps": 3.0})
    assert ceiling["docs"] == 60 and ceiling["words"] == corpus["words"]
    assert ceiling["before_wps"] > 0 and ceiling["after_wps"] == 3.0 and 0 < ceiling["forward_share"] < 1
    assert ceiling["per_core_wps"] == (ceiling["before_wps"] + 3.0) / 2
    docs = pq.read_table(next((tmp_path / "out" / "docs").glob("part-*.parquet")))
    assert docs.num_rows == 60 and set(docs.column("status").to_pylist()) == {"ok"}
    shards = [{"finished_at": 100.0, "words": 1000}, {"finished_at": 102.0, "words": 2000},
              {"finished_at": 104.0, "words": 2000}]
    assert bench.steady_state(shards) == (1000.0, 4.0, 2)
    job = {"wall": 10.0, "run_json": {"this_run": {"words": ceiling["job_words"], "seconds": 8.0, "shards": 3},
                                      "wall_seconds": 9.5},
           "actors": [{"process_cpu": 1.0, "forward_wall": 0.1, "infer_cpu": 0.2}], "shard_stats": shards,
           "started_at": 95.0, "run_json_mtime": 105.0,
           "stage_workers": [{"startup_cpu": 1.5, "first_at": 97.0, "prepare_cpu": 2.0, "finish_cpu": 3.0,
                              "prepare": 3, "finish": 3, "process_cpu": 7.0}],
           "cpu": {"seconds": {"cpu_stage_workers": 12.0, "model_actor": 1.0, "ray_processes": 2.0, "driver": 1.0},
                   "processes": {"cpu_stage_workers": 4, "model_actor": 1, "ray_processes": 5}}}
    text, result = bench.report(corpus, ceiling, job, 2, 1, 0.75)
    assert result["job_ceiling_wps"] == ceiling["per_core_wps"] * 2
    whole = result["rates"]["whole job (call -> run.json written)"]
    assert abs(whole["ratio"] - corpus["words"] / 10.0 / result["job_ceiling_wps"]) < 1e-9
    assert text.startswith("| quantity |") and "goal >= 0.8" in text and text.count("\n") == 15
    assert "first prepare began 2.0" in text and "first shard written 5.0" in text and "run.json written 10.0" in text
    # against the steps' own rate in the job (words / 5.0 CPU-s, x 2 cores): (words / 10 s) / (2 words / 5)
    assert abs(whole["ratio_to_in_job_steps"] - 0.25) < 1e-9
    assert any(line.startswith("| the same against the job's own steps") and "| 0.25 | not met |" in line
               for line in text.splitlines())
    assert "inside prepare + finish 5.0 CPU-s" in text and "start-up before the first step 1.5" in text
