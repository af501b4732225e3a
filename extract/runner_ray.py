"""Run shards on Ray Data: from_items(shards) -> map_batches(processor class, actor pool).

The only module that imports ray. Each actor loads its model(s) once and processes whole shards,
writing their Parquet parts itself, so resume is per shard and a rerun never appends duplicates
(Ray's own write_parquet appends to a folder). With no address, Ray starts embedded and local;
``ray job submit`` sets RAY_ADDRESS, which ``ray.init()`` joins.

Faults (Ray 2.60, measured on an embedded local Ray):
- A model that fails to load (the UDF's ``__init__`` raises) kills that actor; Ray Data fails the
  dataset on the first such death (``DataContext.max_consecutive_actor_init_deaths`` 0, set here
  because the context is process-wide) and never restarts it, so the job stops within seconds with
  ``RuntimeError("model failed to load on a Ray worker: <original error>")``.
- An actor process that dies mid-shard (OOM kill, segfault, SIGKILL) is restarted (``max_restarts``
  -1, Ray Data's default) and the shard retried on it; parts are written atomically, so a retry
  never duplicates rows. Ray Data's own default retries forever (``max_task_retries`` -1): a shard
  that kills every worker would loop, so retries are bounded by ``ray.max_task_retries`` and then
  the job stops with a RuntimeError (finished shards stay done: a rerun resumes).
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
    kwargs = {"ignore_reinit_error": True, "log_to_driver": True}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)  # joining a cluster: the user's RAY_AUTH_MODE holds
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        # Token auth is on by default in Ray 2.60; an embedded single-user cluster does not need it.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", include_dashboard=False, num_cpus=cfg.num_cpus or None, **kwargs)


def run_ray(processor_cls: Any, kwargs: dict, shards: list[Shard], cfg: RayConfig, threads: int) -> Iterator[dict]:
    if not shards:
        return
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    init(cfg)
    max_task_retries = int(getattr(cfg, "max_task_retries", 3))  # -1: retry forever (Ray's own default)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the job prints its own progress over documents
    ctx.enable_operator_progress_bars = False
    # A model that does not load fails on every actor alike: stop at the first, no in-actor retries.
    ctx.max_consecutive_actor_init_deaths = 0
    ctx.actor_init_retry_on_errors = False
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
        max_restarts=-1,  # a dead actor is replaced; each shard's retries are bounded below
        max_task_retries=max_task_retries,
    )
    try:
        for row in ds.iter_rows():
            yield dict(row)
    except ray.exceptions.RayActorError as exc:
        if getattr(exc, "actor_init_failed", False):
            raise RuntimeError(f"model failed to load on a Ray worker: {_original_error(exc)}") from exc
        raise RuntimeError(
            f"a Ray worker process died while processing a shard {max_task_retries + 1} time(s) in a row "
            f"(out of memory? a crash in native code?); ray.max_task_retries={max_task_retries} retries are "
            f"used up. Ray said: {exc}") from exc


def _original_error(exc: Exception) -> str:
    """The exception an actor's ``__init__`` raised, as 'Type: message', from Ray's ActorDiedError."""
    import ray

    task_error = next((a for a in exc.args if isinstance(a, ray.exceptions.RayTaskError)), None)
    cause = getattr(task_error, "cause", None)
    if cause is not None and not isinstance(cause, ray.exceptions.RayError):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else repr(exc)  # the remote traceback ends with 'Type: message'
