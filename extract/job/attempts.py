"""Attempts per shard, so a record that kills its worker cannot loop forever.

A processor notes in ``<out>/_attempts/<shard>.json`` that it started a shard, and deletes the
note (``clear``) when the shard's parts are written. A note found at the start means an earlier
attempt died (the worker was killed: out of memory, a segfault, a lost node, or the driver
itself). The first ``BATCHED_ATTEMPTS`` attempts run the shard as usual, so a transient death (a killed driver, a
lost node) reruns to exactly the same outputs. After that the shard runs one record at a time,
noting the record before it starts: a record that was being processed when an attempt died is
counted, and once it has killed ``record_kill_limit`` careful attempts it becomes an `error` row
and the shard goes on. Ray retries the task on a new actor (bounded by ``ray.max_task_retries``);
with the local runner a rerun picks up the note the same way.

``out`` may be a local folder or a URI (extract/core/fs.py): a note is one small atomic write (one PUT
on an object store).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from extract.core import fs

BATCHED_ATTEMPTS = 2
FOLDER = "_attempts"


def note_path(out: str | os.PathLike, shard_id: str) -> str:
    return fs.join(os.fspath(out), FOLDER, f"{shard_id}.json")


def clear(out: str | os.PathLike, shard_id: str) -> None:
    """The shard's parts are written: forget its attempts."""
    fs.delete(note_path(out, shard_id), missing_ok=True)


@dataclass
class Attempts:
    path: str  # the note: a local path or a URI
    attempt: int = 1
    current: int | None = None  # index of the record being processed in careful mode
    kills: dict[int, int] = field(default_factory=dict)  # record index -> attempts it killed

    @classmethod
    def start(cls, out: str | os.PathLike, shard_id: str) -> "Attempts":
        path = note_path(out, shard_id)
        state = cls(path)
        try:
            saved = json.loads(fs.read_text(path))
        except FileNotFoundError:
            saved = None
        except ValueError:  # a torn or foreign note: an attempt started, nothing more is known
            saved = {}
        if saved is not None:
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
        fs.write_bytes_atomic(self.path, json.dumps({"attempt": self.attempt, "current": self.current,
                                                     "kills": {str(k): v for k, v in self.kills.items()}}).encode())
