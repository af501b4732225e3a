"""Run shards in this process, one after another (no Ray): the same three stages, in a row."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from extract.core.types import Shard


def run_local(processor_cls: Callable[..., Any], kwargs: dict, shards: list[Shard]) -> Iterator[dict]:
    if not shards:
        return
    processor = processor_cls(**kwargs)
    for shard in shards:
        yield processor.process(shard)
