"""The batch job's config (configs/extract.yaml), validated before any work starts."""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Literal, Optional

from extract.core.config import ConfigError


@dataclass(frozen=True)
class InputConfig:
    path: tuple[str, ...] = ("data/sample/reuters_sample.jsonl",)  # files, folders or globs
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "text"] = "auto"
    id_column: str = "id"
    text_columns: tuple[str, ...] = ("text",)
    joiner: str = "\n\n"  # between text columns (e.g. title + body): a blank line
    encoding: str = "utf-8"
    encoding_fallback: str = "cp1252"  # "" = a record that is not valid UTF-8 is an error
    max_chars: int = 1_000_000  # longer records are `skipped`, with the reason (reads stay bounded)
    # JSON lines: bytes per shard (the unit of work, output part and resume), or "auto": the corpus's
    # JSON-lines bytes / (256 x workers), rounded up to a whole MB, within 1 MB..2 MB (64 MB with GPU
    # workers): sized for time to first output, not memory (extract/io/plan.py says why)
    shard_bytes: int | str = "auto"
    shard_size: int = 256  # Parquet rows or .txt files per shard

    def validate(self) -> None:
        for enc in filter(None, (self.encoding, self.encoding_fallback)):
            try:
                codecs.lookup(enc)
            except LookupError:
                raise ConfigError(f"input: unknown text encoding '{enc}' (e.g. utf-8, cp1252, latin-1).") from None
        if not self.text_columns:
            raise ConfigError("input.text_columns: name at least one column holding text.")
        if self.max_chars < 1:
            raise ConfigError(f"input.max_chars: expected >= 1, found {self.max_chars}.")
        if self.shard_size < 1:
            raise ConfigError(f"input.shard_size: expected >= 1, found {self.shard_size}.")
        if isinstance(self.shard_bytes, bool) or not (
                self.shard_bytes == "auto" or (isinstance(self.shard_bytes, int) and self.shard_bytes >= 1)):
            raise ConfigError(f"input.shard_bytes: expected auto or a whole number of bytes >= 1 (e.g. 64000000), "
                              f"found {self.shard_bytes!r}.")


@dataclass(frozen=True)
class OutputConfig:
    path: str = "output/sample"
    overwrite: bool = False  # true (or --overwrite) deletes what the folder holds and starts fresh


@dataclass(frozen=True)
class ModelConfig:
    path: str = "data/models/default"
    labels: tuple[str, ...] = ("PER", "LOC", "ORG")  # entity types written; others are dropped
    max_length: int = 0  # 0 = what the model was trained with (config.json ner_settings)
    stride: int = -1  # -1 = the model's
    min_score: float = 0.0


@dataclass(frozen=True)
class InferenceConfig:
    batch_size: int = 32  # at most this many windows per forward pass, sorted by length
    batch_tokens: int = 0  # and at most this many padded wordpieces; 0 = batch_size x max_length
    # A shard's records go through the stages in pieces of at most this many characters of text
    # (a longer record is a piece alone): a worker holds one piece's tokens, windows and outputs, so
    # its memory is flat in the shard size (~60 MB at the default, on top of the model).
    piece_chars: int = 200_000
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # GPU is opt-in: see ray.gpus_per_actor
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"  # fp16/bf16 autocast on GPU only
    # torch / ONNX Runtime threads of a model replica; 0 = runner local: the process's cores, ray:
    # ceil(ray.cpus_per_actor). Thread counts may change float sums in the last bits: set one number to
    # compare runners bit for bit
    threads: int = 0
    # onnx: the forward pass in ONNX Runtime (CPU, fp32) from MODEL_DIR/model.onnx, written at release
    # or by `python -m extract export-onnx MODEL_DIR`; same predictions (speed: docs/benchmarks/extract.md).
    # onnx-int8: MODEL_DIR/model.int8.onnx (`export-onnx --int8`, written at release): dynamic int8
    # weights, faster on CPU at a small F1 cost (docs/benchmarks/model.md, docs/benchmarks/extract.md).
    engine: Literal["torch", "onnx", "onnx-int8"] = "torch"

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"inference.batch_size: expected >= 1, found {self.batch_size}.")
        if self.piece_chars < 1000:
            raise ConfigError(f"inference.piece_chars: expected >= 1000 characters (default 200000), found "
                              f"{self.piece_chars}.")
        if self.engine != "torch" and (self.device == "cuda" or self.dtype != "fp32"):
            raise ConfigError(f"inference.engine: {self.engine} runs on the CPU (fp32 activations), found device "
                              f"{self.device!r} and dtype "
                              f"{self.dtype!r}; set inference.device: cpu and inference.dtype: fp32, or use "
                              "inference.engine: torch.")


