"""Run shards on Ray Data: from_items(shards) -> three map_batches, each an actor pool.

With ray_session (Ray's lifecycle), ray_visibility (is the output shared?) and ray_settle (the
duplicate pass) the only job modules that import ray. Shards are written by the job's own stages (resume per shard;
Ray's write_parquet would append duplicates). With no address Ray starts embedded and local;
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

Signals: ``ray.init`` installs a SIGTERM handler of its own (it ended in "Aborted", exit 134);
``init`` puts back the driver's; a run stopped early stops its stream and Ray (``_stop``).

Console: Ray's INFO lines stay in Ray's log files (``log_dir``, named in the summary) unless
``NERBATCH_RAY_LOG=info``. The "constructor arguments in the object store and max_restarts > 0"
ERROR came from Ray Data 2.60 passing refs to its own DataContext and MapTransformer to every actor
(ray-project/ray#53727): ``_inline`` passes both by value. Stage functions: extract/job/ray_stages.py.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Iterator

from extract.core.job_config import RayConfig
from extract.job.stages import shard_to_json
from extract.core.types import Shard
from extract.job.ray_session import _inline, _quiet, init, log_dir, shutdown  # noqa: F401 - the runner's API
from extract.job.ray_settle import settle_ray  # noqa: F401 - the runner's API
from extract.job.ray_stages import Finish, Infer, Prepare
from extract.job.ray_visibility import check_output_visible  # noqa: F401 - the runner's API
def _no_idle_downscaling(ctx: Any) -> None:
    """A pool shrinks when its inputs are all consumed (at the end), or when it takes more than the
    resources Ray Data allots it, never because it was briefly under-used. Ray Data's default
    removes an actor whenever half a pool's slots are idle: a Finish pool of 2 waiting on the model
    lost an actor mid-job and, moments later with shards queued, started a new one paying a
    worker's start-up again (Ray Data's log). The pools are sized
    to the cluster when they start, so an idle actor waits for the next shard instead."""
    import dataclasses

    config = getattr(ctx, "autoscaling_config", None)
    if config is not None and hasattr(config, "actor_pool_util_downscaling_threshold"):
        ctx.autoscaling_config = dataclasses.replace(config, actor_pool_util_downscaling_threshold=-1.0)


PIECE_BLOCK_BYTES = 8 * 1024 * 1024  # Ray Data's block target for the job: a piece or two a block


def stage_tasks(cfg: RayConfig, cluster_cpus: float, n_shards: int) -> int:
    """Actors per CPU stage at most: ray.tasks_per_stage, or the CPUs the model actors leave,
    split between the two stages (at least 2, and num_actors: each model actor needs feeding).
    Never more than shards (Ray Data warns about a pool larger than its input)."""
    size = cfg.tasks_per_stage or max(2, cfg.num_actors,
                                      int((cluster_cpus - cfg.num_actors * cfg.cpus_per_actor) // 2))
    return max(1, min(size, n_shards))


def stage_pool(cfg: RayConfig, cluster_cpus: float, n_shards: int) -> dict:
    """A CPU stage's actor pool: up to ``stage_tasks`` actors, starting with as many as fit beside
    the model actors (both CPU stages alike), at least one. The minimum is 1 because Ray Data
    (2.60) reserves ``min_size`` actors' CPUs for a pool in its resource budget and never takes a
    pool below ``min_size`` when the budget is exceeded: a larger minimum on a small cluster would
    reserve more than there is. It starts ``initial_size`` actors without waiting for them
    (DataContext.wait_for_min_actors_s -1), so a pool that cannot place them all runs with what
    started and grows into what frees up."""
    size = stage_tasks(cfg, cluster_cpus, n_shards)
    fit = int((cluster_cpus - cfg.num_actors * cfg.cpus_per_actor) // (2 * cfg.cpus_per_task))
    return {"min_size": 1, "initial_size": max(1, min(size, fit)), "max_size": size}


def run_ray(processor_cls: Any, kwargs: dict, shards: list[Shard], cfg: RayConfig, threads: int) -> Iterator[dict]:
    """prepare -> infer (forward passes only) -> finish, each an actor pool, one shard per row,
    streamed: Ray Data's backpressure bounds how many shards are in flight."""
    if not shards:
        return
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    try:
        init(cfg)
    except BaseException:
        shutdown()
        raise
    _quiet()
    _inline()
    try:
        if kwargs.get("out"):
            check_output_visible(str(kwargs["out"]))
    except ValueError as exc:
        from extract.core.config import ConfigError

        raise ConfigError(str(exc)) from None
    max_task_retries = int(getattr(cfg, "max_task_retries", 3))  # -1: retry forever (Ray's own default)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the job prints its own progress over documents
    ctx.enable_operator_progress_bars = False
    # A model that does not load fails on every actor alike: stop at the first, no in-actor retries.
    ctx.max_consecutive_actor_init_deaths = 0
    ctx.actor_init_retry_on_errors = False
    # A shard's pieces leave the prepare actor as rows of ~2-5 MB; Ray Data packs a stage's output
    # rows into blocks of up to target_max_block_size (128 MB by default), which would hold dozens of
    # pieces in one block in the actors and the object store. Small blocks keep a piece or two each.
    ctx.target_max_block_size = PIECE_BLOCK_BYTES
    _no_idle_downscaling(ctx)
    # Ray sets OMP_NUM_THREADS=1 in workers; give torch the CPUs the actor reserved instead.
    threads = threads or max(1, math.ceil(cfg.cpus_per_actor))
    ds = ray.data.from_items([{"shard": shard_to_json(s)} for s in shards], override_num_blocks=len(shards))
    pool = stage_pool(cfg, float(ray.cluster_resources().get("CPU", 0)), len(shards))
    # Every stage an actor pool: a worker pays its imports once (ray_stages.py says what tasks cost).
    # A dead actor is replaced (max_restarts -1); each shard's retries are bounded here.
    actor = {"batch_size": 1, "batch_format": "numpy", "max_restarts": -1, "max_task_retries": max_task_retries}
    with warnings.catch_warnings():
        # Ray 2.60 deprecates extra remote args but has no named parameter for these two yet.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=DeprecationWarning)
        ds = ds.map_batches(Prepare, fn_constructor_kwargs={"cls": processor_cls, "kwargs": kwargs},
                            compute=ActorPoolStrategy(**pool), num_cpus=cfg.cpus_per_task, **actor)
        ds = ds.map_batches(
            Infer,
            fn_constructor_kwargs={"cls": processor_cls, "kwargs": {**kwargs, "threads": threads}},
            compute=ActorPoolStrategy(size=max(1, min(cfg.num_actors, len(shards)))),
            num_cpus=cfg.cpus_per_actor,
            num_gpus=cfg.gpus_per_actor or None,
            **actor,
        )
        ds = ds.map_batches(Finish, fn_constructor_kwargs={"cls": processor_cls, "kwargs": kwargs},
                            compute=ActorPoolStrategy(**pool), num_cpus=cfg.cpus_per_task, **actor)
    rows = iter(ds.iter_rows())
    finished = False
    try:
        yield from _shards(rows, kwargs.get("out"), cfg.cpus_per_task, max_task_retries)
        finished = True
    except ray.exceptions.RayTaskError as exc:  # a stage raised: say what, not Ray's wrapping
        raise RuntimeError(f"a Ray task failed: {_original_error(exc)}") from exc
    except ray.exceptions.RayActorError as exc:
        if getattr(exc, "actor_init_failed", False):
            raise RuntimeError(f"model failed to load on a Ray worker: {_original_error(exc)}") from exc
        raise RuntimeError(
            f"a Ray worker process died while processing a shard {max_task_retries + 1} time(s) in a row "
            f"(out of memory? a crash in native code?); ray.max_task_retries={max_task_retries} retries are "
            f"used up. Ray said: {exc}") from exc
    finally:
        if not finished:  # a signal, an error, or the driver stopped reading: stop the stream, then Ray
            _stop(rows)


