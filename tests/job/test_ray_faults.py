"""Ray runner faults on the embedded local Ray: a killed actor, a model that fails to load on the
workers, a worker that keeps dying, and which Ray gets token auth turned off."""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import common, run_cli, tables

WORKER = "ray::MapWorker(MapBatches(Infer))"  # the model stage's actor


def _corpus(path: Path, n: int) -> Path:
    rows = [{"id": f"d{i}", "text": f"John Smith of Germany said {i} times in New York. " * 4} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _busy_workers(idle_too: bool = False) -> list[int]:
    """Pids of this process's Ray model actors that are running a shard right now (or any)."""
    import psutil

    pids = []
    for p in psutil.Process().children(recursive=True):
        try:
            title = (p.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if title.startswith(WORKER + ".submit") or (idle_too and title.startswith(WORKER)):
            pids.append(p.pid)
    return pids


@pytest.mark.ray
def test_actor_killed_mid_job_is_replaced_and_every_record_written_once(tiny_model_dir, tmp_path, ray_local):
    corpus = _corpus(tmp_path / "c.jsonl", 1200)
    out = tmp_path / "out"
    rc: list = []
    job = threading.Thread(target=lambda: rc.append(run_cli(
        *common(tiny_model_dir, out, "ray"), "--set", f"input.path={corpus}", "--set", "input.text_columns=[text]",
        "--set", "input.shard_bytes=3000")))
    t0 = time.time()
    job.start()
    killed = first_done = None
    while job.is_alive() and killed is None and time.time() - t0 < 120:
        # The model stage is quick on a tiny model: prefer a busy actor, take any after a while.
        done = list((out / "docs").glob("part-*"))
        first_done = first_done or (time.time() if done else None)
        busy = _busy_workers(idle_too=time.time() - first_done > 1) if done else []
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)  # mid-shard: the worker's title says it is in submit()
        time.sleep(0.05)
    job.join(timeout=300)
    print(f"killed worker {killed}; job took {time.time() - t0:.1f}s")
    assert killed is not None, "no busy actor found to kill"
    assert rc == [0]
    ents, docs = tables(out)
    ids = docs.column("doc_id").to_pylist()
    assert sorted(ids) == sorted(f"d{i}" for i in range(1200))  # every record exactly once
    assert set(docs.column("status").to_pylist()) == {"ok"}
    keys = [(r["doc_id"], r["start"], r["end"], r["label"]) for r in ents.to_pylist()]
    assert keys and len(keys) == len(set(keys))  # no duplicate entity rows
    per_doc: dict = {}
    for d, *_ in keys:
        per_doc[d] = per_doc.get(d, 0) + 1
    assert all(r["n_entities"] == per_doc.get(r["doc_id"], 0) for r in docs.to_pylist())
    report = json.loads((out / "run.json").read_text())
    assert report["complete"] and report["documents"] == 1200


@pytest.mark.ray
def test_model_that_fails_to_load_on_the_workers_fails_the_job_fast(tiny_model_dir, tmp_path, ray_local, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    # The driver checks config.json, the safetensors header and tokenizer.json; weights whose shapes
    # disagree with the config only fail when a worker builds the model.
    cfg = json.loads((model / "config.json").read_text())
    cfg["intermediate_size"] = 65
    (model / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    t0 = time.time()
    rc = run_cli(*common(model, tmp_path / "out", "ray"))
    seconds = time.time() - t0
    err = capsys.readouterr().err
    line = next((x for x in err.splitlines() if x.startswith("error: ")), "")
    with capsys.disabled():
        print(f"\nfailed after {seconds:.1f}s: {line}")
    assert rc == 1
    # the original cause, from the worker's __init__, in the one line the CLI prints
    assert "RuntimeError: model failed to load on a Ray worker:" in line and "ignore_mismatched_sizes" in line
    assert seconds < 60  # the first actor's death fails the job: no restarts, no retries


def test_a_broken_tokenizer_fails_before_any_work(tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "tokenizer.json").write_text('{"version": "1.0", "truncat')
    assert run_cli(*common(model, tmp_path / "out", "local")) == 2
    assert "tokenizer.json does not load" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_worker_that_keeps_dying_stops_the_job_after_max_task_retries(tmp_path, ray_local):
    from extract.core.job_config import RayConfig
    from extract.core.types import Shard
    from extract.job.runner_ray import run_ray

    log = tmp_path / "calls.log"

    class Dies:  # defined here so Ray ships it by value to the workers; its model stage dies
        def __init__(self, log: str, threads: int = 0, load_model: bool = True):
            self.log = log

        def pieces(self, shard):  # the whole shard as one piece
            yield shard

        def infer(self, payload):
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()}\n")
            os._exit(1)

        def finish(self, payload):
            return {"docs": 0, "piece": 0, "pieces": 1}

    cfg = RayConfig(num_actors=1, max_task_retries=2)
    t0 = time.time()
    with pytest.raises(RuntimeError, match=r"ray.max_task_retries=2") as info:
        list(run_ray(Dies, {"log": str(log)}, [Shard(shard_id="s0", fmt="jsonl", file="x")], cfg, 1))
    print(f"gave up after {time.time() - t0:.1f}s: {type(info.value.__cause__).__name__}")
    assert len(log.read_text().split()) == 3  # the first attempt and two retries, each on a new process
    assert len(set(log.read_text().split())) == 3
    assert isinstance(info.value.__cause__, ray_local.exceptions.RayActorError)


@pytest.mark.ray
@pytest.mark.parametrize("joins", ["address", "RAY_ADDRESS", None])
def test_token_auth_is_disabled_only_for_the_embedded_ray(monkeypatch, joins):
    import ray

    from extract.job import runner_ray
    from extract.core.job_config import RayConfig

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append((kw, os.environ.get("RAY_AUTH_MODE"))))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if joins == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    runner_ray.init(RayConfig(address="ray://head:10001" if joins == "address" else None))
    (kwargs, auth), = calls
    if joins:
        assert auth is None and "RAY_AUTH_MODE" not in os.environ  # the cluster's own setting holds
        assert kwargs.get("address") in ("ray://head:10001", None)
    else:
        assert auth == "disabled" and kwargs["address"] == "local"
