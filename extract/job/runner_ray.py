"""Run shards on Ray Data: from_items(shards) -> three map_batches, each an actor pool.

The only module that imports ray. Shards are written by the job's own stages (resume per shard;
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
import os
import signal
import warnings
from typing import Any, Iterator

from extract.core.job_config import RayConfig
from extract.job.stages import shard_to_json
from extract.core.types import Shard
from extract.job.ray_stages import Finish, Infer, Prepare


FORWARDED_ENV = ("AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "HF_HUB_OFFLINE")
LOG_ENV = "NERBATCH_RAY_LOG"  # "info": Ray's INFO lines on the console too (default: warnings and errors)

_started = False  # whether init() started (or joined) Ray, so a run stopped early shuts it down


def _verbose() -> bool:
    return os.environ.get(LOG_ENV, "").strip().lower() in ("info", "debug", "1", "true", "yes")


def log_dir() -> str | None:
    """Where this driver's Ray session writes its logs (Ray Data's ray-data*.log among them)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001 - what ray.init made
    return os.path.join(node.get_session_dir_path(), "logs") if node is not None else None


def init(cfg: RayConfig) -> None:
    global _started
    import ray

    if ray.is_initialized():
        return
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _started = True  # from here on: a failed or interrupted start is shut down too (``shutdown``)
    stopped = None
    try:
        _start(cfg)
    except SystemExit as exc:  # SIGTERM while ray.init ran: its own handler's sys.exit(SIGTERM)
        if exc.code != signal.SIGTERM:
            raise
        stopped = exc
    finally:
        for signum, handler in handlers.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)  # the driver's own, not ray.init's sys.exit on SIGTERM
    if stopped is not None:
        os.kill(os.getpid(), signal.SIGTERM)  # the same signal once more, to the driver's own handler
        raise stopped


def _start(cfg: RayConfig) -> None:
    import ray

    # When a node dies, Ray first sees its actors as "temporarily unavailable" and retries their
    # tasks at once, using up ray.max_task_retries before it declares the node dead (~15 s).
    # Spacing those retries out (measured with scripts/cluster_check.sh) lets the shard move on.
    os.environ.setdefault("RAY_task_actor_unavailable_retry_delay_base_ms", "2000")
    os.environ.setdefault("RAY_task_actor_unavailable_retry_max_delay_ms", "10000")
    kwargs = {"ignore_reinit_error": True, "log_to_driver": True,
              "logging_level": logging.INFO if _verbose() else logging.WARNING}
    # Workers of a cluster we join do not see this shell's object-store settings: pass them on
    # (the embedded Ray's workers inherit them anyway).
    forward = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    if forward and (cfg.address or os.environ.get("RAY_ADDRESS")):
        kwargs["runtime_env"] = {"env_vars": forward}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)  # joining a cluster: the user's RAY_AUTH_MODE holds
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(**kwargs)
    else:
        # Token auth is on by default in Ray 2.60; an embedded single-user cluster does not need it.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", include_dashboard=False, num_cpus=cfg.num_cpus or None, **kwargs)


def shutdown() -> None:
    """Shut down the Ray that ``init`` started (nothing when Ray was running before)."""
    global _started
    import ray

    if _started:
        _started = False
        ray.shutdown()


def _quiet() -> None:
    """Ray Data's INFO lines off the console (its log files keep them), and its warning that
    progress bars are off (the job draws its own) not shown at all; nothing when NERBATCH_RAY_LOG
    asks for them."""
    from ray.util.debug import log_once

    log_once("ray_data_progress_manager_disabled")  # taken here: Ray Data's own warning never fires
    if _verbose():
        return
    from ray.data._internal.logging import SessionFileHandler

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, SessionFileHandler) and handler.level < logging.WARNING:
            handler.setLevel(logging.WARNING)


