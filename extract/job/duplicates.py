"""Duplicate ids, settled after the shards ran, without one process holding every id.

Policy, the same for every format and encoding: among the records that are not `error` rows, the
first with a given id, in shard order (input files in listed order, then text folders) and then
record order, keeps the id; every later record with that id becomes `skipped` with "duplicate id,
first seen at <source>" and contributes no entity rows. An `error` record never claims an id (its
id may be garbage). Within a shard the processor already applies the rule before the model runs;
across shards this pass rewrites the docs part (and drops the entity rows) of the later shards.
It is idempotent: a rerun recomputes the same answer and rewrites nothing.

How (an external hash partition, bounded memory whatever the corpus size):
1. keys: each finished shard's docs part, streamed a batch at a time, gives the (id hash, shard
   number, index, id, source) of its non-error rows; they go, hash-partitioned, into at most
   ``MAX_FANOUT`` Arrow IPC files (``FLUSH_ROWS`` keys buffered at most).
2. each partition is settled alone (``later_of``: per id the smallest (shard, index) keeps it;
   every other row of it is a later row, with the first's shard and source); a partition of more
   than ``max_rows`` keys is split again by other bits of the hash first, so one partition in
   memory is at most ``max_rows`` keys (only the rows of one id repeated more than that many
   times cannot be split further). The later rows go to a second spill, partitioned by shard.
3. the shards holding later rows are rewritten one at a time, each part streamed (docs part
   last, as before), and their stats' summaries recomputed (extract/job/shard_stats.py) before
   their docs part.
The driver holds the shard ids and a few counts per partition; per partition at most
``max_rows`` keys; per shard one batch of rows and the shard's rewritten part, compressed.
Locally (``settle``) the spill lives in a temporary folder (``NERBATCH_SPILL_DIR`` or the system's
temp folder) removed at the end; on Ray (extract/job/runner_ray.py ``settle_ray``) the same three
steps run as Ray tasks over a spill under ``OUT/_dups`` that every worker sees.

``later_duplicates`` is the same rule over a whole docs table in memory (the reference the tests
compare with).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from extract.core import fs, schema
from extract.job import shard_stats
from extract.job.partitions import (BATCH_ROWS, MAX_ROWS, Spill, bounded, bucket as _bucket, fanout_for, mix64,
                                     hash_strings)

PREFIX = "duplicate id, first seen at "
SPILL_ENV = "NERBATCH_SPILL_DIR"
RAY_SPILL = "_dups"  # OUT/_dups: the Ray tasks' spill (removed at the end)

KEYS = pa.schema([("h", pa.uint64()), ("shard_no", pa.int32()), ("index", pa.int64()), ("doc_id", pa.string()),
                  ("source", pa.string())])
LATER = pa.schema([("h", pa.uint64()), ("shard_no", pa.int32()), ("index", pa.int64()), ("doc_id", pa.string()),
                   ("first_shard_no", pa.int32()), ("first_source", pa.string())])


def message(first_source: str) -> str:
    return PREFIX + first_source


# ------------------------------------------------------------------------ the rule in memory

def later_duplicates(docs: pa.Table) -> pa.Table:
    """Rows (shard, index, doc_id, first_shard, first_source) of every record that loses its id,
    from a whole docs table in memory (the reference; ``settle`` never builds this table)."""
    keep = pc.and_(pc.not_equal(docs["status"], "error"), pc.is_valid(docs["doc_id"]))
    t = docs.filter(keep).sort_by([("shard", "ascending"), ("index", "ascending")])
    t = t.append_column("pos", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    groups = t.group_by("doc_id").aggregate([("pos", "min"), ("pos", "count")])
    groups = groups.filter(pc.greater(groups["pos_count"], 1))
    empty = pa.table({"shard": pa.array([], pa.string()), "index": pa.array([], pa.int64()),
                      "doc_id": pa.array([], pa.string()), "first_shard": pa.array([], pa.string()),
                      "first_source": pa.array([], pa.string())})
    if groups.num_rows == 0:
        return empty
    joined = t.join(groups.select(["doc_id", "pos_min"]), "doc_id")
    later = joined.filter(pc.not_equal(joined["pos"], joined["pos_min"]))
    first = later["pos_min"]
    return pa.table({"shard": later["shard"], "index": later["index"], "doc_id": later["doc_id"],
                     "first_shard": pc.take(t["shard"], first), "first_source": pc.take(t["source"], first)})


def later_of(keys: pa.Table) -> pa.Table:
    """The LATER rows of one partition's keys (in any order): every row of an id after its first
    in (shard, index) order, with the first's shard number and source."""
    pos = pc.add(pc.multiply(keys["shard_no"].cast(pa.int64()), 1 << 32), keys["index"])
    t = keys.append_column("pos", pos)
    groups = t.group_by("doc_id", use_threads=False).aggregate([("pos", "min"), ("pos", "count")])
    groups = groups.filter(pc.greater(groups["pos_count"], 1))
    if groups.num_rows == 0:
        return LATER.empty_table()
    joined = t.select(["doc_id", "pos", "shard_no", "index"]).join(groups.select(["doc_id", "pos_min"]), "doc_id",
                                                                  use_threads=False)
    later = joined.filter(pc.not_equal(joined["pos"], joined["pos_min"]))
    firsts = t.select(["pos", "source"]).join(pa.table({"pos": groups["pos_min"]}), "pos", use_threads=False)
    later = later.join(firsts.rename_columns(["pos_min", "first_source"]), "pos_min", use_threads=False)
    shard_no = later["shard_no"].to_numpy(zero_copy_only=False)
    first_no = pc.shift_right(later["pos_min"], 32).cast(pa.int32())
    return pa.table({"h": mix64(shard_no.astype(np.uint64)), "shard_no": later["shard_no"], "index": later["index"],
                     "doc_id": later["doc_id"], "first_shard_no": first_no, "first_source": later["first_source"]},
                    schema=LATER)


