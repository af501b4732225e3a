"""The three stages as the callable classes Ray Data runs (extract/job/runner_ray.py builds the
pipeline; this module imports no ray, so workers and tests import it cheaply). Each stage is an
actor pool: a CPU stage builds the processor without its model once per actor, the model stage
loads it once per actor.

Why actors for the CPU stages too: as Ray tasks, every new worker process paid Python, Ray's
worker and the job's imports, and Ray keeps only as many idle workers as the node has CPUs, so a
job kept starting new ones; as actor pools a few processes pay that start-up once each
(scripts/bench_pipeline.py; the numbers: docs/benchmarks/pipeline.md).
"""
from __future__ import annotations

from typing import Any, Iterator


# A stage's output for one shard travels as one binary cell (extract/job/transport.py: numpy
# arrays and a JSON tree of known types, no pickle).
def _pack(payload: Any) -> dict:
    from extract.job import transport

    return {"payload": [transport.dumps(payload)]}


def _unpack(batch: dict) -> list:
    from extract.job import transport

    return [transport.loads(bytes(b)) for b in batch["payload"]]


class _CpuStage:
    """A CPU stage's actor: the processor without its model (the tokenizer and settings only)."""

    def __init__(self, cls: Any, kwargs: dict):
        self.stage = cls(**kwargs, load_model=False)


class Prepare(_CpuStage):
    """Read, tokenise, windows: one shard descriptor in, its pieces out, one row each as it is
    ready (a generator: Ray Data streams them on, so the actor never holds the whole shard)."""

    def __call__(self, batch: dict) -> Iterator[dict]:
        from extract.job.stages import shard_from_json

        (shard,) = batch["shard"]
        for payload in self.stage.pieces(shard_from_json(str(shard))):
            yield _pack(payload)


class Infer:
    """The model stage: forward passes only."""

    def __init__(self, cls: Any, kwargs: dict):
        self.stage = cls(**kwargs)

    def __call__(self, batch: dict) -> dict:
        (payload,) = _unpack(batch)
        return _pack(self.stage.infer(payload))


class Finish(_CpuStage):
    """Merge windows, decode, write the piece (the shard's parts, or staged): its stats row out."""

    def __call__(self, batch: dict) -> dict:
        (payload,) = _unpack(batch)
        return {k: [v] for k, v in self.stage.finish(payload).items()}
