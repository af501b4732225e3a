"""GPU path (skipped without CUDA; run by scripts/gpu_check.sh on a lent GPU machine)."""
from __future__ import annotations

import json

import pytest
from tests.helpers import common, run_cli, tables

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_job_matches_cpu_spans(tiny_model_dir, tmp_path, dtype):
    """The same spans on CUDA as on CPU (autocast may move scores in the 3rd decimal)."""
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": f"John Smith of Germany said {i} in New York. " * 20})
                           + "\n" for i in range(50)))
    base = ["--set", f"input.path={src}", "--set", "input.text_columns=[text]", "--set", "inference.batch_tokens=65536"]
    assert run_cli(*common(tiny_model_dir, tmp_path / "cpu", "local"), *base) == 0
    assert run_cli(*common(tiny_model_dir, tmp_path / "gpu", "local"), *base, "--set", "inference.device=cuda",
                   "--set", f"inference.dtype={dtype}") == 0
    cpu, gpu = (tables(tmp_path / d)[0].to_pylist() for d in ("cpu", "gpu"))
    spans = lambda rows: {(r["doc_id"], r["start"], r["end"], r["label"]) for r in rows}  # noqa: E731
    agree = len(spans(cpu) & spans(gpu)) / max(1, len(spans(cpu) | spans(gpu)))
    assert agree >= (1.0 if dtype == "fp32" else 0.95)


def test_cuda_on_ray_with_a_gpu_actor(tiny_model_dir, tmp_path, ray_local):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": "Angela Merkel in Bonn."}) + "\n" for i in range(200)))
    assert run_cli(*common(tiny_model_dir, tmp_path / "out", "ray"), "--set", f"input.path={src}",
                   "--set", "input.text_columns=[text]", "--set", "inference.device=cuda",
                   "--set", "inference.dtype=bf16",
                   "--set", "ray.gpus_per_actor=1", "--set", "ray.num_actors=1", "--set", "input.shard_bytes=2000") == 0
    _, docs = tables(tmp_path / "out")
    assert docs.num_rows == 200 and set(docs.column("status").to_pylist()) == {"ok"}