# ------------------------------------------------------------------------------ the 3 steps

KEY_COLUMNS = ["doc_id", "status", "index", "source"]


def shard_keys(out: str, shard_no: int, shard_id: str) -> Iterator[pa.Table]:
    """KEYS of one finished shard (its non-error rows with an id), a batch at a time: the docs
    part is streamed, never read whole."""
    with fs.parquet_file(fs.join(out, "docs", f"part-{shard_id}.parquet")) as pf:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=KEY_COLUMNS, use_threads=False):
            part = pa.Table.from_batches([batch])
            part = part.filter(pc.and_(pc.not_equal(part["status"], "error"), pc.is_valid(part["doc_id"])))
            yield pa.table({"h": hash_strings(part["doc_id"]),
                            "shard_no": pa.array(np.full(part.num_rows, shard_no, np.int32)),
                            "index": part["index"].cast(pa.int64()), "doc_id": part["doc_id"].cast(pa.string()),
                            "source": part["source"].cast(pa.string())}, schema=KEYS)


def spill_keys(out: str, shards: list[tuple[int, str]], folder: str, name: str, fanout: int) -> list[int]:
    """Step 1 for ``shards`` ((number, id)): their keys into ``fanout`` partition files
    ``<folder>/<name>-<p>.arrow``; the rows per partition."""
    spill = Spill(folder, name, fanout, KEYS)
    for shard_no, shard_id in shards:
        for keys in shard_keys(out, shard_no, shard_id):
            spill.write(keys, _bucket(keys["h"].to_numpy(zero_copy_only=False), 0, fanout) if fanout > 1 else 0)
    return spill.close()


def settle_partition(paths: list[str], rows: int, later: Spill, ranges: int, n_shards: int, max_rows: int,
                     tmp: str) -> int:
    """Step 2 for one partition (its files, in any order): its later rows into ``later``, bucket
    = the range of ``ranges`` contiguous shard ranges their shard falls in; how many."""
    n = 0
    for keys in bounded(paths, rows, KEYS, max_rows, tmp):
        found = later_of(keys)
        if found.num_rows:
            n += found.num_rows
            no = found["shard_no"].to_numpy(zero_copy_only=False).astype(np.int64)
            later.write(found, (no * ranges) // max(1, n_shards) if ranges > 1 else 0)
    return n


def rewrite(out: str, data_dirs: tuple[str, ...], shard_ids: list[str], paths: list[str], rows: int,
            max_rows: int, tmp: str) -> None:
    """Step 3: apply the later rows in ``paths`` (LATER spill files) to their shards, one shard
    at a time, holding at most ``max_rows`` later rows (all of one shard) at once."""
    for later in bounded(paths, rows, LATER, max_rows, tmp):
        later = later.sort_by([("shard_no", "ascending"), ("index", "ascending")])
        no = later["shard_no"].to_numpy(zero_copy_only=False)
        cuts = np.flatnonzero(np.diff(no)) + 1
        for s, e in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(no)]])):
            apply_to_shard(out, data_dirs, shard_ids, int(no[s]), later.slice(int(s), int(e - s)))


