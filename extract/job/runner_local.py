"""Run shards in this process, one after another (no Ray): the same three stages, in a row."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from extract.core.types import Shard


def run_local(processor_cls: Callable[..., Any], kwargs: dict, shards: list[Shard], threads: int = 0) -> Iterator[dict]:
    """``threads``: the model's torch / ONNX Runtime threads, as the driver resolved them for both
    runners (extract/job/driver.py ``resolve_threads``); 0 leaves the processor's own setting."""
    if not shards:
        return
    processor = processor_cls(**kwargs, **({"threads": threads} if threads else {}))
    for shard in shards:
        yield processor.process(shard)
