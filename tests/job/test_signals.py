"""SIGTERM and SIGINT to the driver, on both runners: the job stops with 143 / 130 and one line
saying how to resume, keeps its finished shards, lets go of the output lock (and shuts Ray down),
and a rerun of the same command completes to the tables of an uninterrupted run. Also: both
runners at their default thread settings write bit-identical tables (the driver resolves one
thread count for both, extract/job/driver.py ``resolve_threads``)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extract.job.output import LOCK
from tests.helpers import ROOT, check_sample_output, tables

SHARDS = 35  # the corpus below at input.shard_bytes=20000: ~10 s of work for the tiny model


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"), *args]


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _args(model: Path, corpus: Path, out: Path, runner: str) -> list[str]:
    # No inference.threads: the default (0) is what both runners must agree on.
    return ["--set", f"model.path={model}", "--set", f"output.path={out}", "--set", f"runner={runner}",
            "--set", f"input.path={corpus}", "--set", "input.text_columns=[text]", "--set", "input.shard_bytes=20000",
            "--set", "model.labels=[PER, LOC, ORG, MISC]", "--set", "show_progress=false", "--show", "0"]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)


def _sorted(out: Path):
    ents, docs = tables(out)
    return (ents.sort_by([("doc_id", "ascending"), ("start", "ascending"), ("label", "ascending")]),
            docs.sort_by([("shard", "ascending"), ("index", "ascending")]))


def _parts(out: Path) -> int:
    return len(list((out / "docs").glob("part-*.parquet")))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "c.jsonl"
    rows = [{"id": f"d{i}", "text": f"John Smith of Germany said {i} times in New York. " * 4} for i in range(3000)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def clean(tiny_model_dir, corpus, tmp_path_factory):
    """The tables of an uninterrupted local run."""
    out = tmp_path_factory.mktemp("signals") / "clean"
    r = _run(_args(tiny_model_dir, corpus, out, "local"))
    assert r.returncode == 0, r.stderr
    assert f"{SHARDS} shards planned" in r.stdout
    return _sorted(out)


def _interrupt_and_resume(model: Path, corpus: Path, out: Path, runner: str, signum: int, clean) -> None:
    args = _args(model, corpus, out, runner)
    job = subprocess.Popen(_cli(*args), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    t0 = time.time()
    while _parts(out) == 0 and job.poll() is None and time.time() - t0 < 300:
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before its first shard was seen"
    os.kill(job.pid, signum)  # the first shard is done: the job is mid-run
    stdout, stderr = job.communicate(timeout=180)
    name = signal.Signals(signum).name
    assert job.returncode == 128 + signum, (job.returncode, stderr[-3000:])
    lines = [line for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(f"stopped by {name}: ")]
    assert len(said) == 1, stderr
    m = re.fullmatch(rf"stopped by {name}: (\d+) of {SHARDS} shards are done and kept; rerun the same command to "
                     r"resume\.", said[0])
    assert m, said[0]
    done = int(m.group(1))
    assert 1 <= done <= _parts(out) < SHARDS  # finished shards kept, the job stopped mid-run
    for bad in ("Traceback", "Aborted", "core dumped", "SystemExit", "KeyboardInterrupt"):
        assert bad not in stderr + stdout, stderr
    assert not [line for line in lines if re.match(r"\[.* E \d+ \d+\]", line)], stderr  # no Ray ERROR line
    assert not (out / LOCK).exists()  # the lock went with the job
    # The same command again does only the rest and ends with the uninterrupted run's tables.
    r = _run(args)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"{SHARDS} shards planned, (\d+) already done", r.stdout), r.stdout
    assert int(re.search(r"(\d+) already done", r.stdout).group(1)) >= done
    ents, docs = _sorted(out)
    assert ents.num_rows > 0 and ents.equals(clean[0]) and docs.equals(clean[1])
    assert docs.num_rows == 3000 and not list(out.rglob("*.tmp")) and not (out / LOCK).exists()


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_runner_cleanly_and_a_rerun_completes(tiny_model_dir, corpus, clean, tmp_path, runner,
                                                                 signum):
    _interrupt_and_resume(tiny_model_dir, corpus, tmp_path / "out", runner, signum, clean)


@pytest.mark.ray
@pytest.mark.slow
def test_both_runners_write_bit_identical_tables_at_equal_threads_with_the_real_model(tmp_path):
    """The bundled model on 13 shards of the sample (input.shard_bytes=12000), inference.threads
    set to the same count on both (the local default is the machine's cores, a Ray actor's its
    reserved CPUs): scores, offsets and every docs column equal to the last bit."""
    outs = {}
    for runner in ("local", "ray"):
        out = outs[runner] = tmp_path / runner
        r = _run(["--set", f"output.path={out}", "--set", f"runner={runner}", "--set", "input.shard_bytes=12000",
                  "--set", "inference.threads=2", "--set", "show_progress=false", "--show", "0"])
        assert r.returncode == 0, r.stderr
        assert "13 shards planned" in r.stdout
        check_sample_output(out)
    (ents_l, docs_l), (ents_r, docs_r) = _sorted(outs["local"]), _sorted(outs["ray"])
    assert ents_l.num_rows > 1000
    assert ents_l.equals(ents_r) and docs_l.equals(docs_r)
    assert ents_l.column("score").to_pylist() == ents_r.column("score").to_pylist()


def test_the_driver_resolves_each_runners_thread_count(monkeypatch, tmp_path):
    """Model replicas' torch threads, resolved once in the driver: inference.threads on both
    runners; when 0, the process's cores on the local runner and the CPUs of one Ray model actor
    (rounded up) on Ray."""
    from extract.core.job_config import InputConfig, RayConfig
    from extract.job import driver, runner_local, runner_ray

    seen = {}

    def runner(name):
        def run(*args):
            seen[name] = args[-1]  # the threads argument
            return iter(())
        return run

    monkeypatch.setattr(runner_local, "run_local", runner("local"))
    monkeypatch.setattr(runner_ray, "run_ray", runner("ray"))
    monkeypatch.setattr(runner_ray, "log_dir", lambda: None)
    monkeypatch.setattr(driver.os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 7})
    for threads, ray_cfg, expected in ((0, RayConfig(), {"local": 5, "ray": 1}),
                                       (0, RayConfig(cpus_per_actor=2.5), {"local": 5, "ray": 3}),
                                       (4, RayConfig(cpus_per_actor=2.5), {"local": 4, "ray": 4})):
        seen.clear()
        for name in ("local", "ray"):
            job = driver.JobSpec(object, {}, InputConfig(), str(tmp_path), {}, [], "entities", name, ray_cfg,
                                 threads, False)
            driver.execute(job, str(tmp_path), [])
        assert seen == expected
