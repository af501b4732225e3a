"""The batch job: validate, plan shards, skip finished ones, run, account, report."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from extract.config import ConfigError, to_dict
from extract.job_config import ExtractConfig
from extract.model import check_model_dir
from extract.process import ShardProcessor, is_done
from extract.readers import plan
from extract.report import drift, summarize


def fingerprint(settings: dict, shards, model_dirs: list[Path]) -> str:
    """What makes two runs the same job: inputs (names, sizes, mtimes), settings, model weights."""
    files = sorted({s.file for s in shards if s.file} | {f for s in shards for f in s.files})
    stat = [(f, os.path.getsize(f), int(os.path.getmtime(f))) for f in files if os.path.exists(f)]
    weights = [m / "model.safetensors" for m in model_dirs]
    key = {"files": stat, "settings": settings,
           "weights": [(os.path.getsize(w), int(os.path.getmtime(w))) for w in weights]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def prepare_output(out: Path, key: str, overwrite: bool) -> None:
    marker = out / "_job.json"
    if overwrite and out.exists():
        shutil.rmtree(out)
    if marker.is_file():
        if json.loads(marker.read_text()).get("fingerprint") != key:
            raise ConfigError(f"output.path {out} holds results of a different job (input, reading or model "
                              "settings changed). Pass --overwrite to start fresh or choose another output.path.")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"output.path {out} exists and is not the output of this job. "
                          "Choose an empty folder or pass --overwrite to replace it.")
    for sub in ("entities", "docs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for tmp in (out / sub).glob(".*.tmp"):
            tmp.unlink()  # left by a run that was killed mid-write
    marker.write_text(json.dumps({"fingerprint": key}))


def run(cfg: ExtractConfig, overwrite: bool = False) -> dict:
    t0 = time.time()
    try:
        model_dir = check_model_dir(cfg.model.path)
    except FileNotFoundError as exc:
        raise ConfigError(f"model.path: {exc}") from None
    shards, facts = plan(cfg.input)
    out = Path(cfg.output.path)
    key = fingerprint({"input": to_dict(cfg.input), "model": to_dict(cfg.model)}, shards, [model_dir])
    prepare_output(out, key, overwrite or cfg.output.overwrite)
    pending, n_records = pending_shards(shards, out)
    this_run = execute(ShardProcessor, {"cfg": cfg, "out": str(out.resolve())}, pending, n_records,
                       cfg.runner, cfg.ray, cfg.inference.threads, cfg.show_progress)
    summary = summarize(out)
    missing = [s.shard_id for s in shards if not is_done(out, s.shard_id)]
    report = {
        "config": to_dict(cfg), "model": _model_info(model_dir), "input": facts,
        **summary,
        "this_run": this_run,
        "wall_seconds": round(time.time() - t0, 2),
        "drift": drift(summary, model_dir),
        "complete": not missing,
    }
    (out / "run.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def execute(processor_cls, kwargs: dict, pending: list, n_records: dict, runner: str, ray_cfg,
            threads: int, show_progress: bool) -> dict:
    """Run pending shards on the chosen runner with a progress bar; this run's counts and speed."""
    if runner == "ray":
        from extract.runner_ray import run_ray

        results = run_ray(processor_cls, kwargs, pending, ray_cfg, threads)
    else:
        from extract.runner_local import run_local

        results = run_local(processor_cls, kwargs, pending)
    done_docs = done_words = 0
    t_run = time.time()
    bar = _progress(sum(n_records.values()), show_progress)
    for result in results:
        done_docs += int(result["docs"])
        done_words += int(result["words"])
        bar.update(int(result["docs"]))
        bar.set_postfix(words_s=f"{done_words / max(1e-9, time.time() - t_run):,.0f}")
    bar.close()
    seconds = time.time() - t_run
    return {"shards": len(pending), "documents": done_docs, "words": done_words, "seconds": round(seconds, 2),
            "documents_per_second": round(done_docs / seconds, 2) if seconds else None,
            "words_per_second": round(done_words / seconds, 1) if seconds else None}


def pending_shards(shards: list, out: Path) -> tuple[list, dict]:
    pending = [s for s in shards if not is_done(out, s.shard_id)]
    n_records = {s.shard_id: (len(s.files) if s.fmt == "text" else max(1, s.stop - s.start)) for s in pending}
    print(f"{len(shards)} shards planned, {len(shards) - len(pending)} already done, "
          f"{len(pending)} to run ({sum(n_records.values()):,} records)", flush=True)
    return pending, n_records


def _model_info(model_dir: Path) -> dict:
    info = {"path": str(model_dir)}
    metrics = model_dir / "metrics.json"
    if metrics.is_file():
        dev = json.loads(metrics.read_text()).get("dev", {})
        info["dev_metrics"] = {k: dev.get(k) for k in ("f1", "f1_plo", "precision", "recall")}
    return info


def _progress(total: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="doc", disable=not show, dynamic_ncols=True, mininterval=1.0)
