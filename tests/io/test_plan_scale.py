"""Plans at any size: shard ids sort in plan order past 100,000 shards of one file and past
100,000 input files (planning only: no record is read)."""
from __future__ import annotations

import os

import pytest

from extract.core.job_config import InputConfig
from extract.io.plan import plan


def test_ids_sort_in_plan_order_past_100k_shards_of_one_sparse_file(tmp_path):
    big = tmp_path / "dump.jsonl"
    with open(big, "wb") as f:
        f.truncate(100_123 * 100)  # sparse: no disk used, 100,123 shards of 100 bytes
    shards, facts = plan(InputConfig(path=(str(big),), shard_bytes=100))
    ids = [s.shard_id for s in shards]
    assert facts["shards"] == len(ids) == 100_123
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0] == "00000-000000" and ids[-1] == "00000-100122"
    assert [s.start for s in shards] == sorted(s.start for s in shards)


def test_small_plans_keep_the_ids_they_always_had(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text('{"id": "a", "text": "x"}\n' * 10)
    shards, _ = plan(InputConfig(path=(str(tmp_path),), shard_bytes=100))
    assert shards[0].shard_id == "00000-00000" and shards[-1].shard_id.startswith("00002-")


@pytest.mark.slow
def test_ids_sort_in_plan_order_past_100k_input_files(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    n = 100_050
    for i in range(n):
        fd = os.open(folder / f"f{i}.jsonl", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"\n")  # one blank line: a shard each; planning stats them, reads nothing
        os.close(fd)
    shards, facts = plan(InputConfig(path=(str(folder),)))
    ids = [s.shard_id for s in shards]
    assert facts["files"] == n and len(ids) == n
    assert ids == sorted(ids) and len(set(ids)) == n
    assert ids[-1] == f"{n - 1:06d}-00000"


def test_auto_shard_bytes_sizes_for_time_to_output_not_memory():
    from extract.io.plan import AUTO_MAX, AUTO_MAX_GPU, AUTO_MIN, auto_shard_bytes

    assert auto_shard_bytes(0, 1) == auto_shard_bytes(5_000_000, 1) == AUTO_MIN  # small: 1 MB shards
    assert auto_shard_bytes(400_000_000, 1) == AUTO_MAX == 2_000_000  # CPU: ~30 s of one worker at most
    tb = 10**12
    assert auto_shard_bytes(tb, 8) == AUTO_MAX  # a terabyte on 8 CPU actors: ~500k shards of 2 MB
    assert auto_shard_bytes(tb, 8, gpu=True) == AUTO_MAX_GPU == 64_000_000  # GPU workers: ~16k shards
    assert auto_shard_bytes(tb, 64, gpu=True) == 62_000_000  # many GPU workers: 256 shards each
    assert auto_shard_bytes(10**15, 1, gpu=True) == AUTO_MAX_GPU


def test_a_sparse_terabyte_plans_compactly_and_round_trips(tmp_path):
    from extract.io.plan import load_plan, save_plan

    big = tmp_path / "dump.jsonl"
    with open(big, "wb") as f:
        f.truncate(10**12)  # a sparse 1 TB JSON-lines file: planning reads no record
    cfg = InputConfig(path=(str(big),), shard_bytes=1_000_000)
    shards, facts = plan(cfg)
    assert len(shards) == facts["shards"] == 1_000_000 and facts["bytes"] == 10**12
    out = tmp_path / "out"
    out.mkdir()
    save_plan(out, cfg, shards, facts)
    assert (out / "plan.json").stat().st_size < 10_000  # ranges by rule, not a million objects
    again, _ = load_plan(out, cfg)
    assert len(again) == len(shards) and again[-1] == shards[-1] and again[123_456] == shards[123_456]
    assert again.get(shards[999_999].shard_id) == shards[999_999] and again.get("00000-9999999") is None
    auto, facts = plan(InputConfig(path=(str(big),)), workers=4)  # the default: auto, CPU workers
    assert facts["shard_bytes"] == 2_000_000 and len(auto) == 500_000
    auto, facts = plan(InputConfig(path=(str(big),)), workers=4, gpu=True)
    assert facts["shard_bytes"] == 64_000_000 and len(auto) == 15_625


def test_pending_skips_done_shards_lazily(tmp_path):
    big = tmp_path / "dump.jsonl"
    with open(big, "wb") as f:
        f.truncate(1000)
    shards, _ = plan(InputConfig(path=(str(big),), shard_bytes=100))
    done = {s.shard_id for s in list(shards)[:4]}
    pending = shards.pending(done)
    assert len(pending) == 6 and [s.shard_id for s in pending] == [s.shard_id for s in list(shards)[4:]]


def test_plan_command_plans_without_running_and_run_reuses_it(tmp_path, tiny_model_dir, capsys):
    import json

    from extract.__main__ import main
    from tests.helpers import ROOT, SAMPLE, common

    out = tmp_path / "out"
    args = ["--config", str(ROOT / "configs" / "extract.yaml"), *common(tiny_model_dir, out, "local"),
            "--set", f"input.path=[{SAMPLE}]", "--set", "input.shard_bytes=40000"]
    assert main(["plan", *args]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "plan.json").read_text())
    n = len(saved["shards"])
    assert f"shards:    {n:,} (0 already done)" in printed and "40,000 bytes" in printed
    assert not (out / "docs").exists() or not any((out / "docs").iterdir())  # nothing ran
    assert main(["run", *args, "--show", "0"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["plan"] == "reused from plan.json" and run["this_run"]["shards"] == n
    assert main(["plan", *args]) == 0 and f"({n:,} already done)" in capsys.readouterr().out


def test_planning_a_terabyte_never_imports_torch(tmp_path, tiny_model_dir):
    """The plan command is a look at a corpus from an ordinary head node: it checks the model
    folder (config.json, tokenizer, safetensors header, known model_type) without torch."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    big = tmp_path / "dump.jsonl"
    with open(big, "wb") as f:
        f.truncate(1 << 40)  # 1 TB, sparse
    probe = ("import sys; from extract.__main__ import main; "
             f"rc = main(['plan', '--set', 'model.path={tiny_model_dir}', '--set', 'input.path={big}', "
             f"'--set', 'output.path={tmp_path / 'out'}', '--set', 'ray.num_actors=8']); "
             "print('torch' in sys.modules, 'transformers.modeling_utils' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # 2 MB auto shards
    assert "shards:    549,756" in done.stdout and done.stdout.strip().endswith("False False"), done.stdout


def test_cpu_stage_pools_grow_with_the_cores_beside_the_actors():
    from extract.core.job_config import RayConfig
    from extract.job.runner_ray import stage_tasks

    assert stage_tasks(RayConfig(), 2, 100) == 2  # this machine: 2 actors x 0.75 CPU leave 0.5
    gpu_node = RayConfig(num_actors=1, cpus_per_actor=1, gpus_per_actor=1)
    assert stage_tasks(gpu_node, 16, 1000) == 7  # 15 cores beside the one GPU actor, two stages
    assert stage_tasks(gpu_node, 16, 3) == 3  # never more tasks than shards
    assert stage_tasks(RayConfig(num_actors=8), 8, 100) == 8  # each actor fed
    assert stage_tasks(RayConfig(tasks_per_stage=5), 64, 100) == 5


def test_cpu_stage_actor_pools_start_with_what_fits_and_never_wait_for_more():
    from extract.core.job_config import RayConfig
    from extract.job.runner_ray import stage_pool

    # Ray Data reserves a pool's min_size actors' CPUs and never shrinks it below: the minimum is 1.
    assert stage_pool(RayConfig(num_actors=1), 2, 24) == {"min_size": 1, "initial_size": 2, "max_size": 2}
    # 2 model actors x 0.75 leave 0.5 CPU: one 0.25-CPU worker per stage fits at the start, 2 at most.
    assert stage_pool(RayConfig(), 2, 100) == {"min_size": 1, "initial_size": 1, "max_size": 2}
    # 40 workers asked on 4 CPUs: 3.25 CPUs left fit 6 per stage at 0.25 each.
    assert stage_pool(RayConfig(num_actors=1, tasks_per_stage=40), 4, 100) == \
        {"min_size": 1, "initial_size": 6, "max_size": 40}
    # A model actor that takes every CPU still leaves each stage one worker to start with.
    assert stage_pool(RayConfig(num_actors=1, cpus_per_actor=2), 2, 10)["initial_size"] == 1
