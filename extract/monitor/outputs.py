"""A finished job's output folder read back: its tables, its input settings, its plan, and chosen
records and their texts re-read from the input (texts are not stored in the output), so entity
offsets index them exactly. Used by `show`, `review`, `quality` and job-output silver
(training/job_silver.py).

A service log (`python -m extract serve` with serve.log.path, extract/serve/log.py) is read the same
way: it has no plan.json, and its texts are stored beside the docs, OUT/texts/part-<part>.parquet, in
the docs rows' order (a docs row's ``shard`` names the part and ``index`` is its row there)."""
from __future__ import annotations

import itertools
import json
from typing import Iterable

from extract.core import fs
from extract.core.config import ConfigError, from_dict
from extract.core.job_config import InputConfig
from extract.core.types import Record
from extract.io.plan import Plan, plan_of
from extract.io.readers import read_shard
from extract.job.summary import table_of


class JobOutputError(ConfigError):
    """Not (or no longer) the output of a finished `python -m extract run`; the CLI exits with 2."""


def read_table(out: str, name: str, sch, columns: list[str] | None = None):
    """OUT/<name> (``docs`` or ``entities``) as one Arrow table of ``sch`` (all its columns, or
    ``columns``), read from its part files like run.json's counts (a local path or a URI); a
    JobOutputError when the folder is missing."""
    path = fs.join(out, name)
    if not fs.is_dir(path):
        raise JobOutputError(f"{path}: not found; is {out} the output folder of `python -m extract run`?")
    return table_of(path, list(columns or sch.names), sch)


def is_served_log(out: str) -> bool:
    """OUT was written by the service's log (texts/ kept beside docs/, no plan.json)."""
    return not fs.is_file(fs.join(out, "plan.json")) and fs.is_dir(fs.join(out, "texts"))


def is_output(out: str) -> bool:
    """OUT is a job's output folder (plan.json) or a service log (texts/ and docs/)."""
    return fs.is_file(fs.join(out, "plan.json")) or (fs.is_dir(fs.join(out, "texts"))
                                                     and fs.is_dir(fs.join(out, "docs")))


def _run_json(out: str) -> dict:
    run_path = fs.join(out, "run.json")
    return json.loads(fs.read_text(run_path)) if fs.is_file(run_path) else {}


def read_run(out: str) -> dict:
    """OUT/run.json ({} before the first run finished), for a job's output or a service log."""
    if not is_output(out):
        raise JobOutputError(f"{fs.join(out, 'plan.json')}: not found; is {out} the output folder of "
                             "`python -m extract run` (or a service log, serve.log.path)?")
    return _run_json(out)


def _served_records(out: str, by_shard: dict[str, set[int]]) -> dict[tuple[str, int], Record]:
    """(part, row) -> the served text, from OUT/texts/part-<part>.parquet."""
    found = {}
    for part, indices in by_shard.items():
        path = fs.join(out, "texts", f"part-{part}.parquet")
        if not fs.is_file(path):
            raise JobOutputError(f"{path}: not found, but docs/ has part {part}: the service log is incomplete")
        table = fs.read_parquet(path)
        if "text" not in table.column_names:
            raise JobOutputError(f"{out} was logged with serve.log.text: hash: only sha256 hashes of the texts are "
                                 "kept, so they cannot be shown, reviewed or trained on. Log with "
                                 "serve.log.text: full.")
        ids, texts = table.column("doc_id").to_pylist(), table.column("text").to_pylist()
        for i in indices:
            if 0 <= i < len(ids):
                found[(part, i)] = Record(ids[i], texts[i], f"serve:{path}#{i}")
    return found


def load_job(out: str) -> tuple[InputConfig, Plan, dict]:
    """The job's InputConfig (run.json's resolved config, else the plan's), its plan (plan.json,
    either layout: ``Plan.get`` finds a shard by id without expanding it), and run.json ({} before
    the first run finished)."""
    plan_path = fs.join(out, "plan.json")
    if not fs.is_file(plan_path):
        raise JobOutputError(f"{plan_path}: not found; is {out} the output folder of `python -m extract run`?")
    plan = json.loads(fs.read_text(plan_path))
    run = _run_json(out)
    raw = (run.get("config") or {}).get("input") or plan.get("input")
    try:
        shards = plan_of(plan)
    except ValueError as exc:
        raise JobOutputError(f"{plan_path}: {exc}") from None
    return from_dict(InputConfig, raw, "input"), shards, run


def read_records(out: str, wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Record]:
    """(shard, index) -> the record, reading each needed shard once, up to its last wanted record."""
    by_shard: dict[str, set[int]] = {}
    for shard_id, index in wanted:
        by_shard.setdefault(shard_id, set()).add(int(index))
    if is_served_log(out):
        return _served_records(out, by_shard)
    cfg, shards, _ = load_job(out)
    found = {}
    for shard_id, indices in by_shard.items():
        shard = shards.get(shard_id)
        if shard is None:
            raise JobOutputError(f"shard {shard_id} is in docs/ but not in plan.json")
        for i, rec in enumerate(itertools.islice(read_shard(shard, cfg), max(indices) + 1)):
            if i in indices:
                found[(shard_id, i)] = rec
    return found


def read_texts(out: str, wanted: dict[str, tuple[str, int]]) -> dict[str, str]:
    """doc_id -> text for ``wanted`` (doc_id -> (shard, index), as in the docs table), re-read from
    the job's input with the job's own reader and settings; the text the job's model saw, so the
    entities' offsets index it. A JobOutputError when a record is not the document it was (the
    input changed since the job ran)."""
    records = read_records(out, wanted.values())
    texts: dict[str, str] = {}
    for doc_id, (shard, index) in wanted.items():
        rec = records.get((shard, int(index)))
        if rec is None or rec.doc_id != doc_id or rec.text is None:
            raise JobOutputError(f"record {index} of shard {shard} is {rec.doc_id if rec else None!r}, expected "
                                 f"{doc_id!r}: the input changed since the job ran")
        texts[doc_id] = rec.text
    return texts
