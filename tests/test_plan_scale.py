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