def apply_to_shard(out: str, data_dirs: tuple[str, ...], shard_ids: list[str], shard_no: int, rows: pa.Table) -> None:
    """Mark one shard's later rows (LATER rows of that shard) and drop their entity rows (when the
    id's first record is in another shard); its stats' summary recomputed; nothing when already
    settled. The docs part is written last, so the shard reads as done with both parts settled.
    Every part is streamed a batch at a time (the new files are built compressed in memory)."""
    shard = shard_ids[shard_no]
    msgs = dict(zip(rows["index"].to_pylist(), (message(s) for s in rows["first_source"].to_pylist())))
    drop = sorted({d for d, f in zip(rows["doc_id"].to_pylist(), rows["first_shard_no"].to_pylist()) if f != shard_no})
    path = fs.join(out, "docs", f"part-{shard}.parquet")
    marked = _mark_part(path, msgs)
    if marked is None:
        return  # settled by an earlier run (or by the processor within the shard)
    docs_bytes, doc_columns = marked
    entities = None
    for folder in data_dirs:
        data_path = fs.join(out, folder, f"part-{shard}.parquet")
        if drop and fs.is_file(data_path):
            kept = _drop_rows(data_path, pa.array(drop, pa.string()),
                              shard_stats.ENTITY_COLUMNS if folder == "entities" else None)
            if folder == "entities":
                entities = kept
    ents_path = fs.join(out, "entities", f"part-{shard}.parquet")

    def summary() -> dict:
        ents = entities
        if ents is None and fs.is_file(ents_path):
            ents = _columns(ents_path, shard_stats.ENTITY_COLUMNS)
        return shard_stats.of_tables(doc_columns, ents)

    # run.json's numbers of this shard as settled, before the docs part (a rerun redoes both).
    shard_stats.update_stats(out, shard, summary)
    fs.write_bytes_atomic(path, docs_bytes)


def _columns(path: str, columns: list[str]) -> pa.Table:
    """``columns`` of a Parquet part, read a batch at a time."""
    with fs.parquet_file(path) as pf:
        batches = list(pf.iter_batches(batch_size=BATCH_ROWS, columns=columns, use_threads=False))
        sch = pa.schema([pf.schema_arrow.field(c) for c in columns])
    return pa.Table.from_batches(batches, schema=sch).combine_chunks()


def _mark_part(path: str, msgs: dict[int, str]) -> tuple[bytes, pa.Table] | None:
    """The docs part at ``path`` with ``msgs``' rows marked (``_mark``), streamed: (the new file's
    bytes, its DOC_COLUMNS for the shard's summary); None when nothing changes."""
    changed = False
    buf = pa.BufferOutputStream()
    cols: list[pa.Table] = []
    with fs.parquet_file(path) as pf:
        writer = pq.ParquetWriter(buf, schema.DOCS, compression="zstd")
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
            part = pa.Table.from_batches([batch]).cast(schema.DOCS)
            new = _mark(part, msgs)
            changed = changed or new is not None
            part = part if new is None else new
            writer.write_table(part)
            cols.append(part.select(shard_stats.DOC_COLUMNS))
        writer.close()
    if not changed:
        return None
    return buf.getvalue().to_pybytes(), (pa.concat_tables(cols).combine_chunks() if cols else
                                         schema.DOCS.empty_table().select(shard_stats.DOC_COLUMNS))


def _drop_rows(path: str, drop: pa.Array, keep_columns: list[str] | None) -> pa.Table | None:
    """Rewrite the Parquet part at ``path`` without the rows whose ``doc_id`` is in ``drop``,
    streamed a batch at a time (zstd, atomic: the compressed file is built in memory, then
    written whole); the kept rows' ``keep_columns`` (or None)."""
    kept: list[pa.Table] = []
    buf = pa.BufferOutputStream()
    with fs.parquet_file(path) as pf:
        writer = pq.ParquetWriter(buf, pf.schema_arrow, compression="zstd")
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
            t = pa.Table.from_batches([batch])
            t = t.filter(pc.invert(pc.is_in(t["doc_id"], drop)))
            writer.write_table(t)
            if keep_columns is not None:
                kept.append(t.select(keep_columns))
        writer.close()
    fs.write_bytes_atomic(path, buf.getvalue().to_pybytes())
    if keep_columns is None:
        return None
    return pa.concat_tables(kept).combine_chunks() if kept else None


