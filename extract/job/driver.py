"""The batch job: validate, plan shards, skip finished ones, run, settle duplicates, report.

``drive`` is the one driver: the entity job (``run``) and teacher labelling (training/label.py)
differ only in the processor they hand it and the identity of their settings.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from extract.core import fs
from extract.job.attempts import FOLDER as ATTEMPTS
from extract.core.config import ConfigError, to_dict
from extract.job.duplicates import settle
from extract.job.identity import job_identity, model_id
from extract.core.job_config import ExtractConfig, InputConfig, RayConfig
from extract.model.load import check_model_dir, check_tokenizer, model_labels
from extract.model.files import local_model_dir
from extract.job.output import check_not_inputs, check_output_path, prepare
from extract.job.entities import ShardProcessor
from extract.job.stages import is_done
from extract.io.readers import Shard, plan, probe_columns
from extract.job.summary import drift, summarize


def input_stamps(shards: list[Shard]) -> list[tuple]:
    """(file, size, mtime) of every input file, as planned."""
    out = set()
    for s in shards:
        for f, (size, mtime) in zip(s.files or [s.file], s.stamps):
            out.add((f, size, mtime))
    return sorted(out, key=lambda x: x[0])


def load_plan(out, input_cfg: InputConfig) -> tuple[list[Shard], dict] | None:
    """The plan a previous run of this job saved, so a rerun neither lists nor stats the corpus
    again; None when there is none or it was made for other reading settings."""
    path = fs.join(str(out), "plan.json")
    if not fs.is_file(path):
        return None
    saved = json.loads(fs.read_text(path))
    if saved.get("input") != to_dict(input_cfg):
        return None  # the identity check that follows names what changed
    return [Shard(**s) for s in saved["shards"]], {**saved["facts"], "plan": "reused from plan.json"}


def save_plan(out, input_cfg: InputConfig, shards: list[Shard], facts: dict) -> None:
    data = {"input": to_dict(input_cfg), "facts": facts, "shards": [dataclasses.asdict(s) for s in shards]}
    fs.write_bytes_atomic(fs.join(str(out), "plan.json"), json.dumps(data).encode("utf-8"))


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


def run(cfg: ExtractConfig, overwrite: bool = False) -> dict:
    t0 = time.time()
    model_dir = check_model(cfg.model.path, cfg.model.labels, cfg.inference.engine)
    m, inf = cfg.model, cfg.inference
    settings = {"input": to_dict(cfg.input),
                "model": {"labels": list(m.labels), "min_score": m.min_score, "max_length": m.max_length,
                          "stride": m.stride},
                # The engine changes scores in the last digits: one job's rows come from one engine.
                "inference": {"device": inf.device, "dtype": inf.dtype, "engine": inf.engine},
                "funnel": {"enabled": cfg.funnel.enabled, "rule": cfg.funnel.rule}}
    facts = drive(JobSpec(ShardProcessor, {"cfg": cfg, "model_id": model_id(model_dir)}, cfg.input, cfg.output.path,
                          settings, [model_dir], "entities", cfg.runner, cfg.ray, inf.threads, cfg.show_progress),
                  overwrite or cfg.output.overwrite)
    out = facts["out"]
    summary = summarize(out)
    report = {
        "config": to_dict(cfg), "model": _model_info(model_dir), "input": facts["input"],
        **summary,
        "this_run": facts["this_run"],
        "wall_seconds": round(time.time() - t0, 2),
        "drift": drift(summary, model_dir),
        "complete": facts["complete"],
    }
    write_json(fs.join(str(out), "run.json"), report)
    return report


def check_model(path: str, labels: tuple[str, ...], engine: str = "torch") -> Path:
    """The model directory, readable, able to produce ``labels`` (with a model.onnx that matches its
    weights for engine onnx); a ConfigError otherwise."""
    try:
        model_dir = check_model_dir(local_model_dir(path))  # a URI is copied once into a local cache
        types = model_labels(model_dir)
        check_tokenizer(model_dir)
        if engine == "onnx":
            from extract.model.onnx import check_onnx

            check_onnx(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"model.path: {exc}") from None
    unknown = [l for l in labels if l not in types]
    if unknown:
        raise ConfigError(f"model.labels: {', '.join(unknown)} cannot be produced by the model in {model_dir}; "
                          f"its entity types are {', '.join(types)}. Set model.labels to some of them.")
    return model_dir


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


def _model_info(model_dir: Path) -> dict:
    info = {"path": str(model_dir), "id": model_id(model_dir)}
    metrics = model_dir / "metrics.json"
    if metrics.is_file():
        dev = json.loads(metrics.read_text()).get("dev", {})
        info["dev_metrics"] = {k: dev.get(k) for k in ("f1", "f1_plo", "precision", "recall")}
    return info


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="shard", disable=not show, dynamic_ncols=True, mininterval=1.0)
