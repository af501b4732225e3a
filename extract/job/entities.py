"""The entity job: ``run(cfg)`` checks the model, hands the driver its processor and writes
run.json. Its stages: tokenise and cut windows (CPU), forward passes (the model actor), combine
windows, decode spans and write entity rows (CPU).

Only the model stage loads the model; the CPU stages load tokenizer.json alone (the `tokenizers`
library: no transformers or torch import, ~5 CPU-s less a worker), so a CPU worker starts in a
fraction of a second and never holds model weights. The model stage checks that the two
tokenizers agree (extract/model/loaded.py ``same_tokens``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from extract.core import fs, schema
from extract.core.config import ConfigError, to_dict
from extract.core.job_config import ExtractConfig
from extract.model.chain import Chain
from extract.model.files import local_model_dir
from extract.job.stages import Outcome, Processor
from extract.core.types import Record
from extract.job.driver import JobSpec, drive, write_json
from extract.job.summary import drift, summarize
from extract.model.loaded import labels_settings, load_light_tokenizer, model_id, same_tokens


class ShardProcessor(Processor):
    """Entities: writes entities/ and docs/ parts per shard. ``load_model=False`` builds the CPU
    stages only (the tokenizer and the model's settings)."""

    def __init__(self, cfg: ExtractConfig, out: str, model_id: str = "", threads: int = 0,
                 load_model: bool = True):
        super().__init__(out, cfg.input, cfg.ray.record_kill_limit, cfg.inference.piece_chars)
        self.cfg = cfg
        model_path = local_model_dir(cfg.model.path)  # each node copies a remote model once
        self.labels, self.settings = labels_settings(model_path)  # config.json alone: no weights
        funnel = cfg.funnel.rule if cfg.funnel.enabled else None
        self.chain = Chain.of(self.labels, self.settings, cfg.model.labels, cfg.model.min_score, funnel,
                              cfg.model.max_length, cfg.model.stride)
        self.model_id = model_id
        self.model_path = model_path
        self.loaded = None
        self._tokenizer = None
        if load_model:
            from extract.model.load import load

            self.loaded = load(model_path, cfg.inference.device, cfg.inference.dtype,
                               threads or cfg.inference.threads, cfg.inference.engine)
            self.model_id = model_id or self.loaded.model_id
            self._tokenizer = self.loaded.tokenizer
            if self.loaded.tokenizer is not None:  # the CPU stages' tokenizer.json must agree with it
                same_tokens(self.loaded.tokenizer, load_light_tokenizer(model_path), model_path)

    @property
    def tokenizer(self):
        """Loaded on first use (the decode/write stage never needs it): without a model,
        tokenizer.json alone, not transformers' (~5 CPU-s of imports a worker)."""
        if self._tokenizer is None:
            self._tokenizer = load_light_tokenizer(self.model_path)
        return self._tokenizer

    def features(self, text: str) -> Any:
        return self.chain.windows(text, self.tokenizer)

    def predict(self, features: list[Any]) -> list[Any]:
        inf = self.cfg.inference
        return self.chain.forward(self.loaded, features, inf.batch_size, inf.batch_tokens)

    def outcome(self, rec: Record, features: Any, result: Any) -> Outcome:
        found, doc = self.chain.entities(features, result, rec.text)
        rows = {k: [e[k] for e in found] for k in ("label", "text", "start", "end", "score")}
        rows["doc_id"] = [rec.doc_id] * len(found)
        rows["model"] = [self.model_id] * len(found)
        return Outcome(rows, len(doc.probs), len(doc.enc.ids), len(found))

    def data_table(self, columns: dict[str, list]) -> pa.Table:
        return pa.table({f.name: columns.get(f.name, []) for f in schema.ENTITIES}, schema=schema.ENTITIES)


def job_settings(cfg: ExtractConfig) -> dict:
    """Every setting that changes the entity job's outputs: its identity in _job.json."""
    m, inf = cfg.model, cfg.inference
    return {"input": to_dict(cfg.input),
            "model": {"labels": list(m.labels), "min_score": m.min_score, "max_length": m.max_length,
                      "stride": m.stride},
            # The engine changes scores in the last digits: one job's rows come from one engine.
            "inference": {"device": inf.device, "dtype": inf.dtype, "engine": inf.engine},
            "funnel": {"enabled": cfg.funnel.enabled, "rule": cfg.funnel.rule}}


def job_spec(cfg: ExtractConfig) -> JobSpec:
    """The driver's view of the entity job (the model checked first: a wrong path fails here)."""
    model_dir = check_model(cfg.model.path, cfg.model.labels, cfg.inference.engine)
    return JobSpec(ShardProcessor, {"cfg": cfg, "model_id": model_id(model_dir)}, cfg.input, cfg.output.path,
                   job_settings(cfg), [model_dir], "entities", cfg.runner, cfg.ray, cfg.inference.threads,
                   cfg.show_progress)


def plan_only(cfg: ExtractConfig, overwrite: bool = False) -> dict:
    """``python -m extract plan``: plan the job (or reuse its plan.json) and stop; nothing runs."""
    return drive(job_spec(cfg), overwrite or cfg.output.overwrite, plan_only=True)


def run(cfg: ExtractConfig, overwrite: bool = False) -> dict:
    t0 = time.time()
    spec = job_spec(cfg)
    model_dir = spec.model_dirs[0]
    facts = drive(spec, overwrite or cfg.output.overwrite)
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
    """extract/model/loaded.py ``check_model``, its errors as the job's config errors."""
    from extract.model.check import check_model as check
    from extract.text.labels import LabelsError

    try:
        return check(path, labels, engine, "model.labels")
    except LabelsError as exc:
        raise ConfigError(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"model.path: {exc}") from None


def _model_info(model_dir: Path) -> dict:
    info = {"path": str(model_dir), "id": model_id(model_dir)}
    metrics = model_dir / "metrics.json"
    if metrics.is_file():
        dev = json.loads(metrics.read_text()).get("dev", {})
        info["dev_metrics"] = {k: dev.get(k) for k in ("f1", "f1_plo", "precision", "recall")}
    return info
