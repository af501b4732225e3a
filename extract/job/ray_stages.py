"""The three stages as the functions and callable class Ray Data runs (extract/job/runner_ray.py
builds the pipeline; this module imports no ray, so workers and tests import it cheaply). CPU
stages build the processor without its model, once per worker process; the model stage loads it
once per actor."""
from __future__ import annotations

from typing import Any

_STAGES: dict[str, Any] = {}


def _stage(factory: tuple) -> Any:
    key = repr(factory)  # the factory arrives unpickled anew with every task: key it by value
    if key not in _STAGES:
        cls, kwargs = factory
        _STAGES[key] = cls(**kwargs, load_model=False)
    return _STAGES[key]


# A stage's output for one shard travels as one binary cell (extract/transport.py: numpy arrays
# and a JSON tree of known types, no pickle).
def _pack(payload: Any) -> dict:
    from extract.job import transport

    return {"payload": [transport.dumps(payload)]}


def _unpack(batch: dict) -> list:
    from extract.job import transport

    return [transport.loads(bytes(b)) for b in batch["payload"]]


def prepare(batch: dict, factory: tuple) -> dict:
    from extract.job.stages import shard_from_json

    (shard,) = batch["shard"]
    return _pack(_stage(factory).prepare(shard_from_json(str(shard))))


def finish(batch: dict, factory: tuple) -> dict:
    (payload,) = _unpack(batch)
    return {k: [v] for k, v in _stage(factory).finish(payload).items()}


class Infer:
    """The model stage as Ray Data's callable class: loads the model once per actor."""

    def __init__(self, cls: Any, kwargs: dict):
        self.stage = cls(**kwargs)

    def __call__(self, batch: dict) -> dict:
        (payload,) = _unpack(batch)
        return _pack(self.stage.infer(payload))
