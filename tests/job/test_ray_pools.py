"""The CPU stages' actor pools on the embedded local Ray: an actor briefly idle waits for the next
shard; it is not removed and started again (each start is a worker process's imports)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


@pytest.mark.ray
def test_an_idle_cpu_stage_actor_is_kept_until_the_inputs_run_out(tmp_path, ray_local):
    from extract.core.job_config import RayConfig
    from extract.core.types import Shard
    from extract.job.runner_ray import log_dir, run_ray

    calls = tmp_path / "calls.log"

    class SlowModel:  # shipped by value to the workers: a model stage slower than finish
        def __init__(self, log: str, threads: int = 0, load_model: bool = True):
            self.log = log
            with open(self.log, "a") as f:
                f.write(f"init {os.getpid()} {int(load_model)}\n")

        def pieces(self, shard):  # the whole shard as one piece
            yield shard

        def infer(self, payload):
            time.sleep(0.4)  # one shard at a time reaches finish: half of a 2-actor Finish pool idles
            return payload

        def finish(self, payload):
            with open(self.log, "a") as f:
                f.write(f"finish {os.getpid()}\n")
            return {"shard": payload.shard_id, "piece": 0, "pieces": 1}

    ray_log = Path(log_dir()) / "ray-data" / "ray-data.log"
    seen = ray_log.stat().st_size if ray_log.exists() else 0
    shards = [Shard(shard_id=f"s{i:02d}", fmt="jsonl", file="x") for i in range(24)]
    # 1 model actor x 0.75 CPU on 2 CPUs: each CPU stage starts with 2 actors and has at most 2.
    rows = list(run_ray(SlowModel, {"log": str(calls)}, shards, RayConfig(num_actors=1), 1))
    assert sorted(r["shard"] for r in rows) == [s.shard_id for s in shards]

    lines = calls.read_text().split("\n")
    cpu_stage_inits = [line for line in lines if line.startswith("init ") and line.endswith(" 0")]
    finishers = {line.split()[1] for line in lines if line.startswith("finish ")}
    log = ray_log.read_bytes()[seen:].decode(errors="replace") if ray_log.exists() else ""
    downscales = [line for line in log.splitlines() if "Scaled down" in line and "reason=utilization" in line]
    print(f"{len(cpu_stage_inits)} CPU-stage actors started, {len(finishers)} ran finish; {downscales[:2]}")
    assert downscales == []  # Ray Data's default removes one at 50% use (then starts one again)
    assert len(cpu_stage_inits) == 4  # 2 Prepare + 2 Finish, none started twice
    assert 1 <= len(finishers) <= 2