def _mark(part: pa.Table, msgs: dict[int, str]) -> pa.Table | None:
    """``part`` with the rows at ``msgs``' indices made `skipped` with their message (counts 0);
    None when every one of them already is."""
    if not msgs:
        return None
    keys = np.fromiter(msgs, np.int64, len(msgs))
    order = np.argsort(keys)
    keys = keys[order]
    texts = list(msgs.values())
    index = part["index"].to_numpy(zero_copy_only=False)
    at = np.minimum(np.searchsorted(keys, index), len(keys) - 1)
    rows = np.flatnonzero(keys[at] == index)
    status = part["status"].to_numpy(zero_copy_only=False).copy()
    error = part["error"].to_numpy(zero_copy_only=False).copy()
    changed = []
    for r in rows:
        msg = texts[order[at[r]]]
        if (status[r], error[r]) != ("skipped", msg):
            status[r], error[r] = "skipped", msg
            changed.append(r)
    if not changed:
        return None
    out = part.set_column(part.schema.get_field_index("status"), "status", pa.array(status, pa.string()))
    out = out.set_column(out.schema.get_field_index("error"), "error", pa.array(error, pa.string()))
    for k in ("n_chars", "n_words", "n_tokens", "n_entities"):
        col = out[k].to_numpy(zero_copy_only=False).copy()
        col[changed] = 0
        out = out.set_column(out.schema.get_field_index(k), k, pa.array(col, pa.int64()))
    return out.combine_chunks()


# ----------------------------------------------------------------------------- the drivers

def shard_order(out: str) -> list[str]:
    """The finished shards' ids in the policy's order (the docs table's ``shard`` column sorted)."""
    return sorted(shard_stats.done_shards(out))


def estimate_rows(out: str, shard_ids: list[str]) -> int:
    """Records in the finished shards, from their stats (no table read; 0 when unknown): sizes
    the first partitioning only, which splits again where it was too coarse."""
    total = 0
    for _, stats, summary, _ in shard_stats.walk(out):
        if stats is not None:
            total += int(stats.get("docs") or 0)
    return total


def settle(out: str | os.PathLike, data_dirs: tuple[str, ...], *, max_rows: int | None = None,
           spill_dir: str | None = None) -> int:
    """Apply the policy to finished shards under ``out`` (a local folder or a URI) with the local
    external pass; returns the number of duplicate rows (later records, settled now or before).
    ``max_rows``: keys one partition holds at once (``MAX_ROWS``); ``spill_dir``: where the
    temporary partition files go (``NERBATCH_SPILL_DIR``, else the system's temp folder)."""
    out = os.fspath(out)
    max_rows = max_rows or MAX_ROWS
    shard_ids = shard_order(out)
    if not shard_ids:
        return 0
    base = spill_dir or os.environ.get(SPILL_ENV) or None
    if base:
        os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="nerbatch-dups-", dir=base)
    try:
        fan = fanout_for(estimate_rows(out, shard_ids), max_rows)
        counts = spill_keys(out, list(enumerate(shard_ids)), os.path.join(tmp, "keys"), "p", fan)
        later = Spill(os.path.join(tmp, "later"), "r", 1, LATER)
        n = 0
        for p, rows in enumerate(counts):
            if rows:
                path = os.path.join(tmp, "keys", f"p-{p:05d}.arrow")
                n += settle_partition([path], rows, later, 1, len(shard_ids), max_rows, tmp)
                os.unlink(path)
        (n_later,) = later.close()
        if n_later:
            rewrite(out, data_dirs, shard_ids, [later.path(0)], n_later, max_rows, tmp)
        return n
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_spill(folder: str) -> None:
    """Delete a spill folder (a local path or a URI) and everything in it; nothing when absent."""
    filesystem, path = fs.resolve(folder)
    try:
        if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            filesystem.delete_dir(path)
    except (FileNotFoundError, OSError):
        if fs.is_local(folder):
            shutil.rmtree(path, ignore_errors=True)


def partition_task(paths: list[str], rows: int, folder: str, name: str, ranges: int,
                   n_shards: int) -> tuple[int, list[int]]:
    """Step 2 for one partition in a worker of its own (a Ray task): (duplicates found, rows per range)."""
    tmp = tempfile.mkdtemp(prefix="nerbatch-dups-")
    try:
        later = Spill(folder, name, ranges, LATER)
        found = settle_partition(paths, rows, later, ranges, n_shards, MAX_ROWS, tmp)
        return found, later.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rewrite_task(out: str, data_dirs: tuple[str, ...], shard_ids: list[str], paths: list[str], rows: int) -> None:
    """Step 3 for one range of shards in a worker of its own (a Ray task)."""
    tmp = tempfile.mkdtemp(prefix="nerbatch-dups-")
    try:
        rewrite(out, data_dirs, shard_ids, paths, rows, MAX_ROWS, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
