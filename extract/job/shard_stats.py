"""Per-shard numbers for run.json and the run report, and their merge in the driver: the end of a
job costs O(shards), never O(records).

Each shard's ``finish`` (extract/job/stages.py) computes ``of_tables`` on the two tables it just
wrote and stores it under ``"summary"`` in its ``stats/part-<shard>.json``; the cross-shard
duplicate pass (extract/job/duplicates.py) recomputes it for each shard it rewrites. ``collect``
walks the finished shards (their docs parts, in shard order) and merges their summaries into one
``Totals``; a shard whose stats lack the summary (an output folder written before it existed, or a
stats file lost) is summarised from its own two parts, one shard at a time, so even then no table
is ever read whole.

What merges exactly and what does not:
- counts by status and label, words, wordpieces, the confidence histograms (overall and per label,
  the bins of extract/job/summary.py and of the run report) and the score sum (for the mean) are
  sums: exact.
- error/skip reasons (run.json's top 20): each shard keeps every distinct reason prefix (the words
  before the first ':' cut to 80 characters, so there are few) with its count, in order of first
  appearance, up to ``MAX_REASONS`` per shard; the merge keeps first appearance in shard order, so
  ties order as in the table-based count. Exact unless a shard had more than ``MAX_REASONS``
  distinct prefixes or the merge held more than ``REASONS_CAP`` (then the rarest are dropped:
  ``reasons_complete`` is False).
- top entities (the report): each shard keeps its ``TOP_K`` most frequent texts per label with
  count and score sum; the merge adds them up (at most ``TOP_CAP`` texts per label, the rarest
  pruned). A text frequent overall but never in a shard's own top ``TOP_K`` is missed, so the
  merged list is approximate unless every shard's list was complete (``top_exact``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, listing, schema

KEY = "summary"  # the field of stats/part-<shard>.json holding ``of_tables``
VERSION = 1
BINS = 10  # equal confidence bins over [0, 1], as extract/job/summary.py BINS
MAX_REASONS = 1000  # distinct reason prefixes kept per shard (all of them, short prefixes, in practice)
REASONS_CAP = 100_000  # distinct reasons the merge holds before it drops the rarest half
TOP_K = 500  # texts per label a shard keeps for the report's top entities (it shows 10; ~20 kB of JSON a label)
TOP_CAP = 20_000  # texts per label the merge holds before it drops the rarest half
READ_THREADS = 8  # stats files read at once (object stores: one request each)
CHUNK = 256  # shards read ahead of the merge at most


# ------------------------------------------------------------------------------- one shard

def reason_prefixes(docs: pa.Table) -> pa.Array:
    """The reasons of error and skipped rows: the words before the ':' that starts the specifics,
    at most 80 characters (run.json's ``error_reasons`` groups by these)."""
    bad = docs.filter(pc.and_(pc.is_in(docs["status"], pa.array(["error", "skipped"])), pc.is_valid(docs["error"])))
    return pc.utf8_slice_codeunits(pc.list_element(pc.split_pattern(bad["error"], ":", max_splits=1), 0), 0, 80)


def _first_seen_counts(column) -> list[list]:
    """[[value, count], ...] of the non-null values in order of first appearance."""
    if len(column) == 0:
        return []
    vc = pc.value_counts(column)
    return [[str(v), int(c)] for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())
            if v is not None]


def label_bins(scores: np.ndarray) -> np.ndarray:
    """The bin of each score for the per-label histograms (the run report's: floor(score * BINS),
    clipped to the last bin)."""
    return np.clip((scores * BINS).astype(np.int64), 0, BINS - 1)


