"""Duplicate ids, settled after the shards ran, over the docs table (columnar, no row objects).

Policy, the same for every format and encoding: among the records that are not `error` rows, the
first with a given id, in shard order (input files in listed order, then text folders) and then
record order, keeps the id; every later record with that id becomes `skipped` with "duplicate id,
first seen at <source>" and contributes no entity rows. An `error` record never claims an id (its
id may be garbage). Within a shard the processor already applies the rule before the model runs;
across shards this pass rewrites the docs part (and drops the entity rows) of the later shards.
It is idempotent: a rerun recomputes the same answer and rewrites nothing.

Cost: one read of four docs columns and a hash aggregation in Arrow (for 10M documents roughly a
few hundred MB in the driver); only shards holding a later duplicate are rewritten.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, schema

PREFIX = "duplicate id, first seen at "


def message(first_source: str) -> str:
    return PREFIX + first_source


def later_duplicates(docs: pa.Table) -> pa.Table:
    """Rows (shard, index, doc_id, first_shard, first_source) of every record that loses its id."""
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


def settle(out: str | os.PathLike, data_dirs: tuple[str, ...]) -> int:
    """Apply the policy to finished shards under ``out`` (a local folder or a URI); returns the
    number of duplicate rows."""
    from extract.job.summary import table_of

    out = os.fspath(out)
    docs = table_of(fs.join(out, "docs"), ["doc_id", "status", "shard", "index", "source", "error"], schema.DOCS)
    later = later_duplicates(docs)
    for shard in sorted(set(later["shard"].to_pylist())):
        rows = later.filter(pc.equal(later["shard"], shard)).to_pylist()
        path = fs.join(out, "docs", f"part-{shard}.parquet")
        part = fs.read_parquet(path, schema=schema.DOCS)
        changed = _mark(part, {r["index"]: message(r["first_source"]) for r in rows})
        if changed is None:
            continue  # settled by an earlier run (or by the processor within the shard)
        drop = {r["doc_id"] for r in rows if r["first_shard"] != shard}
        for folder in data_dirs:
            data_path = fs.join(out, folder, f"part-{shard}.parquet")
            if drop and fs.is_file(data_path):
                data = fs.read_parquet(data_path)
                kept = data.filter(pc.invert(pc.is_in(data["doc_id"], pa.array(sorted(drop), pa.string()))))
                fs.write_parquet_atomic(kept, data_path)
        fs.write_parquet_atomic(changed, path)  # docs last: the shard reads as done with both parts settled
    return later.num_rows


def _mark(part: pa.Table, msgs: dict[int, str]) -> pa.Table | None:
    cols = {name: part[name].to_pylist() for name in part.column_names}
    changed = False
    for i, idx in enumerate(cols["index"]):
        if idx in msgs and (cols["status"][i], cols["error"][i]) != ("skipped", msgs[idx]):
            changed = True
            cols["status"][i], cols["error"][i] = "skipped", msgs[idx]
            for k in ("n_chars", "n_words", "n_tokens", "n_entities"):
                cols[k][i] = 0
    return pa.table(cols, schema=schema.DOCS) if changed else None
