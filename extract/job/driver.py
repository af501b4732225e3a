"""The one driver: plan shards (or reuse the plan), skip finished ones, run the rest on a runner,
settle duplicate ids. The entity job (extract/job/entities.py) and teacher labelling
(training/label.py) differ only in the processor they hand it and the identity of their settings.

One writer per output folder: ``drive`` holds the folder's lock (extract/job/output.py) from
before it prepares the folder to its end; inside ``lock_scope`` (the CLI) until the scope ends, so
run.json is written under it too. SIGTERM and SIGINT (``signals``) stop the job between two
Python steps: finished shards stay (each is written atomically, its docs part last), the lock is
released, Ray shut down, and ``Interrupted`` tells the caller how far the job got.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from extract.core import fs
from extract.core.signals import on_stop_signals, restore
from extract.job.attempts import FOLDER as ATTEMPTS
from extract.job.identity import job_identity
from extract.core.job_config import InputConfig, RayConfig
from extract.job.output import check_not_inputs, check_output_path, lock, prepare
from extract.job.runners import Runner, runner_for
from extract.io.plan import Pending, Plan, input_stamps, load_plan, plan, probe_columns, save_plan


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What the one driver needs from a job (entities or teacher labels): its processor and the
    parts of its config the driver reads."""

    processor_cls: Any
    processor_kwargs: dict  # the processor's own arguments (its config, the model id ...)
    input: InputConfig
    output_path: str
    settings: dict  # every setting that changes outputs, for the job's identity
    model_dirs: list[Path]
    data_dir: str  # "entities" | "silver": the folder of the per-shard data parts
    runner: str
    ray: RayConfig
    threads: int
    show_progress: bool


