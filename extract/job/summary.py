"""run.json: what ran, on what, how fast, what came out, and how it compares to the model's dev data."""
from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from extract.core import fs, schema


def part_files(folder: str | os.PathLike) -> list[str]:
    """The ``part-*.parquet`` files directly in ``folder`` (a local path or a URI), sorted by name;
    none when the folder does not exist."""
    folder = os.fspath(folder)
    prefix = folder if folder.endswith("/") else folder + "/"
    try:
        found = [uri for uri, _ in fs.list_files(folder, literal=True)]
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
    bad = docs.filter(pc.and_(pc.is_in(docs["status"], pa.array(["error", "skipped"])), pc.is_valid(docs["error"])))
    reasons = pc.utf8_slice_codeunits(pc.list_element(pc.split_pattern(bad["error"], ":", max_splits=1), 0), 0, 80)
    return dict(list(value_counts(reasons).items())[:top])


def summarize(out: str | os.PathLike) -> dict:
    """Counts, rates and a confidence histogram from the tables, with Arrow compute (no rows in
    Python). ``out``: a local folder or a URI."""
    out = os.fspath(out)
    docs = table_of(fs.join(out, "docs"), ["status", "n_words", "n_tokens", "error"], schema.DOCS)
    ents = table_of(fs.join(out, "entities"), ["label", "score"], schema.ENTITIES)
    status = value_counts(docs["status"])
    by_label = dict(sorted(value_counts(ents["label"]).items()))
    scores = ents["score"].to_numpy().astype(float) if ents.num_rows else np.zeros(0)
    hist, edges = np.histogram(scores, bins=10, range=(0.0, 1.0))
    words = int(pc.sum(docs["n_words"]).as_py() or 0)
    return {
        "documents": docs.num_rows,
        "by_status": {s: status.get(s, 0) for s in schema.STATUSES},
        "entities": ents.num_rows,
        "by_label": by_label,
        "words": words,
        "wordpieces": int(pc.sum(docs["n_tokens"]).as_py() or 0),
        "error_reasons": error_reasons(docs),
        "confidence": {"mean": round(float(scores.mean()), 4) if len(scores) else None,
                       "histogram": {f"{edges[i]:.1f}-{edges[i + 1]:.1f}": int(h) for i, h in enumerate(hist)}},
        "entities_per_1k_words": {l: round(1000 * n / words, 2) for l, n in by_label.items()} if words else {},
    }


def drift(summary: dict, model_dir: Path) -> dict:
    """Entity rates per 1k words here against the gold rates of the model's dev set.

    A large ratio (say below 0.5 or above 2) says the corpus is unlike the training data, or the
    model misfires on it; it is a prompt to look, not a verdict.
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
            ref = 1000 * support / words
            out[label] = {"per_1k_words": rate, "dev_gold_per_1k_words": round(ref, 2), "ratio": round(rate / ref, 3)}
    dev_score = saved.get("calibration", {}).get("mean_score_after")
    if dev_score and summary["confidence"]["mean"] is not None:
        # Lower mean confidence than on dev: the model is less sure here than where it was measured.
        out["mean_score"] = {"here": summary["confidence"]["mean"], "dev": dev_score}
    return out
