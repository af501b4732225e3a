"""The one driver: plan shards (or reuse the plan), skip finished ones, run the rest on a runner,
settle duplicate ids. The entity job (extract/job/entities.py) and teacher labelling
(training/label.py) differ only in the processor they hand it and the identity of their settings.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from extract.core import fs
from extract.job.attempts import FOLDER as ATTEMPTS
from extract.job.duplicates import settle
from extract.job.identity import job_identity
from extract.core.job_config import InputConfig, RayConfig
from extract.job.output import check_not_inputs, check_output_path, prepare
from extract.job.stages import is_done
from extract.io.plan import input_stamps, load_plan, plan, probe_columns, save_plan


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


def drive(job: JobSpec, overwrite: bool) -> dict:
    """Plan (or reuse the saved plan), check, prepare the output, run the pending shards, settle
    duplicates; the run's facts."""
    t0 = time.perf_counter()
    out = check_output_path(job.output_path)
    saved = None if overwrite else load_plan(out, job.input)
    shards, facts = saved or plan(job.input)
    stamps = input_stamps(shards)
    check_not_inputs(out, [f for f, _, _ in stamps])
    if saved is None:
        probe_columns(shards, job.input)
    facts["planning_seconds"] = round(time.perf_counter() - t0, 3)
    identity = job_identity(job.settings, stamps, job.model_dirs)
    prepare(out, identity, (job.data_dir, "docs", ATTEMPTS, "stats"), overwrite)
    if saved is None:
        save_plan(out, job.input, shards, facts)
    pending = pending_shards(shards, out)
    this_run = execute(job, str(out), pending)
    facts["duplicate_ids"] = settle(out, (job.data_dir,))
    missing = [s.shard_id for s in shards if not is_done(out, s.shard_id)]
    return {"out": out, "input": facts, "this_run": this_run, "complete": not missing}


def write_json(path: str, data: dict) -> None:
    fs.write_bytes_atomic(str(path), json.dumps(data, indent=2, default=str).encode("utf-8"))


def execute(job: JobSpec, out: str, pending: list) -> dict:
    """Run pending shards on the chosen runner with a progress bar; this run's counts and speed."""
    kwargs = {**job.processor_kwargs, "out": out}
    if job.runner == "ray":
        from extract.job.runner_ray import run_ray

        results = run_ray(job.processor_cls, kwargs, pending, job.ray, job.threads)
    else:
        from extract.job.runner_local import run_local

        results = run_local(job.processor_cls, kwargs, pending)
    done_docs = done_words = 0
    t_run = time.time()
    # Progress in shards: a byte-range shard's record count is only known once it is read.
    bar = _progress(len(pending), job.show_progress)
    for result in results:
        done_docs += int(result["docs"])
        done_words += int(result["words"])
        bar.update(1)
        bar.set_postfix(docs=f"{done_docs:,}", words_s=f"{done_words / max(1e-9, time.time() - t_run):,.0f}")
    bar.close()
    seconds = time.time() - t_run
    return {"shards": len(pending), "documents": done_docs, "words": done_words, "seconds": round(seconds, 2),
            "documents_per_second": round(done_docs / seconds, 2) if seconds else None,
            "words_per_second": round(done_words / seconds, 1) if seconds else None}


def pending_shards(shards: list, out) -> list:
    pending = [s for s in shards if not is_done(out, s.shard_id)]
    print(f"{len(shards)} shards planned, {len(shards) - len(pending)} already done, "
          f"{len(pending)} to run", flush=True)
    return pending


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="shard", disable=not show, dynamic_ncols=True, mininterval=1.0)