class Interrupted(BaseException):
    """SIGTERM or SIGINT reached the driver (``signals``). A BaseException, like KeyboardInterrupt,
    so no per-record ``except Exception`` turns it into an error row. ``done``/``total``: shards
    done (before this run and in it) of the plan, when the driver got that far."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.done: int | None = None
        self.total: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process the signal ended: 143, 130


@contextlib.contextmanager
def signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Interrupted`` in the main thread while inside; a second one
    while the first is being handled (Ray shutting down) exits at once with the same code."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum, frame):
        if seen:
            os._exit(128 + signum)
        seen.append(signum)
        raise Interrupted(signum)

    previous = on_stop_signals(handler)
    try:
        yield
    finally:
        restore(previous)


_SCOPES: list[list] = []  # open ``lock_scope``s, innermost last: the locks to release at their end


@contextlib.contextmanager
def lock_scope() -> Iterator[None]:
    """Output locks that ``drive`` takes inside are held until this ends (normally, on an error or
    a signal), so what the caller writes after ``drive`` (run.json) is written under the lock."""
    held: list = []
    _SCOPES.append(held)
    try:
        yield
    finally:
        _SCOPES.remove(held)
        for lk in reversed(held):
            lk.release()


def runner(job: JobSpec) -> Runner:
    return runner_for(job.runner, job.ray)


def drive(job: JobSpec, overwrite: bool, plan_only: bool = False) -> dict:
    """Plan (or reuse the saved plan), check, prepare the output, run the pending shards, settle
    duplicates; the run's facts. Holds the output folder's lock from before the folder is prepared
    to the end (or to the end of the enclosing ``lock_scope``). ``plan_only`` (``extract plan``):
    stop once plan.json is saved (under the same checks and lock); a later run reuses it."""
    t0 = time.perf_counter()
    out = check_output_path(job.output_path)
    saved = None if overwrite else load_plan(out, job.input)
    shards, facts = saved or plan(job.input, runner(job).workers(), runner(job).gpu())
    stamps = input_stamps(shards)
    check_not_inputs(out, [f for f, _, _ in stamps])
    if saved is None:
        probe_columns(shards, job.input)
    facts["planning_seconds"] = round(time.perf_counter() - t0, 3)
    identity = job_identity(job.settings, stamps, job.model_dirs)
    held = lock(out)  # one writer per folder: a second job is refused here, before anything is written
    if _SCOPES:
        _SCOPES[-1].append(held)
    pending: list = []
    try:
        prepare(out, identity, (job.data_dir, "docs", ATTEMPTS, "stats"), overwrite, fresh=held.created_folder)
        if saved is None:
            save_plan(out, job.input, shards, facts)
        if plan_only:
            return {"out": out, "input": facts, "plan": shards,
                    "done": len(shards) - len(shards.pending(done_ids(out)))}
        pending = pending_shards(shards, out)
        this_run = execute(job, str(out), pending)
        facts["duplicate_ids"] = settle_duplicates(job, out)
        missing = len(shards.pending(done_ids(out)))
    except Interrupted as exc:
        exc.total = len(shards)
        exc.done = _count_done(out, len(shards) - len(pending) + getattr(exc, "finished_this_run", 0))
        runner(job).stop()  # stopped after the shards (settling duplicates): Ray goes now too
        raise
    finally:
        if not _SCOPES:
            held.release()
    return {"out": out, "input": facts, "this_run": this_run, "complete": not missing}


def _count_done(out, fallback: int) -> int:
    """Shards done now, from one listing of the docs folder (a Ray worker may have finished a shard
    whose row the driver has not read yet); ``fallback`` when it cannot be listed."""
    from extract.core import listing

    try:
        names = listing.listdir(fs.join(str(out), "docs"))
    except OSError:
        return fallback
    return sum(1 for n in names if n.startswith("part-") and n.endswith(".parquet"))


def write_json(path: str, data: dict) -> None:
    fs.write_bytes_atomic(str(path), json.dumps(data, indent=2, default=str).encode("utf-8"))


def resolve_threads(threads: int, ray_cfg: RayConfig, runner_name: str = "ray") -> int:
    """torch / ONNX Runtime threads of a model replica. ``inference.threads`` when > 0 (set it to
    compare runners: a forward pass with another thread count may sum in another order and change
    a score in its last bits). When 0: on the local runner the process's cores (the one model
    replica has the machine), on Ray the CPUs a model actor reserves (``ray.cpus_per_actor``,
    rounded up; Ray's workers run with OMP_NUM_THREADS=1 otherwise)."""
    return runner_for(runner_name, ray_cfg).threads(threads)


def execute(job: JobSpec, out: str, pending: Pending) -> dict:
    """Run pending shards on the chosen runner with a progress bar; this run's counts and speed."""
    kwargs = {**job.processor_kwargs, "out": out}
    run_with = runner(job)
    threads = run_with.threads(job.threads)
    logs = None
    results = run_with.run(job.processor_cls, kwargs, pending, threads)
    done_docs = done_words = done_shards = 0
    t_run = time.time()
    # Progress in shards: a byte-range shard's record count is only known once it is read.
    bar = _progress(len(pending), job.show_progress)
    try:
        for result in results:
            done_shards += 1
            done_docs += int(result["docs"])
            done_words += int(result["words"])
            bar.update(1)
            bar.set_postfix(docs=f"{done_docs:,}", words_s=f"{done_words / max(1e-9, time.time() - t_run):,.0f}")
    except Interrupted as exc:
        exc.finished_this_run = done_shards
        raise
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()  # a runner stopped early (error, signal) lets go of its workers now
        logs = run_with.log_dir()
    seconds = time.time() - t_run
    run = {"shards": len(pending), "documents": done_docs, "words": done_words, "seconds": round(seconds, 2),
           "documents_per_second": round(done_docs / seconds, 2) if seconds else None,
           "words_per_second": round(done_words / seconds, 1) if seconds else None}
    if logs:
        run["ray_logs"] = logs
    return run


def done_ids(out) -> set[str]:
    """Ids of the shards done in ``out`` (their docs part exists: ``is_done``), from one listing
    of the docs folder rather than one lookup a shard; empty when there is no docs folder."""
    from extract.core import listing

    try:
        names = listing.listdir(fs.join(str(out), "docs"))
    except OSError:
        return set()
    return {n[len("part-"):-len(".parquet")] for n in names if n.startswith("part-") and n.endswith(".parquet")}


def pending_shards(shards: Plan, out) -> Pending:
    """The plan's shards not done yet, sized and expanded lazily (the runners stream them)."""
    pending = shards.pending(done_ids(out))
    print(f"{len(shards)} shards planned, {len(shards) - len(pending)} already done, "
          f"{len(pending)} to run", flush=True)
    return pending


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="shard", disable=not show, dynamic_ncols=True, mininterval=1.0)


def settle_duplicates(job: JobSpec, out) -> int:
    """Duplicate ids settled after the shards (extract/job/duplicates.py), in bounded memory: on
    Ray as Ray tasks (runner_ray.settle_ray; the local pass when this run started no Ray), else
    the local external pass. The number of duplicate rows."""
    return runner(job).settle(str(out), (job.data_dir,))