def of_tables(docs: pa.Table, ents: pa.Table | None) -> dict:
    """One shard's numbers from its docs table (``status, n_words, n_tokens, error``) and its
    entities table (``label, text, score``; None for a job without entity rows)."""
    statuses = dict(_first_seen_counts(docs["status"]))
    reasons = _first_seen_counts(reason_prefixes(docs))
    reasons_complete = len(reasons) <= MAX_REASONS
    if not reasons_complete:  # keep the most frequent, still in order of first appearance
        keep = {i for i, _ in sorted(enumerate(reasons), key=lambda x: -x[1][1])[:MAX_REASONS]}
        reasons = [r for i, r in enumerate(reasons) if i in keep]
    out = {"v": VERSION, "documents": docs.num_rows, "by_status": {s: statuses.get(s, 0) for s in schema.STATUSES},
           "words": int(pc.sum(docs["n_words"]).as_py() or 0), "wordpieces": int(pc.sum(docs["n_tokens"]).as_py() or 0),
           "reasons": reasons, "reasons_complete": reasons_complete,
           "entities": 0, "by_label": {}, "histogram": [0] * BINS, "score_sum": 0.0, "label_histograms": {},
           "top": {}, "top_complete": True}
    if ents is None or ents.num_rows == 0:
        return out
    scores = ents["score"].to_numpy(zero_copy_only=False).astype(float)
    out["entities"] = ents.num_rows
    out["by_label"] = dict(sorted(_first_seen_counts(ents["label"])))
    out["histogram"] = [int(x) for x in np.histogram(scores, bins=BINS, range=(0.0, 1.0))[0]]
    out["score_sum"] = math.fsum(scores.tolist())
    labels = sorted(out["by_label"])
    idx = pc.fill_null(pc.index_in(ents["label"], value_set=pa.array(labels, pa.string())), -1)
    idx = idx.to_numpy(zero_copy_only=False).astype(np.int64)
    keep = idx >= 0
    flat = np.bincount(idx[keep] * BINS + label_bins(scores)[keep], minlength=len(labels) * BINS)
    out["label_histograms"] = {l: [int(x) for x in flat.reshape(len(labels), BINS)[i]] for i, l in enumerate(labels)}
    t = pa.table({"label": ents["label"], "text": ents["text"], "score": pa.array(scores, pa.float64())})
    g = t.group_by(["label", "text"]).aggregate([("score", "count"), ("score", "sum")])
    complete = True
    for l in labels:
        gl = g.filter(pc.equal(g["label"], l))
        complete = complete and gl.num_rows <= TOP_K
        gl = gl.sort_by([("score_count", "descending"), ("text", "ascending")]).slice(0, TOP_K)
        out["top"][l] = [[t_, int(n), float(s)] for t_, n, s in
                         zip(gl["text"].to_pylist(), gl["score_count"].to_pylist(), gl["score_sum"].to_pylist())]
    out["top_complete"] = complete
    return out


def merge(summaries: list[dict]) -> dict:
    """One shard's summary from its pieces' (``of_tables`` of each piece), as ``of_tables`` would
    give on the whole shard; the top texts are exact where every piece's list was complete."""
    if len(summaries) == 1:
        return summaries[0]
    t = Totals()
    for s in summaries:
        t.add(s)
    reasons = list(t.reasons.items())
    reasons_complete = t.reasons_complete and len(reasons) <= MAX_REASONS
    if len(reasons) > MAX_REASONS:  # the most frequent, in order of first appearance (as of_tables)
        keep = {i for i, _ in sorted(enumerate(reasons), key=lambda x: -x[1][1])[:MAX_REASONS]}
        reasons = [r for i, r in enumerate(reasons) if i in keep]
    top, complete = {}, t.top_exact
    for label, texts in t.top.items():
        complete = complete and len(texts) <= TOP_K
        rows = sorted(texts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP_K]
        top[label] = [[text, n, ssum] for text, (n, ssum) in rows]
    return {"v": VERSION, "documents": t.documents, "by_status": t.by_status, "words": t.words,
            "wordpieces": t.wordpieces, "reasons": [list(r) for r in reasons], "reasons_complete": reasons_complete,
            "entities": t.entities, "by_label": dict(sorted(t.by_label.items())),
            "histogram": [int(x) for x in t.histogram], "score_sum": math.fsum(s["score_sum"] for s in summaries),
            "label_histograms": {l: [int(x) for x in h] for l, h in sorted(t.label_histograms.items())},
            "top": top, "top_complete": complete}


def is_current(summary) -> bool:
    return isinstance(summary, dict) and summary.get("v") == VERSION


DOC_COLUMNS = ["status", "n_words", "n_tokens", "error"]
ENTITY_COLUMNS = ["label", "text", "score"]


