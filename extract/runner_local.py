"""Run shards in this process, one after another (no Ray)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from extract.job_config import ExtractConfig
from extract.process import ShardProcessor
from extract.readers import Shard


def run_local(cfg: ExtractConfig, shards: list[Shard], out: Path) -> Iterator[dict]:
    if not shards:
        return
    processor = ShardProcessor(cfg, str(out))
    for shard in shards:
        yield processor.process(shard)