def _shards(rows: Iterator, out: str, cpus: float, retries: int) -> Iterator[dict]:
    """Pieces' rows -> shards' rows: a one-piece shard's row as it comes; a shard of several pieces
    is assembled by a Ray task once all its pieces are in (extract/job/stages.py ``assemble``)."""
    import ray

    from extract.job.stages import PieceTracker, assemble

    tracker, running = PieceTracker(), []
    task = ray.remote(num_cpus=cpus, max_retries=retries)(assemble)
    for row in map(dict, rows):
        if int(row["pieces"]) == 1:
            yield row
            continue
        ready = tracker.add(row)
        if ready:
            running.append(task.remote(str(out), ready))
        if running:
            done, running = ray.wait(running, num_returns=len(running), timeout=0)
            yield from ray.get(done)
    yield from ray.get(running)


def _stop(rows) -> None:
    """Stop a cut stream (collected while Ray is up; Ray Data's after-stop warnings off), then Ray."""
    import gc
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    try:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
        del rows
        gc.collect()
    finally:
        shutdown()


def _original_error(exc: Exception) -> str:
    """The exception an actor's ``__init__`` raised, as 'Type: message', from Ray's ActorDiedError."""
    import ray

    task_error = exc if isinstance(exc, ray.exceptions.RayTaskError) else \
        next((a for a in exc.args if isinstance(a, ray.exceptions.RayTaskError)), None)
    cause = getattr(task_error, "cause", None)
    if cause is not None and not isinstance(cause, ray.exceptions.RayError):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else repr(exc)  # the remote traceback ends with 'Type: message'
