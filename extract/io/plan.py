"""Corpus -> shards, from metadata only (sizes, Parquet footers, the first bytes of a .json): no
record is parsed. A plan is saved as plan.json in the output, so a rerun neither lists nor stats
the corpus again; ``probe_columns`` reads the first few records to fail fast on wrong columns."""
from __future__ import annotations

import dataclasses
import json

from extract.core import fs
from extract.core.config import ConfigError, did_you_mean, suggest, to_dict
from extract.core.job_config import InputConfig
from extract.core.types import Shard
from extract.io.csv_records import csv_mappings
from extract.io.readers import MAX_JSON_ARRAY_BYTES, is_json_array, stamps_of
from extract.io.records import max_line_bytes
from extract.io.sources import InputFile, list_inputs, open_binary, read_bounded, read_lines

PROBE_RECORDS = 50  # records read from the first file to check the configured columns


def _byte_ranges(size: int, cfg: InputConfig) -> list[tuple[int, int]]:
    """[start, stop) every ``shard_bytes``; the reader aligns each to line starts."""
    return [(s, s + cfg.shard_bytes if s + cfg.shard_bytes < size else -1) for s in range(0, size, cfg.shard_bytes)]


def _parquet_ranges(f: InputFile, cfg: InputConfig) -> list[tuple[int, int]]:
    with fs.parquet_file(f.path) as pf:
        names = pf.schema_arrow.names
        n = pf.metadata.num_rows
    if cfg.id_column not in names:
        raise ConfigError(f"input.id_column '{cfg.id_column}' is not a column of {f.path} (columns: "
                          f"{', '.join(names)})." + suggest(cfg.id_column, names))
    if not any(c in names for c in cfg.text_columns):
        raise ConfigError(f"input.text_columns {list(cfg.text_columns)}: none is a column of {f.path} "
                          f"(columns: {', '.join(names)})." + suggest(cfg.text_columns[0], names))
    return [(s, min(s + cfg.shard_size, n)) for s in range(0, n, cfg.shard_size)]


def name_shards(shards: list[Shard]) -> None:
    """Shard ids that sort in plan order for any number of files and shards: zero-padded numbers
    as wide as the plan needs (at least 5 digits, 4 for text roots, so plans that fit in them keep
    the ids they always had). The duplicate-id policy orders records by shard id, so the order of
    ids must be the plan's at any size. Text shards come after the files (prefix "t")."""
    def width(values, least: int) -> int:
        return max([least] + [len(str(v)) for v in values])

    files = [s for s in shards if s.fmt != "text"]
    texts = [s for s in shards if s.fmt == "text"]
    fw, kw = width([s.shard_id[0] for s in files], 5), width([s.shard_id[1] for s in files], 5)
    rw, tw = width([s.shard_id[0] for s in texts], 4), width([s.shard_id[1] for s in texts], 5)
    for s in files:
        s.shard_id = f"{s.shard_id[0]:0{fw}d}-{s.shard_id[1]:0{kw}d}"
    for s in texts:
        s.shard_id = f"t{s.shard_id[0]:0{rw}d}-{s.shard_id[1]:0{tw}d}"


