"""Bounded-memory hash partitioning for the duplicate-id pass (extract/job/duplicates.py): a
vectorised 64-bit string hash, spill files of Arrow IPC streams a bucket each, and re-splitting a
partition that is too large by the next bits of the hash."""
from __future__ import annotations

import math
import os
import shutil
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from extract.core import fs

MAX_ROWS = 100_000  # keys one partition holds in memory at most (split again when more)
MAX_FANOUT = 256  # partition files written at once
FLUSH_ROWS = 16_384  # keys buffered in memory before they go to their partition files
BATCH_ROWS = 16_384  # rows of a part read (or rewritten) at once
LEVEL_BITS = 16  # each split uses another 16 bits of the 64-bit hash
MAX_LEVEL = 64 // LEVEL_BITS
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")


# ----------------------------------------------------------------------------------- hashing

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_POW = np.cumprod(np.full(64, 0x100000001B3, dtype=np.uint64), dtype=np.uint64)  # wraps mod 2**64


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over uint64 (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def hash_strings(arr) -> np.ndarray:
    """A 64-bit hash of each (non-null) string, vectorised over the Arrow buffers (no Python
    objects): a polynomial over the UTF-8 bytes (weights cycling every 64 bytes) plus the length,
    then mix64. For partitioning only: equal strings hash equal; collisions are resolved by the
    ids themselves."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    lengths = np.diff(offsets)
    buf = arr.buffers()[2]
    h = np.zeros(n, np.uint64)
    if buf is not None and offsets[-1] > offsets[0]:
        data = np.frombuffer(buf, dtype=np.uint8)[offsets[0]:offsets[-1]].astype(np.uint64)
        starts = offsets[:-1] - offsets[0]
        within = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
        with np.errstate(over="ignore"):
            terms = (data + np.uint64(1)) * _POW[within % 64]
            nonempty = lengths > 0
            h[nonempty] = np.add.reduceat(terms, starts[nonempty])
    with np.errstate(over="ignore"):
        return mix64(h ^ (lengths.astype(np.uint64) * _M2))


def bucket(h: np.ndarray, level: int, fanout: int) -> np.ndarray:
    return ((h >> np.uint64(LEVEL_BITS * level)) % np.uint64(fanout)).astype(np.int64)


def fanout_for(rows: int, max_rows: int) -> int:
    return max(1, min(MAX_FANOUT, math.ceil(rows / max(1, max_rows))))


# ------------------------------------------------------------------------------------- spill

class Spill:
    """``fanout`` Arrow IPC stream files ``<folder>/<name>-<bucket>.arrow`` (a local path or a
    URI), written a batch at a time: rows keep their order within a bucket. Buffers at most
    ``FLUSH_ROWS`` rows in memory; a file is created only for a bucket that gets rows."""

    def __init__(self, folder: str, name: str, fanout: int, sch: pa.Schema):
        self.folder, self.name, self.fanout, self.schema = folder, name, fanout, sch
        self.counts = [0] * fanout
        self._buf: dict[int, list[pa.Table]] = {}
        self._buffered = 0
        self._writers: dict[int, tuple] = {}
        self.filesystem, self._base = fs.resolve(folder)
        if not fs.is_object_store(folder):
            self.filesystem.create_dir(self._base, recursive=True)

    def path(self, bucket: int) -> str:
        return fs.join(self.folder, f"{self.name}-{bucket:05d}.arrow")

    def write(self, table: pa.Table, buckets: np.ndarray | int) -> None:
        if table.num_rows == 0:
            return
        if isinstance(buckets, (int, np.integer)):
            self._add(int(buckets), table)
        else:
            order = np.argsort(buckets, kind="stable")
            sorted_b = buckets[order]
            cuts = np.flatnonzero(np.diff(sorted_b)) + 1
            starts = np.concatenate([[0], cuts])
            ends = np.concatenate([cuts, [len(order)]])
            taken = table.take(pa.array(order))
            for s, e in zip(starts, ends):
                self._add(int(sorted_b[s]), taken.slice(int(s), int(e - s)))
        if self._buffered >= FLUSH_ROWS:
            self.flush()

    def _add(self, bucket: int, table: pa.Table) -> None:
        self._buf.setdefault(bucket, []).append(table)
        self.counts[bucket] += table.num_rows
        self._buffered += table.num_rows

    def flush(self) -> None:
        for bucket, tables in self._buf.items():
            w = self._writers.get(bucket)
            if w is None:
                sink = self.filesystem.open_output_stream(fs.resolve(self.path(bucket))[1])
                w = (sink, pa.ipc.new_stream(sink, self.schema, options=_IPC))
                self._writers[bucket] = w
            w[1].write_table(pa.concat_tables(tables).combine_chunks())
        self._buf.clear()
        self._buffered = 0

    def close(self) -> list[int]:
        """Flush and close every file; the rows per bucket."""
        self.flush()
        for sink, writer in self._writers.values():
            writer.close()
            sink.close()
        self._writers.clear()
        return self.counts


def read_batches(paths: Iterable[str]) -> Iterator[pa.RecordBatch]:
    """The batches of spill files, file by file, in order (missing files are empty buckets)."""
    for path in paths:
        filesystem, p = fs.resolve(path)
        try:
            f = filesystem.open_input_stream(p)
        except FileNotFoundError:
            continue
        with f, pa.ipc.open_stream(f) as reader:
            yield from reader


def read_table(paths: Iterable[str], sch: pa.Schema) -> pa.Table:
    batches = list(read_batches(paths))
    return pa.Table.from_batches(batches, schema=sch) if batches else sch.empty_table()


def bounded(paths: list[str], rows: int, sch: pa.Schema, max_rows: int, tmp: str, level: int = 1) -> Iterator[pa.Table]:
    """The rows of ``paths`` (spill files of ``sch``, with a uint64 column ``h``) as tables of at
    most ``max_rows`` rows each, every value of ``h`` wholly in one table, row order kept within
    each: a table that is too large is split by the next bits of ``h`` into local files under
    ``tmp`` first (and so on). Only rows sharing one ``h`` beyond the last bits stay together."""
    if rows <= max_rows or level >= MAX_LEVEL:
        yield read_table(paths, sch)
        return
    folder = os.path.join(tmp, f"split-{level}-{os.urandom(4).hex()}")
    fan = fanout_for(rows, max_rows)
    spill = Spill(folder, "b", fan, sch)
    try:
        for batch in read_batches(paths):
            h = batch.column("h").to_numpy(zero_copy_only=False)
            spill.write(pa.Table.from_batches([batch]), bucket(h, level, fan))
        counts = spill.close()
        for b, n in enumerate(counts):
            if n:
                yield from bounded([spill.path(b)], n, sch, max_rows, tmp, level + 1)
                os.unlink(spill.path(b))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