def of_parts(out: str, shard_id: str) -> dict:
    """One shard's numbers read from its own two parts (docs and, when there, entities): the
    fallback for stats written before the summary existed. Reads this shard only."""
    docs = fs.read_parquet(fs.join(out, "docs", f"part-{shard_id}.parquet"), schema=schema.DOCS).select(DOC_COLUMNS)
    path = fs.join(out, "entities", f"part-{shard_id}.parquet")
    ents = fs.read_parquet(path, schema=schema.ENTITIES).select(ENTITY_COLUMNS) if fs.is_file(path) else None
    return of_tables(docs, ents)


def update_stats(out: str, shard_id: str, summary) -> None:
    """Put ``summary`` (a dict, or a function making it) into the shard's stats file (after the
    duplicate pass rewrote the shard); nothing when the shard has no stats file (its summary then
    comes from its parts)."""
    path = fs.join(out, "stats", f"part-{shard_id}.json")
    if not fs.is_file(path):
        return
    try:
        stats = json.loads(fs.read_text(path))
    except ValueError:
        stats = None
    if not isinstance(stats, dict):
        fs.delete(path, missing_ok=True)  # unreadable: the parts are the truth
        return
    stats[KEY] = summary() if callable(summary) else summary
    fs.write_bytes_atomic(path, json.dumps(stats).encode())


# ------------------------------------------------------------------------------------ merge

