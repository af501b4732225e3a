"""The two runners behind one interface: the driver (extract/job/driver.py) asks its job's
``Runner`` for shard sizing, thread counts, the shards' results, the duplicate pass and clean-up,
and never switches on the runner's name. Ray is imported by the Ray runner's modules only."""
from __future__ import annotations

import math
import os
from typing import Any, Iterator, Protocol

from extract.core.job_config import RayConfig


def process_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or taskset's limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Runner(Protocol):
    def workers(self) -> int: ...  # model replicas: input.shard_bytes auto sizes shards for them
    def gpu(self) -> bool: ...  # GPU workers: larger auto shards
    def threads(self, threads: int) -> int: ...  # a model replica's torch threads (0 = the runner's default)
    def run(self, processor_cls: Any, kwargs: dict, shards: Any, threads: int) -> Iterator[dict]: ...
    def settle(self, out: str, data_dirs: tuple[str, ...]) -> int: ...  # the duplicate pass
    def log_dir(self) -> str | None: ...
    def stop(self) -> None: ...  # after an interruption


class LocalRunner:
    """This process, one shard after another; its one model replica has the machine's cores."""

    def __init__(self, ray: RayConfig):
        self.ray = ray

    def workers(self) -> int:
        return 1

    def gpu(self) -> bool:
        return False

    def threads(self, threads: int) -> int:
        return threads if threads > 0 else process_cores()

    def run(self, processor_cls: Any, kwargs: dict, shards: Any, threads: int) -> Iterator[dict]:
        from extract.job import runner_local

        return runner_local.run_local(processor_cls, kwargs, shards, threads)

    def settle(self, out: str, data_dirs: tuple[str, ...]) -> int:
        from extract.job.duplicates import settle

        return settle(out, data_dirs)

    def log_dir(self) -> str | None:
        return None

    def stop(self) -> None:
        pass


class RayRunner:
    """Ray Data: an actor pool a stage, embedded local Ray or a cluster (extract/job/runner_ray.py)."""

    def __init__(self, ray: RayConfig):
        self.ray = ray

    def workers(self) -> int:
        return max(1, self.ray.num_actors)

    def gpu(self) -> bool:
        return self.ray.gpus_per_actor > 0

    def threads(self, threads: int) -> int:
        # Ray sets OMP_NUM_THREADS=1 in workers: give torch the CPUs the actor reserved instead
        return threads if threads > 0 else max(1, math.ceil(self.ray.cpus_per_actor))

    def run(self, processor_cls: Any, kwargs: dict, shards: Any, threads: int) -> Iterator[dict]:
        from extract.job import runner_ray

        return runner_ray.run_ray(processor_cls, kwargs, shards, self.ray, threads)

    def settle(self, out: str, data_dirs: tuple[str, ...]) -> int:
        from extract.job import runner_ray

        return runner_ray.settle_ray(out, data_dirs, self.ray)

    def log_dir(self) -> str | None:
        from extract.job import runner_ray

        return runner_ray.log_dir()

    def stop(self) -> None:
        from extract.job import runner_ray

        runner_ray.shutdown()


RUNNERS = {"local": LocalRunner, "ray": RayRunner}


def runner_for(name: str, ray: RayConfig) -> Runner:
    return RUNNERS[name](ray)