def _inline() -> None:
    """Ray Data's actor pool passes its DataContext and MapTransformer to each actor (and the
    context to each task) by value, not as refs from ``ray.put``: see the module docstring. Only
    where this Ray Data has those two properties (2.60); otherwise nothing changes."""
    from ray.data._internal.execution.operators import actor_pool_map_operator as apm

    op = getattr(apm, "ActorPoolMapOperator", None)
    if op is None or getattr(op, "_nerbatch_inline", False):
        return
    if not all(hasattr(op, a) for a in ("_map_transformer_ref", "_data_context_ref", "data_context")):
        return
    op._map_transformer_ref = property(lambda self: self._map_transformer)
    op._data_context_ref = property(lambda self: self.data_context)
    op._nerbatch_inline = True


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


PIECE_BLOCK_BYTES = 8 * 1024 * 1024


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


def check_output_visible(out_dir: str, *, timeout_s: float = 120.0, probe_writer: Any = None) -> None:
    """Refuse an output folder that the workers of a multi-node Ray cluster would write to their own
    disks: each alive node writes ``<out>/.probe-<node id>`` from a task pinned to it, and the driver
    must see every probe (it then deletes them). Call with Ray initialised (``init``).

    A single-node Ray (the embedded one) and object-store URIs (``s3://``, ``gs://``: shared by
    construction) are not probed; ``file://`` URIs and plain paths are. A node whose probe task
    raises (say, it cannot create the folder) is refused too; a node that dies or does not answer
    within ``timeout_s`` is left out with a warning. ``probe_writer(folder, name, token)`` replaces
    the function that writes a probe on the workers (tests; pickled by value, so define it locally).
    Raises ValueError naming the nodes.
    """
    import sys
    import uuid
    from urllib.parse import urlparse

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    scheme = urlparse(str(out_dir)).scheme
    if scheme and scheme != "file":
        return  # an object store: every node sees the same bucket
    path = urlparse(str(out_dir)).path if scheme == "file" else str(out_dir)
    folder = os.path.abspath(os.path.expanduser(path))  # the workers' working directories differ
    if not ray.is_initialized():
        raise RuntimeError("check_output_visible needs Ray initialised (runner_ray.init) first")
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}
    if len(nodes) <= 1:
        return

    def write_probe(folder: str, name: str, token: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(token)

    def probe(folder: str, name: str, token: str, writer: Any) -> bool:
        """On the node: write the probe; whether this node created the folder."""
        created = not os.path.isdir(folder)
        writer(folder, name, token)
        return created

    def unprobe(folder: str, name: str, created: bool) -> None:
        """On a node whose probe the driver cannot see: take back what the probe left there."""
        try:
            os.unlink(os.path.join(folder, name))
            if created:
                os.rmdir(folder)
        except OSError:
            pass

    token = uuid.uuid4().hex
    existed = os.path.isdir(folder)
    remote_probe = ray.remote(probe)
    refs = {remote_probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                node_id=node, soft=False)).remote(folder, f".probe-{node}", token, probe_writer or write_probe): node
            for node in nodes}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    for ref in pending:
        ray.cancel(ref, force=True)
    unwritable, invisible, skipped, created = [], [], [], {}
    for ref in ready:
        node = refs[ref]
        try:
            created[node] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            unwritable.append(f"{_node_name(node, nodes)}: {type(exc.cause).__name__}: {exc.cause}")
            continue
        except ray.exceptions.RayError as exc:  # the node died, or its worker did
            skipped.append(f"{_node_name(node, nodes)} ({type(exc).__name__})")
            continue
        probe_file = os.path.join(folder, f".probe-{node}")
        try:
            with open(probe_file, encoding="utf-8") as f:
                seen = f.read() == token
            os.unlink(probe_file)
        except OSError:
            seen = False
        if not seen:
            invisible.append(node)
    skipped += [f"{_node_name(refs[ref], nodes)} (no answer in {timeout_s:.0f}s)" for ref in pending]
    if skipped:
        print(f"warning: output.path {folder}: could not check worker node(s) {', '.join(skipped)}", file=sys.stderr)
    if invisible:  # take the probes back from the nodes' own disks
        remote_unprobe = ray.remote(unprobe)
        ray.wait([remote_unprobe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                      node_id=node, soft=False)).remote(folder, f".probe-{node}", created[node]) for node in invisible],
                 num_returns=len(invisible), timeout=timeout_s)
    if (invisible or unwritable) and not existed:
        try:
            os.rmdir(folder)  # made by a probe on the driver's node: leave nothing behind
        except OSError:
            pass
    if invisible:
        raise ValueError(f"output.path {folder} is not shared: files written by worker node(s) "
                         f"{', '.join(_node_name(n, nodes) for n in invisible)} are not visible to the driver. "
                         "Use shared storage (NFS, s3://...).")
    if unwritable:
        raise ValueError(f"output.path {folder} cannot be written from worker node(s) {'; '.join(unwritable)}. "
                         "Use a folder every node can write: shared storage (NFS, s3://...).")


