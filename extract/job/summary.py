"""run.json: what ran, on what, how fast, what came out, and how it compares to the model's dev data.

``summarize`` merges the per-shard numbers each shard wrote into its stats file
(extract/job/shard_stats.py), so the driver's work and memory grow with the number of shards, not
of records; ``summarize_tables`` computes the same numbers from the whole tables (the reference the
tests compare it with, and what run.json used to be made from).
"""
from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from extract.core import fs, listing, schema
from extract.job import shard_stats

BINS = shard_stats.BINS  # the confidence histogram: equal bins over [0, 1] (10)
# Drift thresholds, by which the run report flags: a population stability index below PSI_WATCH is
# stable, up to PSI_DRIFT watch, above it drift (proportions floored at EPS); an entity rate ratio
# (here / reference, per 1,000 words) outside [RATIO_LOW, RATIO_HIGH] is drift.
PSI_WATCH, PSI_DRIFT = 0.1, 0.25
RATIO_LOW, RATIO_HIGH = 0.5, 2.0
EPS = 1e-4


def part_files(folder: str | os.PathLike) -> list[str]:
    """The ``part-*.parquet`` files directly in ``folder`` (a local path or a URI), sorted by name;
    none when the folder does not exist."""
    folder = os.fspath(folder)
    prefix = folder if folder.endswith("/") else folder + "/"
    try:
        found = [uri for uri, _ in listing.list_files(folder, literal=True)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(uri for uri in found if uri.startswith(prefix) and "/" not in uri[len(prefix):]
                  and fnmatch.fnmatchcase(uri[len(prefix):], "part-*.parquet"))


def table_of(folder: str | os.PathLike, columns: list[str], sch) -> pa.Table:
    parts = part_files(folder)
    if not parts:
        return sch.empty_table().select(columns)
    filesystem = fs.resolve(parts[0])[0]
    paths = [fs.resolve(p)[1] for p in parts]
    return pads.dataset(paths, schema=sch, format="parquet", filesystem=filesystem).to_table(columns=columns)


def value_counts(column) -> dict[str, int]:
    """Non-null values and how often each occurs, most frequent first (Arrow compute)."""
    if len(column) == 0:
        return {}
    vc = pc.value_counts(column)
    pairs = zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())
    return dict(sorted(((str(v), int(c)) for v, c in pairs if v is not None), key=lambda kv: -kv[1]))


def error_reasons(docs: pa.Table, top: int = 20) -> dict[str, int]:
    """Error and skip reasons grouped by their first words (before the ':' that starts the
    specifics), most frequent first."""
    return dict(list(value_counts(shard_stats.reason_prefixes(docs)).items())[:top])


def status_counts(docs: pa.Table) -> dict[str, int]:
    """Documents per status, every status of ``schema.STATUSES`` (0 when none)."""
    found = value_counts(docs["status"])
    return {s: found.get(s, 0) for s in schema.STATUSES}


def words_of(docs: pa.Table) -> int:
    """The words of all documents (the docs table's ``n_words``)."""
    return int(pc.sum(docs["n_words"]).as_py() or 0)


def scores_of(ents: pa.Table) -> np.ndarray:
    """The entities' scores as float64."""
    return ents["score"].to_numpy(zero_copy_only=False).astype(float) if ents.num_rows else np.zeros(0)


def score_histogram(scores: np.ndarray) -> np.ndarray:
    """Counts of ``scores`` in BINS equal bins over [0, 1] (the bins of ``bin_names``)."""
    return np.histogram(scores, bins=BINS, range=(0.0, 1.0))[0]


def bin_names() -> list[str]:
    """The confidence bins' names: ``"0.0-0.1"``, ... ``"0.9-1.0"``."""
    edges = np.linspace(0, 1, BINS + 1)
    return [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(BINS)]


def summarize(out: str | os.PathLike) -> dict:
    """run.json's counts, rates and confidence histogram, merged from the finished shards' stats
    (extract/job/shard_stats.py): O(shards) in time and memory, no table read whole. ``out``: a
    local folder or a URI."""
    return from_totals(shard_stats.collect(out)[0])


