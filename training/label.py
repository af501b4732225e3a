"""`python -m training label`: a teacher labels a raw corpus into silver Parquet.

It is the batch job with another processor: the same planning, reading, shards, resume, runners
(local or Ray) and document accounting; instead of entity rows it writes, per document, the words'
character offsets and the teacher's label distributions (silver/part-*.parquet).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from extract import schema
from extract.config import ConfigError, to_dict
from extract.job import execute, fingerprint, pending_shards, prepare_output
from extract.job_config import InferenceConfig, InputConfig, OutputConfig, RayConfig
from extract.model import check_model_dir
from extract.process import part_paths, process_batch, write_atomic
from extract.readers import plan, read_shard
from extract.report import summarize
from training.silver import silver_table
from training.teachers import Ensemble, TeacherConfig


@dataclass(frozen=True)
class LabelConfig:
    runner: Literal["ray", "local"] = "local"
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(path="runs/silver"))
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    show_progress: bool = True

    def validate(self) -> None:
        for m in self.teacher.models:
            try:
                check_model_dir(m)
            except FileNotFoundError as exc:
                raise ConfigError(f"teacher.models: {exc}") from None
        if not self.teacher.models and self.teacher.spacy is None:
            raise ConfigError("teacher: name at least one model directory (teacher.models) or teacher.spacy.")


class SilverProcessor:
    def __init__(self, cfg: LabelConfig, out: str, threads: int = 0):
        self.cfg = cfg
        self.out = Path(out)
        icfg = cfg.inference
        self.teacher = Ensemble(cfg.teacher, icfg.device, icfg.dtype, threads or icfg.threads)

    __call__ = process_batch

    def process(self, shard) -> dict:
        t0 = time.perf_counter()
        records = list(read_shard(shard, self.cfg.input))
        todo = [r for r in records if r.error is None and r.status is None and r.text and r.text.strip()]
        labelled = self.teacher.label([r.text for r in todo], self.cfg.inference.batch_size)
        table = silver_table([r.doc_id for r in todo], [r.text for r in todo], labelled, self.teacher.labels,
                             to_dict(self.cfg.teacher))
        write_atomic(table, self.out / "silver" / f"part-{shard.shard_id}.parquet")
        n_words = {id(r): len(l[0]) for r, l in zip(todo, labelled)}
        docs = {f.name: [] for f in schema.DOCS}
        for r in records:
            words = n_words.get(id(r))
            status = r.status or ("error" if r.error else ("ok" if words is not None else "empty"))
            row = {"doc_id": r.doc_id, "status": status, "error": r.error,
                   "n_chars": len(r.text or ""), "n_words": words or 0, "n_tokens": 0, "n_entities": 0,
                   "source": r.source, "warning": r.warning, "shard": shard.shard_id}
            for k, v in row.items():
                docs[k].append(v)
        write_atomic(pa.table(docs, schema=schema.DOCS), part_paths(self.out, shard.shard_id)[1])
        return {"shard": shard.shard_id, "docs": len(records), "ok": len(todo),
                "words": sum(n_words.values()), "entities": 0, "seconds": time.perf_counter() - t0}


def run(cfg: LabelConfig, overwrite: bool = False) -> dict:
    t0 = time.time()
    shards, facts = plan(cfg.input)
    out = Path(cfg.output.path)
    key = fingerprint({"input": to_dict(cfg.input), "teacher": to_dict(cfg.teacher)}, shards,
                      [Path(m) for m in cfg.teacher.models])
    prepare_output(out, key, overwrite or cfg.output.overwrite)
    (out / "silver").mkdir(exist_ok=True)
    pending, n_records = pending_shards(shards, out)
    this_run = execute(SilverProcessor, {"cfg": cfg, "out": str(out.resolve())}, pending, n_records,
                       cfg.runner, cfg.ray, cfg.inference.threads, cfg.show_progress)
    summary = summarize(out)
    report = {"config": to_dict(cfg), "input": facts, "documents": summary["documents"],
              "by_status": summary["by_status"], "words": summary["words"], "this_run": this_run,
              "wall_seconds": round(time.time() - t0, 2)}
    (out / "run.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"silver: {summary['by_status']['ok']:,} documents, {summary['words']:,} words labelled -> "
          f"{out / 'silver'}; {this_run['words_per_second'] or 0:,.0f} words/s this run", flush=True)
    return report