def _node_name(node_id: str, nodes: dict) -> str:
    return f"{node_id[:12]} ({nodes.get(node_id, '?')})"


def settle_ray(out: str, data_dirs: tuple[str, ...], cfg: RayConfig) -> int:
    """Duplicate ids settled as Ray tasks with extract/job/duplicates.py's three steps (keys ->
    hash partitions, each settled in a task -> shard ranges rewritten in tasks); the driver holds
    shard ids and row counts only. Spill under ``OUT/_dups`` (removed at start and end). Without a
    running Ray the same steps run here (duplicates.settle). Returns the number of duplicate rows."""
    import ray

    from extract.core import fs
    from extract.job import duplicates as dup

    if not ray.is_initialized():
        return dup.settle(out, data_dirs)
    shard_ids = dup.shard_order(out)
    if not shard_ids:
        return 0
    n = len(shard_ids)

    def keys_task(ids_ref, lo: int, hi: int, folder: str, name: str, fan: int) -> list[int]:
        return dup.spill_keys(out, [(i, ids_ref[i]) for i in range(lo, hi)], folder, name, fan)

    spill = fs.join(out, dup.RAY_SPILL)
    dup.remove_spill(spill)
    # A whole CPU a task: each keeps a core busy reading and writing Parquet, and with a fraction Ray
    # ran more at once than there are cores, each in a new worker process paying Python's, Ray's
    # and pyarrow's start-up again.
    opts = {"num_cpus": max(1.0, cfg.cpus_per_task), "max_retries": 3}
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        groups = min(n, 4 * cpus)
        bounds = [(g * n // groups, (g + 1) * n // groups) for g in range(groups)]
        fan = dup.fanout_for(dup.estimate_rows(out, shard_ids), dup.MAX_ROWS)
        ids_ref = ray.put(shard_ids)
        keys_dir, later_dir = fs.join(spill, "keys"), fs.join(spill, "later")
        counts = ray.get([ray.remote(keys_task).options(**opts).remote(ids_ref, lo, hi, keys_dir, f"g{g:05d}", fan)
                          for g, (lo, hi) in enumerate(bounds)])
        # Each partition reads its files in group order, which is shard order.
        parts = [p for p in range(fan) if any(c[p] for c in counts)]
        settled = ray.get([ray.remote(dup.partition_task).options(**opts).remote(
            [fs.join(keys_dir, f"g{g:05d}-{p:05d}.arrow") for g in range(groups) if counts[g][p]],
            sum(c[p] for c in counts), later_dir, f"p{p:05d}", groups, n) for p in parts])
        total = sum(found for found, _ in settled)
        ray.get([ray.remote(dup.rewrite_task).options(**opts).remote(
            out, data_dirs, ids_ref,
            [fs.join(later_dir, f"p{p:05d}-{r:05d}.arrow") for p, (_, c) in zip(parts, settled) if c[r]],
            sum(c[r] for _, c in settled)) for r in range(groups) if any(c[r] for _, c in settled)])
        return total
    finally:
        dup.remove_spill(spill)
