"""`python -m training label`: a teacher labels a raw corpus into silver Parquet.

It is the batch job with another processor: the same planning, reading, shards, resume, runners
(local or Ray) and document accounting; instead of entity rows it writes, per document, the words'
character offsets and the teacher's label distributions (silver/part-*.parquet).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from extract.core import fs
from extract.core.config import ConfigError, to_dict
from extract.text.labels import bio_labels
from extract.job.driver import JobSpec, drive, write_json
from extract.core.job_config import InferenceConfig, InputConfig, OutputConfig, RayConfig
from extract.model.loaded import check_model_dir
from extract.job.stages import Outcome, Processor
from extract.job.summary import summarize
from training.silver import silver_table
from training.teachers import Ensemble, TeacherConfig


@dataclass(frozen=True)
class KeepConfig:
    """Where the labels are kept in git (training/silver_store.py): "" = not kept (runs/ only)."""
    dir: str = ""  # e.g. data/silver: <dir>/<name>.parquet and <dir>/manifest.json
    name: str = ""  # the source's name in the manifest, e.g. reuters
    data_root: str = "../shared/data"  # input paths are recorded relative to it

    def validate(self) -> None:
        if self.dir and not self.name:
            raise ConfigError("keep.name: give the source a name (e.g. reuters) when keep.dir is set.")


@dataclass(frozen=True)
class LabelConfig:
    runner: Literal["ray", "local"] = "local"
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=lambda: OutputConfig(path="runs/silver"))
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    keep: KeepConfig = field(default_factory=KeepConfig)
    show_progress: bool = True

    def validate(self) -> None:
        for m in self.teacher.models:
            try:
                check_model_dir(m)
                if self.inference.engine != "torch":
                    from extract.model.onnx import check_onnx

                    check_onnx(m, self.inference.engine)
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"teacher.models: {exc}") from None
        if not self.teacher.models and self.teacher.spacy is None:
            raise ConfigError("teacher: name at least one model directory (teacher.models) or teacher.spacy.")


class SilverProcessor(Processor):
    """Teacher labels: per document its text, word offsets and label distributions (silver/).
    The teacher tokenises inside its own stage (an ensemble may mix tokenizers and spaCy)."""

    data_dir = "silver"

    def __init__(self, cfg: LabelConfig, out: str, threads: int = 0, load_model: bool = True):
        super().__init__(out, cfg.input, cfg.ray.record_kill_limit, cfg.inference.piece_chars)
        self.cfg = cfg
        self.labels = bio_labels(cfg.teacher.types)
        icfg = cfg.inference
        self.teacher = (Ensemble(cfg.teacher, icfg.device, icfg.dtype, threads or icfg.threads, icfg.engine)
                        if load_model else None)

    def predict(self, texts: list[str]) -> list:
        return self.teacher.label(texts, self.cfg.inference.batch_size)

    def outcome(self, rec, features, result) -> Outcome:
        starts, ends, probs = result
        return Outcome({"doc_id": [rec.doc_id], "text": [rec.text], "labelled": [result]}, len(starts))

    def data_table(self, columns: dict[str, list]):
        return silver_table(columns.get("doc_id", []), columns.get("text", []), columns.get("labelled", []),
                            self.labels, to_dict(self.cfg.teacher))


def teacher_facts(cfg: LabelConfig) -> dict:
    """The teacher as the manifest records it: its config and each member's dev scores."""
    import json

    members = []
    for m in cfg.teacher.models:
        metrics = Path(m) / "metrics.json"
        dev = json.loads(metrics.read_text())["dev"] if metrics.is_file() else {}
        members.append({"model": m, "dev_f1": dev.get("f1"), "dev_f1_plo": dev.get("f1_plo")})
    return {**to_dict(cfg.teacher), "members": members}


def run(cfg: LabelConfig, overwrite: bool = False, command: str = "") -> dict:
    t0 = time.time()
    settings = {"input": to_dict(cfg.input), "teacher": to_dict(cfg.teacher),
                "inference": {"device": cfg.inference.device, "dtype": cfg.inference.dtype,
                               "engine": cfg.inference.engine}}
    facts = drive(JobSpec(SilverProcessor, {"cfg": cfg}, cfg.input, cfg.output.path, settings,
                          [Path(m) for m in cfg.teacher.models], "silver", cfg.runner, cfg.ray, cfg.inference.threads,
                          cfg.show_progress), overwrite or cfg.output.overwrite)
    out, this_run = facts["out"], facts["this_run"]
    summary = summarize(out)
    report = {"config": to_dict(cfg), "input": facts["input"], "documents": summary["documents"],
              "by_status": summary["by_status"], "words": summary["words"], "this_run": this_run,
              "wall_seconds": round(time.time() - t0, 2), "complete": facts["complete"]}
    if cfg.keep.dir and facts["complete"]:
        from training.silver_store import pack

        entry = pack(sorted(Path(str(out), "silver").glob("part-*.parquet")), cfg.keep.dir, cfg.keep.name, cfg.input,
                     cfg.keep.data_root, teacher_facts(cfg), command)
        report["kept"] = {k: entry[k] for k in ("name", "labels_file", "bytes", "docs", "words")}
        print(f"kept: {entry['docs']:,} documents' labels in {cfg.keep.dir}/{entry['labels_file']} "
              f"({entry['bytes'] / 1e6:.1f} MB) and {cfg.keep.dir}/manifest.json", flush=True)
    write_json(fs.join(str(out), "run.json"), report)
    print(f"silver: {summary['by_status']['ok']:,} documents, {summary['words']:,} words labelled -> "
          f"{fs.join(str(out), 'silver')}; {this_run['words_per_second'] or 0:,.0f} words/s this run", flush=True)
    return report