@dataclass(frozen=True)
class FunnelConfig:
    """A cheap pre-filter: windows that cannot hold a name are not run (extract/text/funnel.py)."""

    # On: capitalised-or-digit cost 0.00 dev F1 and skipped no Reuters window, but all of a lowercase
    # corpus, names included; capitalised-or-caseless (the default) runs caseless documents whole
    # (scripts/funnel_table.py, docs/benchmarks/extract.md).
    enabled: bool = True
    rule: Literal["capitalised-or-caseless", "capitalised-or-digit"] = "capitalised-or-caseless"


@dataclass(frozen=True)
class RayConfig:
    address: Optional[str] = None  # None: RAY_ADDRESS if set (ray job submit), else embedded local Ray
    num_actors: int = 2  # model replicas (actor pool size)
    cpus_per_actor: float = 0.75  # fractional, so the CPU stages (read/tokenise, decode/write) still fit
    cpus_per_task: float = 0.25  # each read/tokenise and decode/write worker (an actor of its stage's pool)
    gpus_per_actor: float = 0.0  # set 1 (and inference.device: cuda) on a GPU cluster
    num_cpus: int = 0  # embedded local Ray only: CPUs it may use; 0 = all
    max_task_retries: int = 6  # a shard whose worker died is retried this often, then the job fails
    record_kill_limit: int = 1  # a record that killed this many one-by-one attempts becomes an error row
    # Workers (actors, each one shard at a time) per CPU stage (read/tokenise, decode/write): at most
    # this many; 0 = the cluster's CPUs left beside the model actors, shared by the two stages (at
    # least 2): a 16-core GPU node with one actor runs 7 of each, a 2-core machine 2. Each pool starts
    # with as many as fit (extract/job/runner_ray.py ``stage_pool``).
    tasks_per_stage: int = 0

    def validate(self) -> None:
        if self.tasks_per_stage < 0:
            raise ConfigError(f"ray.tasks_per_stage: expected >= 0 (0 = auto), found {self.tasks_per_stage}.")
        if self.num_actors < 1 or self.cpus_per_actor <= 0 or self.gpus_per_actor < 0 or self.cpus_per_task <= 0:
            raise ConfigError("ray: num_actors >= 1, cpus_per_actor > 0, cpus_per_task > 0 and gpus_per_actor >= 0 "
                              "are required.")
        if self.max_task_retries < 0 or self.record_kill_limit < 1:
            raise ConfigError("ray: max_task_retries >= 0 and record_kill_limit >= 1 are required.")


@dataclass(frozen=True)
class ExtractConfig:
    runner: Literal["ray", "local"] = "ray"
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    funnel: FunnelConfig = field(default_factory=FunnelConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    show_progress: bool = True

    def validate(self) -> None:
        if self.ray.gpus_per_actor > 0 and self.inference.device == "cpu":
            raise ConfigError("ray.gpus_per_actor > 0 but inference.device is cpu: set inference.device: cuda.")
        if self.inference.device == "cuda" and self.runner == "ray" and self.ray.gpus_per_actor <= 0:
            raise ConfigError("inference.device: cuda on Ray needs ray.gpus_per_actor: 1 (or a fraction).")
