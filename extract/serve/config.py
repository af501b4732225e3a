"""The service's config (configs/serve.yaml), validated before Ray starts.

The model, inference and funnel sections are the batch job's own classes (extract/core/job_config.py),
so a key means the same thing in both, and the same model settings give the same entities.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from extract.core.config import ConfigError
from extract.core.job_config import FunnelConfig, InferenceConfig, ModelConfig


@dataclass(frozen=True)
class ServeLogConfig:
    """What was served, as training data: Parquet parts in the job's schemas (extract/serve/log.py)."""

    path: str = ""  # "" = off; else an output folder `python -m extract report` reads
    text: Literal["full", "hash"] = "full"  # hash: sha256 of each text (documents and entity surfaces)
    rotate_mb: float = 16.0  # a part is written when the buffered rows reach about this size...
    rotate_seconds: float = 60.0  # ...or when its oldest row is this old

    def validate(self) -> None:
        if not self.rotate_mb > 0:
            raise ConfigError(f"serve.log.rotate_mb: expected > 0, found {self.rotate_mb}.")
        if not self.rotate_seconds > 0:
            raise ConfigError(f"serve.log.rotate_seconds: expected > 0, found {self.rotate_seconds}.")


@dataclass(frozen=True)
class ServeSection:
    host: str = "127.0.0.1"  # 0.0.0.0 listens on every interface
    port: int = 8000
    # Texts (not requests) per model call: one request's texts may fill several batches, and texts
    # of concurrent requests share one (Ray Serve's @serve.batch).
    max_batch_size: int = 32
    # How long a batch waits for more texts once its first arrived. A short linger costs one client
    # nothing and raises requests/s under concurrent clients (requests arriving together share a
    # batch); longer lingers bought nothing more (docs/benchmarks/serve.md: choosing the linger).
    # Re-measure on a GPU (scripts/bench_serve.py).
    batch_wait_ms: float = 2.0
    num_replicas: int = 1  # model copies (one Ray actor each)
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0  # set 1 (and inference.device: cuda) on a GPU node
    max_texts: int = 64  # per request
    max_chars: int = 100_000  # per text
    max_body_bytes: int = 8_000_000  # request bodies above are refused with 413
    # Per replica: requests it runs at once (texts of all of them can batch together); more wait in
    # Ray Serve's queue, up to max_queued_requests (-1 = unbounded), beyond which the proxy answers
    # 503 with Retry-After: retry_after_s.
    max_ongoing_requests: int = 64
    max_queued_requests: int = 256
    retry_after_s: float = 1.0
    drain_seconds: float = 30.0  # on SIGTERM, in-flight requests get this long to finish
    log: ServeLogConfig = field(default_factory=ServeLogConfig)

    def validate(self) -> None:
        checks = [
            ("port", 1 <= self.port <= 65535, "between 1 and 65535"),
            ("max_batch_size", self.max_batch_size >= 1, ">= 1"),
            ("batch_wait_ms", self.batch_wait_ms >= 0, ">= 0 (milliseconds)"),
            ("num_replicas", self.num_replicas >= 1, ">= 1"),
            ("cpus_per_replica", self.cpus_per_replica > 0, "> 0"),
            ("gpus_per_replica", self.gpus_per_replica >= 0, ">= 0"),
            ("max_texts", self.max_texts >= 1, ">= 1"),
            ("max_chars", self.max_chars >= 1, ">= 1"),
            ("max_body_bytes", self.max_body_bytes >= 2, ">= 2 (bytes)"),
            ("max_ongoing_requests", self.max_ongoing_requests >= 1, ">= 1"),
            ("max_queued_requests", self.max_queued_requests >= -1, ">= 0, or -1 for no limit"),
            ("retry_after_s", self.retry_after_s >= 0, ">= 0 (seconds)"),
            ("drain_seconds", self.drain_seconds >= 0, ">= 0 (seconds)"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(f"serve.{key}: expected {expected}, found {getattr(self, key)!r}.")
        if not self.host.strip():
            raise ConfigError("serve.host: expected an address to listen on (e.g. 127.0.0.1), found ''.")


@dataclass(frozen=True)
class ServeRayConfig:
    address: str = ""  # "" = an embedded local Ray; else e.g. auto or ray://head:10001
    num_cpus: int = 0  # embedded local Ray only: CPUs it may use; 0 = all

    def validate(self) -> None:
        if self.num_cpus < 0:
            raise ConfigError(f"ray.num_cpus: expected >= 0, found {self.num_cpus}.")


@dataclass(frozen=True)
class ServeConfig:
    serve: ServeSection = field(default_factory=ServeSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    funnel: FunnelConfig = field(default_factory=FunnelConfig)
    ray: ServeRayConfig = field(default_factory=ServeRayConfig)

    def validate(self) -> None:
        if self.serve.gpus_per_replica > 0 and self.inference.device == "cpu":
            raise ConfigError("serve.gpus_per_replica > 0 but inference.device is cpu: set inference.device: cuda.")
        if self.inference.device == "cuda" and self.serve.gpus_per_replica <= 0:
            raise ConfigError("inference.device: cuda needs serve.gpus_per_replica: 1 (or a fraction).")
        if not self.model.labels:
            raise ConfigError("model.labels: name at least one entity type (e.g. [PER, LOC, ORG]).")

    @property
    def threads(self) -> int:
        """torch / ONNX Runtime threads per replica: inference.threads, or ceil(serve.cpus_per_replica)."""
        import math

        return self.inference.threads or max(1, math.ceil(self.serve.cpus_per_replica))
