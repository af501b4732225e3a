"""The job's core record types: what a reader yields (Record) and the unit of work, output and
resume (Shard). Plain dataclasses, no behaviour: every layer can import them."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Record:
    doc_id: str | None
    text: str | None
    source: str
    error: str | None = None
    warning: str | None = None
    status: str | None = None  # set for records decided before the model (skipped/error)


@dataclass
class Shard:
    shard_id: str
    fmt: str
    file: str = ""
    compression: str | None = None
    start: int = 0  # JSON lines: first byte of the range; Parquet: first row
    stop: int = -1  # one past the last byte / row; -1 = to the end of the file
    files: list[str] = field(default_factory=list)  # text shards: one record per file
    root: str = ""
    stamps: list[list] = field(default_factory=list)  # [size, mtime_ns] per file as planned


class InputChanged(RuntimeError):
    """An input file changed after the job planned it: finishing would mix two versions."""
