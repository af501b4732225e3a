"""Corpus -> shards, from metadata only (sizes, Parquet footers, the first bytes of a .json): no
record is parsed. A plan is saved as plan.json in the output, so a rerun neither lists nor stats
the corpus again; ``probe_columns`` reads the first few records to fail fast on wrong columns.

A plan is compact: the byte ranges of a JSON-lines file and the row ranges of a Parquet file are
stored by rule (``Ranges``: file, step, count), not one object a shard, and expanded lazily
(``Plan`` iterates them as ``Shard``s), so a sparse 1 TB file cut into a million 1 MB shards
plans in well under a second and its plan.json is a few hundred bytes. Text-folder shards hold
their file names and are stored as they are. plan.json keeps the explicit list of shards
(``shards``, what older versions wrote, and what the output readers read) while a plan has at
most ``EXPLICIT_SHARDS`` shards, and the rules (``ranges``) above that; both load."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Iterable, Iterator

from extract.core import fs
from extract.core.config import ConfigError, did_you_mean, suggest, to_dict
from extract.core.job_config import InputConfig
from extract.core.types import Shard
from extract.io.csv_records import csv_mappings
from extract.io.readers import MAX_JSON_ARRAY_BYTES, is_json_array, stamps_of
from extract.io.records import max_line_bytes
from extract.io.sources import InputFile, list_inputs, open_binary, read_bounded, read_lines

PROBE_RECORDS = 50  # records read from the first file to check the configured columns
PROBE_FILES = 20  # files probed at most (a corpus whose first files hold no record is not probed further)
PROBE_BYTES = 64_000_000  # bytes read at most a probed JSON-lines file (a first line of 1 TB is not read)
EXPLICIT_SHARDS = 10_000  # plan.json lists the shards one by one up to this many, else by rule

# input.shard_bytes: auto. JSON-lines byte shards sized for time, not memory: a worker's memory no
# longer depends on its shard (a shard streams through the stages in pieces of inference.piece_chars,
# extract/job/stages.py), and a stopped job resumes at its next piece, so a shard's size only sets
# (a) how soon its first output is written, (b) how many files and tasks the job has. The rule:
# the splittable bytes (uncompressed JSON lines) over AUTO_SHARDS_PER_WORKER shards per worker
# (ray.num_actors on Ray, 1 on the local runner), rounded up to a whole MB, clamped to 1 MB .. the
# cap. The cap is ~30 s of one worker's compute: 2 MB for a CPU worker (~60 kB of JSON lines a
# second a core), 64 MB for a GPU worker (ray.gpus_per_actor > 0). A terabyte on CPU workers is
# ~500k shards: Ray Data streams them, and the end of the job is O(shards), not O(records).
AUTO_SHARDS_PER_WORKER = 256
AUTO_MIN, AUTO_MAX, AUTO_MAX_GPU = 1_000_000, 2_000_000, 64_000_000


def auto_shard_bytes(total_bytes: int, workers: int, gpu: bool = False) -> int:
    want = math.ceil(max(0, total_bytes) / (AUTO_SHARDS_PER_WORKER * max(1, workers)))
    cap = AUTO_MAX_GPU if gpu else AUTO_MAX
    return min(cap, max(AUTO_MIN, math.ceil(want / 1_000_000) * 1_000_000))


def shard_bytes_for(cfg: InputConfig, total_bytes: int, workers: int, gpu: bool = False) -> int:
    """The byte size of a JSON-lines shard: ``input.shard_bytes``, or the auto rule above."""
    if cfg.shard_bytes == "auto":
        return auto_shard_bytes(total_bytes, workers, gpu)
    return int(cfg.shard_bytes)


@dataclasses.dataclass
class Ranges:
    """The shards of one input file by rule: shard k covers ``[k*step, (k+1)*step)`` of its bytes
    (the last to the end: stop -1; the reader aligns each to line starts) or, with ``rows``, of
    its rows (the last to ``size``); ``step`` 0: the whole file, one shard."""

    index: int  # the file's place in the listing: the first number of its shard ids
    fmt: str
    file: str
    compression: str | None
    size: int  # bytes, or rows with ``rows``
    step: int
    count: int
    stamps: list
    rows: bool = False

    def bounds(self, k: int) -> tuple[int, int]:
        if self.step == 0:
            return 0, -1
        start = k * self.step
        if self.rows:
            return start, min(start + self.step, self.size)
        return start, (start + self.step if start + self.step < self.size else -1)

    def to_row(self) -> list:
        return [self.index, self.fmt, self.file, self.compression, self.size, self.step, self.count, self.stamps,
                self.rows]


class Plan:
    """The job's shards in plan order: ``Ranges`` rules (named ``<file>-<k>`` with the plan's
    widths) and explicit, named ``Shard``s (text groups; every shard of a plan saved by an older
    version). Sized and iterable; shards are built as they are iterated, never all held."""

    def __init__(self, items: list, widths: tuple[int, int] = (5, 5)):
        self.items = items
        self.widths = widths
        self._len = sum(i.count if isinstance(i, Ranges) else 1 for i in items)

    def __len__(self) -> int:
        return self._len

    def _id(self, r: Ranges, k: int) -> str:
        return f"{r.index:0{self.widths[0]}d}-{k:0{self.widths[1]}d}"

    def ids(self) -> Iterator[str]:
        for item in self.items:
            if isinstance(item, Ranges):
                for k in range(item.count):
                    yield self._id(item, k)
            else:
                yield item.shard_id

    def iter(self, skip: set | frozenset = frozenset()) -> Iterator[Shard]:
        """The shards whose ids are not in ``skip``, in plan order."""
        for item in self.items:
            if not isinstance(item, Ranges):
                if item.shard_id not in skip:
                    yield item
                continue
            for k in range(item.count):
                sid = self._id(item, k)
                if sid not in skip:
                    start, stop = item.bounds(k)
                    yield Shard(sid, item.fmt, item.file, item.compression, start, stop, stamps=item.stamps)

    def __iter__(self) -> Iterator[Shard]:
        return self.iter()

    def __getitem__(self, i: int) -> Shard:
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError(i)
        for item in self.items:
            n = item.count if isinstance(item, Ranges) else 1
            if i < n:
                if not isinstance(item, Ranges):
                    return item
                start, stop = item.bounds(i)
                return Shard(self._id(item, i), item.fmt, item.file, item.compression, start, stop, stamps=item.stamps)
            i -= n
        raise IndexError(i)

    def get(self, shard_id: str) -> Shard | None:
        """The shard named ``shard_id`` without expanding the plan: a rule's shard from the numbers
        in its id, an explicit one by a scan of the explicit shards (text groups: few)."""
        head, _, tail = shard_id.partition("-")
        if head.isdigit() and tail.isdigit() and (len(head), len(tail)) == self.widths:
            index, k = int(head), int(tail)
            for item in self.items:
                if isinstance(item, Ranges) and item.index == index and k < item.count:
                    start, stop = item.bounds(k)
                    return Shard(shard_id, item.fmt, item.file, item.compression, start, stop, stamps=item.stamps)
        return next((i for i in self.items if not isinstance(i, Ranges) and i.shard_id == shard_id), None)

    def pending(self, done: set) -> "Pending":
        return Pending(self, done)

    def stamps(self) -> list[tuple]:
        """(file, size, mtime) of every input file with a shard, sorted by name."""
        out = set()
        for item in self.items:
            if isinstance(item, Ranges):
                if item.count:
                    out.add((item.file, *item.stamps[0]))
                continue
            for f, (size, mtime) in zip(item.files or [item.file], item.stamps):
                out.add((f, size, mtime))
        return sorted(out, key=lambda x: x[0])


class Pending:
    """The shards of a plan not yet done: sized, iterated lazily (what the runners are handed)."""

    def __init__(self, plan: Plan, done: set):
        self.plan, self.done = plan, done
        self._len = len(plan) - sum(1 for sid in plan.ids() if sid in done) if done else len(plan)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Shard]:
        return self.plan.iter(self.done)


def as_plan(shards: Plan | Iterable[Shard]) -> Plan:
    return shards if isinstance(shards, Plan) else Plan(list(shards))


def _parquet_rows(f: InputFile, cfg: InputConfig) -> int:
    with fs.parquet_file(f.path) as pf:
        names = pf.schema_arrow.names
        n = pf.metadata.num_rows
    if cfg.id_column not in names:
        raise ConfigError(f"input.id_column '{cfg.id_column}' is not a column of {f.path} (columns: "
                          f"{', '.join(names)})." + suggest(cfg.id_column, names))
    if not any(c in names for c in cfg.text_columns):
        raise ConfigError(f"input.text_columns {list(cfg.text_columns)}: none is a column of {f.path} "
                          f"(columns: {', '.join(names)})." + suggest(cfg.text_columns[0], names))
    return n


def _width(values: Iterable[int], least: int) -> int:
    return max([least] + [len(str(v)) for v in values])


def plan(cfg: InputConfig, workers: int = 1, gpu: bool = False) -> tuple[Plan, dict]:
    """All shards of the job, in order, from metadata only (sizes, Parquet footers, the first bytes
    of a .json to tell an array from JSON lines): no record is parsed. Facts for run.json, with the
    corpus's bytes and the JSON-lines shard size chosen (``workers``: for input.shard_bytes auto).

    Shard ids sort in plan order for any number of files and shards: zero-padded numbers as wide
    as the plan needs (at least 5 digits, 4 for text roots, so plans that fit in them keep the ids
    they always had). The duplicate-id policy orders records by shard id, so the order of ids must
    be the plan's at any size. Text shards come after the files (prefix "t")."""
    listing = list_inputs(cfg.path, cfg.format)
    files: list[tuple[int, InputFile, list, bool]] = []
    text_files: dict[str, list[str]] = {}
    for index, f in enumerate(listing.files):
        if f.fmt == "text":
            text_files.setdefault(f.root, []).append(f.path)
            continue
        stamp = stamps_of([f.path])
        lines = f.fmt == "jsonl" or (f.fmt == "json" and not is_json_array(f.path, f.compression))
        files.append((index, f, stamp, lines))
    splittable = sum(int(stamp[0][0] or 0) for _, f, stamp, lines in files if lines and f.compression is None)
    step = shard_bytes_for(cfg, splittable, workers, gpu)
    total = sum(int(stamp[0][0] or 0) for _, _, stamp, _ in files)
    items: list = []
    for index, f, stamp, lines in files:
        fmt = "jsonl" if lines else f.fmt
        try:
            if f.compression is None and lines:
                size = int(stamp[0][0])
                items.append(Ranges(index, fmt, f.path, None, size, step, math.ceil(size / step), stamp))
                continue
            if f.compression is None and f.fmt == "parquet":
                n = _parquet_rows(f, cfg)
                items.append(Ranges(index, fmt, f.path, None, n, cfg.shard_size, math.ceil(n / cfg.shard_size),
                                    stamp, rows=True))
                continue
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - unreadable: one shard whose reader reports why
            pass
        items.append(Ranges(index, fmt, f.path, f.compression, int(stamp[0][0] or 0), 0, 1, stamp))
    texts = []
    for r, (root, group_files) in enumerate(sorted(text_files.items())):
        for k in range(0, len(group_files), cfg.shard_size):
            group = group_files[k:k + cfg.shard_size]
            stamps = stamps_of(group)
            total += sum(int(s[0] or 0) for s in stamps)
            texts.append(Shard((r, k // cfg.shard_size), "text", root=root, files=group, stamps=stamps))
    rw, tw = _width([s.shard_id[0] for s in texts], 4), _width([s.shard_id[1] for s in texts], 5)
    for s in texts:
        s.shard_id = f"t{s.shard_id[0]:0{rw}d}-{s.shard_id[1]:0{tw}d}"
    widths = (_width([i.index for i in items if i.count], 5), _width([i.count - 1 for i in items if i.count], 5))
    shards = Plan(items + texts, widths)
    facts = {"files": len(listing.files), "shards": len(shards), "bytes": total, "shard_bytes": step,
             "shard_bytes_setting": cfg.shard_bytes,
             "skipped_files": listing.skipped, "skipped_file_examples": listing.skipped_examples,
             "skipped_file_reasons": listing.skipped_reasons}
    return shards, facts


def probe_columns(shards: Iterable[Shard], cfg: InputConfig) -> None:
    """Fail fast when the first records of the first file with records hold no configured text
    column (or no id column): a misconfigured job would otherwise end with every record an error.
    Reads at most ``PROBE_RECORDS`` records of at most ``PROBE_FILES`` files, each file once;
    Parquet columns were checked from the footer."""
    seen: set[str] = set()
    for shard in shards:
        if shard.fmt in ("text", "parquet") or shard.file in seen:
            continue
        if len(seen) >= PROBE_FILES:
            return
        seen.add(shard.file)
        rows = _first_mappings(shard, cfg)
        if not rows:
            continue
        found = list(dict.fromkeys(k for row in rows for k in map(str, row)))
        shown = ", ".join(found[:30]) + (" ..." if len(found) > 30 else "")
        if not any(c in row for row in rows for c in cfg.text_columns):
            raise ConfigError(f"input.text_columns {list(cfg.text_columns)}: none is in the first {len(rows)} "
                              f"record(s) of {shard.file}; columns found: {shown}."
                              f"{did_you_mean(cfg.text_columns[0], found)}")
        if not any(cfg.id_column in row for row in rows):
            raise ConfigError(f"input.id_column '{cfg.id_column}' is in none of the first {len(rows)} record(s) "
                              f"of {shard.file}; columns found: {shown}.{did_you_mean(cfg.id_column, found)}")
        return


class _Capped:
    """A stream that ends after ``left`` bytes: the probe's reads stay bounded whatever the file."""

    def __init__(self, f, left: int):
        self.f, self.left = f, left

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n > 0 else b""
        self.left -= len(data)
        return data


def _first_mappings(shard: Shard, cfg: InputConfig) -> list[dict]:
    """Up to ``PROBE_RECORDS`` records of the shard's file as mappings (unparseable ones left out)."""
    rows: list = []
    try:
        with open_binary(shard.file, shard.compression) as f:
            if shard.fmt == "csv":  # records as the reader cuts them (CR-only files, long quoted fields)
                rows = [row for _, row in zip(range(PROBE_RECORDS), csv_mappings(f, cfg))]
            elif shard.fmt == "json" and is_json_array(shard.file, shard.compression):
                raw, _ = read_bounded(f, MAX_JSON_ARRAY_BYTES)
                rows = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode(cfg.encoding,
                                                                           errors="replace"))[:PROBE_RECORDS]
            else:
                for line in read_lines(_Capped(f, PROBE_BYTES), max_line_bytes(cfg)):
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


def input_stamps(shards: Plan | Iterable[Shard]) -> list[tuple]:
    """(file, size, mtime) of every input file, as planned."""
    return as_plan(shards).stamps()


# ------------------------------------------------------------------------------ plan.json

def _shard_dict(s: Shard) -> dict:
    return dataclasses.asdict(s)


def plan_data(input_cfg: InputConfig, shards: Plan | Iterable[Shard], facts: dict) -> dict:
    """plan.json's content: the shards one by one up to ``EXPLICIT_SHARDS``, else by rule."""
    p = as_plan(shards)
    data = {"input": to_dict(input_cfg), "facts": facts}
    if len(p) <= EXPLICIT_SHARDS:
        return {**data, "shards": [_shard_dict(s) for s in p]}
    return {**data, "version": 2, "widths": list(p.widths),
            "ranges": [i.to_row() for i in p.items if isinstance(i, Ranges)],
            "explicit": [_shard_dict(i) for i in p.items if not isinstance(i, Ranges)]}


def plan_of(saved: dict) -> Plan:
    """The Plan in a plan.json's content, either layout (``plan_data``; older versions wrote the
    explicit one). A ValueError naming the way out when it is neither."""
    fields = {f.name for f in dataclasses.fields(Shard)}

    def shard(d: dict) -> Shard:
        return Shard(**{k: v for k, v in d.items() if k in fields})

    try:
        if "ranges" in saved:
            ranges = [Ranges(*row) for row in saved["ranges"]]
            return Plan([*ranges, *(shard(d) for d in saved.get("explicit", []))], tuple(saved["widths"]))
        return Plan([shard(d) for d in saved["shards"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"plan.json is not a plan this version can read ({type(exc).__name__}: {exc}); rerun with "
                         "output.overwrite: true (or --overwrite) to plan the job again") from None


def read_plan(out) -> tuple[Plan, dict]:
    """(the Plan, the whole content) of OUT/plan.json, either layout: for readers of a job's output."""
    saved = json.loads(fs.read_text(fs.join(str(out), "plan.json")))
    return plan_of(saved), saved


def load_plan(out, input_cfg: InputConfig) -> tuple[Plan, dict] | None:
    """The plan a previous run of this job saved, so a rerun neither lists nor stats the corpus
    again; None when there is none or it was made for other reading settings."""
    path = fs.join(str(out), "plan.json")
    if not fs.is_file(path):
        return None
    saved = json.loads(fs.read_text(path))
    if saved.get("input") != to_dict(input_cfg):
        return None  # the identity check that follows names what changed
    try:
        shards = plan_of(saved)
    except ValueError as exc:
        raise ConfigError(f"output.path {out}: {exc}.") from None
    return shards, {**saved["facts"], "plan": "reused from plan.json"}


def save_plan(out, input_cfg: InputConfig, shards: Plan | Iterable[Shard], facts: dict) -> None:
    data = plan_data(input_cfg, shards, facts)
    fs.write_bytes_atomic(fs.join(str(out), "plan.json"), json.dumps(data).encode("utf-8"))