def plan(cfg: InputConfig) -> tuple[list[Shard], dict]:
    """All shards of the job, in order, from metadata only (sizes, Parquet footers, the first bytes
    of a .json to tell an array from JSON lines): no record is parsed. Facts for run.json."""
    listing = list_inputs(cfg.path, cfg.format)
    shards: list[Shard] = []
    text_files: dict[str, list[str]] = {}
    for index, f in enumerate(listing.files):
        if f.fmt == "text":
            text_files.setdefault(f.root, []).append(f.path)
            continue
        stamp = stamps_of([f.path])
        lines = f.fmt == "jsonl" or (f.fmt == "json" and not is_json_array(f.path, f.compression))
        try:
            if f.compression is None and lines:
                ranges = _byte_ranges(stamp[0][0], cfg)
            elif f.compression is None and f.fmt == "parquet":
                ranges = _parquet_ranges(f, cfg)
            else:
                ranges = [(0, -1)]  # compressed, CSV or a JSON array: cannot be split
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - unreadable: one shard whose reader reports why
            ranges = [(0, -1)]
        for k, (start, stop) in enumerate(ranges):
            shards.append(Shard((index, k), "jsonl" if lines else f.fmt, f.path, f.compression,
                                start, stop, stamps=stamp))
    for r, (root, files) in enumerate(sorted(text_files.items())):
        for k in range(0, len(files), cfg.shard_size):
            group = files[k:k + cfg.shard_size]
            stamps = stamps_of(group)
            shards.append(Shard((r, k // cfg.shard_size), "text", root=root, files=group, stamps=stamps))
    name_shards(shards)
    facts = {"files": len(listing.files), "shards": len(shards), "skipped_files": listing.skipped,
             "skipped_file_examples": listing.skipped_examples, "skipped_file_reasons": listing.skipped_reasons}
    return shards, facts


def probe_columns(shards: list[Shard], cfg: InputConfig) -> None:
    """Fail fast when the first records of the first file with records hold no configured text
    column (or no id column): a misconfigured job would otherwise end with every record an error.
    Reads at most ``PROBE_RECORDS`` records; Parquet columns were checked from the footer."""
    for shard in shards:
        if shard.fmt in ("text", "parquet"):
            continue
        rows = _first_mappings(shard, cfg)
        if not rows:
            continue
        found = list(dict.fromkeys(k for row in rows for k in map(str, row)))
        shown = ", ".join(found[:30]) + (" ..." if len(found) > 30 else "")
        if not any(c in row for row in rows for c in cfg.text_columns):
            raise ConfigError(f"input.text_columns {list(cfg.text_columns)}: none is in the first {len(rows)} "
                              f"record(s) of {shard.file}; columns found: {shown}.{did_you_mean(cfg.text_columns[0], found)}")
        if not any(cfg.id_column in row for row in rows):
            raise ConfigError(f"input.id_column '{cfg.id_column}' is in none of the first {len(rows)} record(s) "
                              f"of {shard.file}; columns found: {shown}.{did_you_mean(cfg.id_column, found)}")
        return


def _first_mappings(shard: Shard, cfg: InputConfig) -> list[dict]:
    """Up to ``PROBE_RECORDS`` records of the shard's file as mappings (unparseable ones left out)."""
    rows: list = []
    try:
        with open_binary(shard.file, shard.compression) as f:
            if shard.fmt == "csv":  # records as the reader cuts them (CR-only files, long quoted fields)
                rows = [row for _, row in zip(range(PROBE_RECORDS), csv_mappings(f, cfg))]
            elif shard.fmt == "json" and is_json_array(shard.file, shard.compression):
                raw, _ = read_bounded(f, MAX_JSON_ARRAY_BYTES)
                rows = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode(cfg.encoding, errors="replace"))[:PROBE_RECORDS]
            else:
                for line in read_lines(f, max_line_bytes(cfg)):
                    if line.data is not None and line.data.strip():
                        try:
                            rows.append(json.loads(line.data.decode(cfg.encoding, errors="replace")))
                        except ValueError:
                            continue
                    if len(rows) >= PROBE_RECORDS or line.broken:
                        break
    except Exception:  # noqa: BLE001 - an unreadable file is reported by its shard, not here
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def input_stamps(shards: list[Shard]) -> list[tuple]:
    """(file, size, mtime) of every input file, as planned."""
    out = set()
    for s in shards:
        for f, (size, mtime) in zip(s.files or [s.file], s.stamps):
            out.add((f, size, mtime))
    return sorted(out, key=lambda x: x[0])


def load_plan(out, input_cfg: InputConfig) -> tuple[list[Shard], dict] | None:
    """The plan a previous run of this job saved, so a rerun neither lists nor stats the corpus
    again; None when there is none or it was made for other reading settings."""
    path = fs.join(str(out), "plan.json")
    if not fs.is_file(path):
        return None
    saved = json.loads(fs.read_text(path))
    if saved.get("input") != to_dict(input_cfg):
        return None  # the identity check that follows names what changed
    return [Shard(**s) for s in saved["shards"]], {**saved["facts"], "plan": "reused from plan.json"}


def save_plan(out, input_cfg: InputConfig, shards: list[Shard], facts: dict) -> None:
    data = {"input": to_dict(input_cfg), "facts": facts, "shards": [dataclasses.asdict(s) for s in shards]}
    fs.write_bytes_atomic(fs.join(str(out), "plan.json"), json.dumps(data).encode("utf-8"))
