"""Attempts per shard, so a record that kills its worker cannot loop forever.

A processor notes in ``<out>/_attempts/<shard>.json`` that it started a shard, and deletes the
note when the shard's parts are written. A note found at the start means an earlier attempt died
(the worker was killed: out of memory, a segfault, a lost node, or the driver itself). The first
``BATCHED_ATTEMPTS`` attempts run the shard as usual, so a transient death (a killed driver, a
lost node) reruns to exactly the same outputs. After that the shard runs one record at a time,
noting the record before it starts: a record that was being processed when an attempt died is
counted, and once it has killed ``record_kill_limit`` careful attempts it becomes an `error` row
and the shard goes on. Ray retries the task on a new actor (bounded by ``ray.max_task_retries``);
with the local runner a rerun picks up the note the same way.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

BATCHED_ATTEMPTS = 2
FOLDER = "_attempts"


@dataclass
class Attempts:
    path: Path
    attempt: int = 1
    current: int | None = None  # index of the record being processed in careful mode
    kills: dict[int, int] = field(default_factory=dict)  # record index -> attempts it killed

    @classmethod
    def start(cls, out: Path, shard_id: str) -> "Attempts":
        path = Path(out) / FOLDER / f"{shard_id}.json"
        state = cls(path)
        if path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                saved = {}
            state.attempt = int(saved.get("attempt", 1)) + 1
            state.kills = {int(k): int(v) for k, v in saved.get("kills", {}).items()}
            if saved.get("current") is not None:
                idx = int(saved["current"])
                state.kills[idx] = state.kills.get(idx, 0) + 1
        state.save()
        return state

    @property
    def careful(self) -> bool:
        return self.attempt > BATCHED_ATTEMPTS

    def killed_by(self, index: int, limit: int) -> int:
        """How often record ``index`` killed a careful attempt, when that reached ``limit`` (else 0)."""
        n = self.kills.get(index, 0)
        return n if n >= limit else 0

    def begin(self, index: int | None) -> None:
        self.current = index
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"attempt": self.attempt, "current": self.current,
                                   "kills": {str(k): v for k, v in self.kills.items()}}), encoding="utf-8")
        os.replace(tmp, self.path)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def clear(out, shard_id: str) -> None:
    """The shard's parts are written: no attempt is pending any more."""
    Attempts(Path(out) / FOLDER / f"{shard_id}.json").finish()