@dataclasses.dataclass
class Totals:
    """The merge of shard summaries (``add``), in shard order."""

    shards: int = 0
    from_parts: int = 0  # shards summarised from their parts (stats without a summary)
    documents: int = 0
    by_status: dict = dataclasses.field(default_factory=lambda: {s: 0 for s in schema.STATUSES})
    words: int = 0
    wordpieces: int = 0
    reasons: dict = dataclasses.field(default_factory=dict)  # insertion order = first appearance
    reasons_complete: bool = True
    entities: int = 0
    by_label: dict = dataclasses.field(default_factory=dict)
    histogram: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(BINS, np.int64))
    score_sum: float = 0.0
    _score_c: float = 0.0  # Neumaier compensation of score_sum
    label_histograms: dict = dataclasses.field(default_factory=dict)
    top: dict = dataclasses.field(default_factory=dict)  # label -> {text: [count, score sum]}
    top_exact: bool = True

    def add(self, s: dict) -> None:
        self.shards += 1
        self.documents += int(s["documents"])
        for k, v in s["by_status"].items():
            self.by_status[k] = self.by_status.get(k, 0) + int(v)
        self.words += int(s["words"])
        self.wordpieces += int(s["wordpieces"])
        for reason, n in s["reasons"]:
            self.reasons[reason] = self.reasons.get(reason, 0) + int(n)
        self.reasons_complete = self.reasons_complete and bool(s["reasons_complete"])
        if len(self.reasons) > REASONS_CAP:
            self.reasons = _prune(self.reasons, REASONS_CAP // 2, lambda n: n)
            self.reasons_complete = False
        self.entities += int(s["entities"])
        for l, n in s["by_label"].items():
            self.by_label[l] = self.by_label.get(l, 0) + int(n)
        self.histogram += np.asarray(s["histogram"], np.int64)
        x = float(s["score_sum"])
        t = self.score_sum + x
        self._score_c += (self.score_sum - t) + x if abs(self.score_sum) >= abs(x) else (x - t) + self.score_sum
        self.score_sum = t
        for l, h in s["label_histograms"].items():
            self.label_histograms[l] = self.label_histograms.get(l, np.zeros(BINS, np.int64)) + np.asarray(h, np.int64)
        self.top_exact = self.top_exact and bool(s["top_complete"])
        for l, rows in s["top"].items():
            mine = self.top.setdefault(l, {})
            for text, n, ssum in rows:
                c = mine.get(text)
                if c is None:
                    mine[text] = [int(n), float(ssum)]
                else:
                    c[0] += int(n)
                    c[1] += float(ssum)
            if len(mine) > TOP_CAP:
                self.top[l] = _prune(mine, TOP_CAP // 2, lambda c: c[0])
                self.top_exact = False

    # -- what run.json and the report read ------------------------------------------------
    def score_total(self) -> float:
        return self.score_sum + self._score_c

    def mean_score(self) -> float | None:
        return self.score_total() / self.entities if self.entities else None

    def error_reasons(self, top: int = 20) -> dict[str, int]:
        """The most frequent reasons, ties in order of first appearance (as summary.error_reasons)."""
        return dict(sorted(self.reasons.items(), key=lambda kv: -kv[1])[:top])

    def label_histogram(self, label: str) -> list[int]:
        h = self.label_histograms.get(label)
        return [int(x) for x in h] if h is not None else [0] * BINS

    def top_entities(self, label: str, k: int) -> list[list]:
        """[[text, count, mean score], ...]: the k most frequent texts (ties by text)."""
        rows = sorted(self.top.get(label, {}).items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
        return [[t, n, round(s / n, 3)] for t, (n, s) in rows]


def _prune(d: dict, keep: int, count) -> dict:
    """The ``keep`` entries of ``d`` with the largest counts, in their insertion order."""
    kept = {k for k, _ in sorted(d.items(), key=lambda kv: -count(kv[1]))[:keep]}
    return {k: v for k, v in d.items() if k in kept}


# ----------------------------------------------------------------------------------- walking

def _part_ids(out: str, sub: str, suffix: str) -> list[str]:
    """Shard ids of the ``part-<id><suffix>`` files directly in ``out/sub``, in name order."""
    folder = fs.join(out, sub)
    prefix = folder.rstrip("/") + "/"
    try:
        found = [uri for uri, _ in listing.list_files(folder, literal=True)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [u[len(prefix):] for u in found if u.startswith(prefix)]
    return [n[len("part-"):-len(suffix)] for n in sorted(names)
            if "/" not in n and n.startswith("part-") and n.endswith(suffix)]


def done_shards(out: str) -> list[str]:
    """The ids of the finished shards (a docs part is the completion mark), in the order of the
    part files' names, as the tables read them (summary.table_of)."""
    return _part_ids(out, "docs", ".parquet")


def stats_names(out: str) -> set[str]:
    """The shard ids that have a stats file."""
    return set(_part_ids(out, "stats", ".json"))


def read_stats(out: str, shard_id: str) -> dict | None:
    try:
        data = json.loads(fs.read_text(fs.join(out, "stats", f"part-{shard_id}.json")))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def walk(out: str | os.PathLike, with_stats: bool = False) -> Iterator[tuple[str, dict | None, dict | None, bool]]:
    """(shard id, its stats without the summary or None, its current summary or None, True) of
    every finished shard, in shard order. With ``with_stats``, then (shard id, stats, None, False)
    for each stats file of a shard not finished (the run report's throughput lists every stats
    file). Stats files are read a few at a time on threads; at most ``CHUNK`` shards are held ahead
    of the caller."""
    out = os.fspath(out)
    done = done_shards(out)
    have = stats_names(out)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for chunk in _chunks(done, CHUNK):
            read = list(pool.map(lambda s: read_stats(out, s) if s in have else None, chunk))
            for shard_id, stats in zip(chunk, read):
                summary = stats.pop(KEY, None) if stats is not None else None
                yield shard_id, stats, summary if is_current(summary) else None, True
        if with_stats:
            for chunk in _chunks(sorted(have.difference(done)), CHUNK):
                for shard_id, stats in zip(chunk, pool.map(lambda s: read_stats(out, s), chunk)):
                    if stats is not None:
                        stats.pop(KEY, None)
                        yield shard_id, stats, None, False


def collect(out: str | os.PathLike, with_stats: bool = False) -> tuple[Totals, list[dict]]:
    """The merged numbers of every finished shard (a shard without a current summary in its stats
    is summarised from its own two parts, that shard alone), and (``with_stats``) every stats
    file's own fields (throughput: shard, docs, words, seconds, finished_at), without summaries."""
    out = os.fspath(out)
    totals = Totals()
    stats_list: list[dict] = []
    for shard_id, stats, summary, done in walk(out, with_stats):
        if stats is not None and with_stats:
            stats_list.append(stats)
        if not done:
            continue
        if summary is None:
            summary = of_parts(out, shard_id)
            totals.from_parts += 1
        totals.add(summary)
    return totals, stats_list
