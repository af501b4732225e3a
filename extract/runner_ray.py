"""Run shards on Ray Data: from_items(shards) -> map_batches(ShardProcessor, actor pool).

The only module that imports ray. Each actor loads the model once and processes whole shards,
writing their Parquet parts itself, so resume is per shard and a rerun never appends duplicates
(Ray's own write_parquet appends to a folder). With no address, Ray starts embedded and local;
``ray job submit`` sets RAY_ADDRESS, which ``ray.init()`` joins.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator

from extract.job_config import ExtractConfig
from extract.process import ShardProcessor, shard_to_json
from extract.readers import Shard


def _init(cfg: ExtractConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    # Token auth is on by default in Ray 2.60; an embedded single-user cluster does not need it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = {"ignore_reinit_error": True, "log_to_driver": True}
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, **kwargs)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        ray.init(address="local", include_dashboard=False, num_cpus=cfg.ray.num_cpus or None, **kwargs)


def run_ray(cfg: ExtractConfig, shards: list[Shard], out: Path) -> Iterator[dict]:
    if not shards:
        return
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    _init(cfg)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the job prints its own progress over documents
    ctx.enable_operator_progress_bars = False
    threads = cfg.inference.threads or max(1, math.ceil(cfg.ray.cpus_per_actor))
    actors = max(1, min(cfg.ray.num_actors, len(shards)))
    ds = ray.data.from_items([{"shard": shard_to_json(s)} for s in shards],
                             override_num_blocks=len(shards))
    ds = ds.map_batches(
        ShardProcessor,
        fn_constructor_kwargs={"cfg": cfg, "out": str(out.resolve()), "threads": threads},
        batch_size=1,
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cfg.ray.cpus_per_actor,
        num_gpus=cfg.ray.gpus_per_actor or None,
    )
    for row in ds.iter_rows():
        yield dict(row)