def from_totals(t: "shard_stats.Totals") -> dict:
    """run.json's numbers from merged shard numbers (the keys and values of ``summarize_tables``)."""
    by_label = dict(sorted((l, n) for l, n in t.by_label.items() if n))
    mean = t.mean_score()
    return {
        "documents": t.documents,
        "by_status": {s: t.by_status.get(s, 0) for s in schema.STATUSES},
        "entities": t.entities,
        "by_label": by_label,
        "words": t.words,
        "wordpieces": t.wordpieces,
        "error_reasons": t.error_reasons(),
        "confidence": {"mean": round(float(mean), 4) if mean is not None else None,
                       "histogram": {b: int(h) for b, h in zip(bin_names(), t.histogram)}},
        "entities_per_1k_words": ({l: round(per_1k_words(n, t.words), 2) for l, n in by_label.items()}
                                  if t.words else {}),
    }


def summarize_tables(out: str | os.PathLike) -> dict:
    """The numbers of ``summarize`` from the whole tables with Arrow compute (the reference: it
    holds the docs table and the entities' label and score columns in memory at once)."""
    out = os.fspath(out)
    docs = table_of(fs.join(out, "docs"), ["status", "n_words", "n_tokens", "error"], schema.DOCS)
    ents = table_of(fs.join(out, "entities"), ["label", "score"], schema.ENTITIES)
    by_label = dict(sorted(value_counts(ents["label"]).items()))
    scores = scores_of(ents)
    words = words_of(docs)
    return {
        "documents": docs.num_rows,
        "by_status": status_counts(docs),
        "entities": ents.num_rows,
        "by_label": by_label,
        "words": words,
        "wordpieces": int(pc.sum(docs["n_tokens"]).as_py() or 0),
        "error_reasons": error_reasons(docs),
        "confidence": {"mean": round(float(scores.mean()), 4) if len(scores) else None,
                       "histogram": {b: int(h) for b, h in zip(bin_names(), score_histogram(scores))}},
        "entities_per_1k_words": {l: round(per_1k_words(n, words), 2) for l, n in by_label.items()} if words else {},
    }


# ---------------------------------------------------------------------------------- drift maths
# Shared by run.json's ``drift`` (below) and the run report's (extract/monitor/run_report.py).

def per_1k_words(n: float, words: float) -> float:
    """Entities per 1,000 words; nan without words."""
    return 1000 * n / words if words else float("nan")


def rate_ratio(rate: float, reference: float) -> float:
    """rate / reference rate; nan when the reference is 0 or not finite."""
    return rate / reference if reference and np.isfinite(reference) else float("nan")


def psi(p_counts, q_counts) -> float:
    """Population stability index of two count vectors over the same bins (proportions floored at
    EPS so an empty bin on one side gives a large, finite value); nan when either side is empty."""
    p, q = np.asarray(p_counts, float), np.asarray(q_counts, float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p = np.maximum(p / p.sum(), EPS)
    q = np.maximum(q / q.sum(), EPS)
    return float(np.sum((p - q) * np.log(p / q)))


def drift(summary: dict, model_dir: Path) -> dict:
    """Entity rates per 1k words here against the gold rates of the model's dev set.

    A large ratio (outside [RATIO_LOW, RATIO_HIGH], where the run report flags drift) says the
    corpus is unlike the training data, or the model misfires on it; it is a prompt to look, not a
    verdict.
    """
    path = model_dir / "metrics.json"
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    dev = saved.get("dev", {})
    words = dev.get("words")
    if not words:
        return {}
    out = {}
    for label, rate in summary["entities_per_1k_words"].items():
        support = dev.get("per_type", {}).get(label, {}).get("support")
        if support:
            ref = per_1k_words(support, words)
            out[label] = {"per_1k_words": rate, "dev_gold_per_1k_words": round(ref, 2),
                          "ratio": round(rate_ratio(rate, ref), 3)}
    dev_score = saved.get("calibration", {}).get("mean_score_after")
    if dev_score and summary["confidence"]["mean"] is not None:
        # Lower mean confidence than on dev: the model is less sure here than where it was measured.
        out["mean_score"] = {"here": summary["confidence"]["mean"], "dev": dev_score}
    return out
