"""Run shards on Ray Data: from_items(shards) -> map_batches(processor class, actor pool).

The only module that imports ray. Each actor loads its model(s) once and processes whole shards,
writing their Parquet parts itself, so resume is per shard and a rerun never appends duplicates
(Ray's own write_parquet appends to a folder). With no address, Ray starts embedded and local;
``ray job submit`` sets RAY_ADDRESS, which ``ray.init()`` joins.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterator

from extract.job_config import RayConfig
from extract.process import shard_to_json
from extract.readers import Shard


def init(cfg: RayConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    # Token auth is on by default in Ray 2.60; an embedded single-user cluster does not need it.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs = {"ignore_reinit_error": True, "log_to_driver": True}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        ray.init(address="local", include_dashboard=False, num_cpus=cfg.num_cpus or None, **kwargs)


def run_ray(processor_cls: Any, kwargs: dict, shards: list[Shard], cfg: RayConfig, threads: int) -> Iterator[dict]:
    if not shards:
        return
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    init(cfg)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the job prints its own progress over documents
    ctx.enable_operator_progress_bars = False
    # Ray sets OMP_NUM_THREADS=1 in workers; give torch the CPUs the actor reserved instead.
    threads = threads or max(1, math.ceil(cfg.cpus_per_actor))
    ds = ray.data.from_items([{"shard": shard_to_json(s)} for s in shards], override_num_blocks=len(shards))
    ds = ds.map_batches(
        processor_cls,
        fn_constructor_kwargs={**kwargs, "threads": threads},
        batch_size=1,
        compute=ActorPoolStrategy(size=max(1, min(cfg.num_actors, len(shards)))),
        num_cpus=cfg.cpus_per_actor,
        num_gpus=cfg.gpus_per_actor or None,
    )
    for row in ds.iter_rows():
        yield dict(row)
