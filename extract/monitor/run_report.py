"""report.json + report.html for one output folder: what came out, how fast, and how it drifted.

``python -m extract report OUT [--reference OTHER_OUT] [--out FILE]``

This module computes the numbers (report.json); extract/monitor/report_page.py draws the page from
them. Everything is computed from the Parquet tables with Arrow compute and numpy (no per-row
Python); the counts are those of run.json (extract/job/summary.py), computed by the same
functions. Drift is measured against a reference run (``--reference``) or, by default, the model's
dev data (metrics.json beside the model: gold entity supports and words).

Drift thresholds (stated in the report too):
- population stability index, PSI = sum((p - q) * ln(p / q)) over bins (proportions floored at
  1e-4): < 0.1 stable, 0.1-0.25 watch, > 0.25 drift. Computed for the label mix (labels this run
  writes) and for the confidence distribution (10 equal bins over [0, 1]).
- entity rate per 1,000 words per label, here / reference: outside [0.5, 2] is drift.
The thresholds and the rate and PSI maths are extract/job/summary.py's, shared with run.json's drift.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, listing, schema
from extract.job.summary import (BINS, PSI_DRIFT, PSI_WATCH, RATIO_HIGH, RATIO_LOW, bin_names, error_reasons,
                                  per_1k_words, psi, rate_ratio, score_histogram, scores_of, status_counts, table_of,
                                  value_counts, words_of)
from extract.monitor import quality
from extract.monitor.report_page import write_page

TOP = 10


# ------------------------------------------------------------------------------------ loading

def load_run(out: str) -> dict:
    """The tables and files of one output folder (local path or URI)."""
    out = os.fspath(out)
    docs = table_of(fs.join(out, "docs"), ["doc_id", "status", "error", "n_words"], schema.DOCS)
    ents = table_of(fs.join(out, "entities"), ["label", "text", "score"], schema.ENTITIES)
    run_json = fs.join(out, "run.json")
    run = json.loads(fs.read_text(run_json)) if fs.is_file(run_json) else {}
    stats = []
    try:
        listed = listing.list_files(fs.join(out, "stats"), literal=True)
    except (FileNotFoundError, NotADirectoryError):
        listed = []
    for uri, _ in listed:
        if fs.basename(uri).startswith("part-") and uri.endswith(".json"):
            stats.append(json.loads(fs.read_text(uri)))
    return {"out": out, "docs": docs, "ents": ents, "run": run, "stats": stats}


def run_labels(r: dict) -> list[str]:
    """The labels the run writes (its config), else those it found."""
    labels = (r["run"].get("config") or {}).get("model", {}).get("labels")
    return sorted(labels) if labels else sorted(value_counts(r["ents"]["label"]))


# -------------------------------------------------------------------------------- statistics

def label_counts(r: dict, labels: list[str]) -> np.ndarray:
    """Entities per label, in the order of ``labels`` (0 for a label not found)."""
    found = value_counts(r["ents"]["label"])
    return np.array([found.get(l, 0) for l in labels], dtype=float)


def score_hist(ents) -> np.ndarray:
    """The entities' confidence histogram (summary's bins), as floats."""
    return score_histogram(scores_of(ents)).astype(float)


def hist_by_label(r: dict, labels: list[str]) -> dict[str, list[int]]:
    """Confidence histogram per label in one pass: bincount over label index * BINS + bin."""
    ents = r["ents"]
    if not ents.num_rows:
        return {l: [0] * BINS for l in labels}
    idx = pc.fill_null(pc.index_in(ents["label"], value_set=pa.array(labels, pa.string())), -1)
    idx = idx.to_numpy(zero_copy_only=False).astype(np.int64)
    scores = scores_of(ents)
    b = np.clip((scores * BINS).astype(np.int64), 0, BINS - 1)
    keep = idx >= 0
    flat = np.bincount(idx[keep] * BINS + b[keep], minlength=len(labels) * BINS).reshape(len(labels), BINS)
    return {l: [int(x) for x in flat[i]] for i, l in enumerate(labels)}


def top_entities(r: dict, labels: list[str], k: int = TOP) -> dict[str, list[list]]:
    """The k most frequent entity texts per label, with counts and mean score (one Arrow group-by)."""
    ents = r["ents"]
    if not ents.num_rows:
        return {l: [] for l in labels}
    g = ents.group_by(["label", "text"]).aggregate([("score", "count"), ("score", "mean")])
    out = {}
    for l in labels:
        t = g.filter(pc.equal(g["label"], l)).sort_by([("score_count", "descending"), ("text", "ascending")]).slice(0, k)
        out[l] = [[t_, int(n), round(float(m), 3)] for t_, n, m in
                  zip(t["text"].to_pylist(), t["score_count"].to_pylist(), t["score_mean"].to_pylist())]
    return out


def throughput(stats: list[dict]) -> dict:
    """Shards in finishing order: cumulative documents and words over time, words/s per shard."""
    rows = sorted(stats, key=lambda s: s.get("finished_at", 0))
    if not rows:
        return {"shards": []}
    t0 = min(s["finished_at"] - s.get("seconds", 0) for s in rows)
    cum_d = np.cumsum([s.get("docs", 0) for s in rows])
    cum_w = np.cumsum([s.get("words", 0) for s in rows])
    shards = []
    for s, d, w in zip(rows, cum_d, cum_w):
        sec = s.get("seconds") or 0
        shards.append({"shard": s.get("shard"), "t": round(s["finished_at"] - t0, 2), "docs": s.get("docs", 0),
                       "words": s.get("words", 0), "seconds": sec, "cum_docs": int(d), "cum_words": int(w),
                       "words_per_second": round(s.get("words", 0) / sec, 1) if sec else None,
                       "finished_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["finished_at"]))})
    span = shards[-1]["t"]
    return {"shards": shards, "elapsed_seconds": span,
            "words_per_second": round(int(cum_w[-1]) / span, 1) if span else None,
            "documents_per_second": round(int(cum_d[-1]) / span, 2) if span else None}


# ------------------------------------------------------------------------------------- drift

def psi_flag(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return "stable" if value < PSI_WATCH else ("watch" if value <= PSI_DRIFT else "drift")


def ratio_flag(ratio: float | None) -> str:
    if ratio is None or not np.isfinite(ratio):
        return "n/a"
    return "ok" if RATIO_LOW <= ratio <= RATIO_HIGH else "drift"


def _model_dir(r: dict) -> str | None:
    run = r["run"]
    for p in ((run.get("model") or {}).get("path"), ((run.get("config") or {}).get("model") or {}).get("path")):
        if p and fs.is_file(fs.join(p, "metrics.json")):
            return p
    return None


def reference_of(r: dict, reference: dict | None, labels: list[str]) -> dict:
    """Label counts, words and (when known) confidence histogram of the reference."""
    if reference is not None:
        return {"kind": "run", "path": reference["out"], "label_counts": label_counts(reference, labels),
                "words": words_of(reference["docs"]), "confidence": score_hist(reference["ents"]),
                "note": ""}
    model_dir = _model_dir(r)
    if model_dir is None:
        return {"kind": "none", "note": "no reference: pass --reference, or keep the model's metrics.json"}
    metrics = json.loads(fs.read_text(fs.join(model_dir, "metrics.json")))
    dev = metrics.get("dev") or {}
    per_type = dev.get("per_type") or {}
    counts = np.array([float((per_type.get(l) or {}).get("support") or 0) for l in labels])
    hist = (dev.get("confidence") or {}).get("histogram") if isinstance(dev.get("confidence"), dict) else None
    note = ""
    if hist is None:
        note = ("the model's metrics.json holds no dev confidence distribution: the confidence PSI needs a "
                "reference run (--reference)")
    return {"kind": "model dev data", "path": fs.join(model_dir, "metrics.json"), "label_counts": counts,
            "words": int(dev.get("words") or 0),
            "confidence": np.array(list(hist.values()) if isinstance(hist, dict) else hist, float) if hist else None,
            "note": note}


def drift(r: dict, ref: dict, labels: list[str]) -> dict:
    if ref["kind"] == "none":
        return {"reference": {"kind": "none", "note": ref["note"]}, "verdict": "n/a", "label_mix": {"psi": None, "flag": "n/a"},
                "confidence": {"psi": None, "flag": "n/a", "note": ref["note"]}, "rates": {}}
    here = label_counts(r, labels)
    words = words_of(r["docs"])
    mix_psi = psi(here, ref["label_counts"])
    mix = {"psi": _num(mix_psi), "flag": psi_flag(mix_psi), "labels": labels,
           "here": _props(here), "reference": _props(ref["label_counts"])}
    if ref["confidence"] is not None:
        c_here = score_hist(r["ents"])
        c_psi = psi(c_here, ref["confidence"])
        conf = {"psi": _num(c_psi), "flag": psi_flag(c_psi), "bins": bin_names(),
                "here": _props(c_here), "reference": _props(ref["confidence"]), "note": ""}
    else:
        conf = {"psi": None, "flag": "n/a", "note": ref["note"]}
    rates = {}
    for l, n_here, n_ref in zip(labels, here, ref["label_counts"]):
        rate = per_1k_words(n_here, words)
        ref_rate = per_1k_words(n_ref, ref["words"])
        ratio = rate_ratio(rate, ref_rate)
        rates[l] = {"per_1k_words": _num(rate, 2), "reference_per_1k_words": _num(ref_rate, 2),
                    "ratio": _num(ratio, 3), "flag": ratio_flag(ratio)}
    flags = [mix["flag"], conf["flag"]] + [x["flag"] for x in rates.values()]
    verdict = "drift" if "drift" in flags else ("watch" if "watch" in flags else "stable")
    return {"reference": {"kind": ref["kind"], "path": ref["path"], "words": ref["words"], "note": ref["note"]},
            "verdict": verdict, "label_mix": mix, "confidence": conf, "rates": rates,
            "thresholds": {"psi": f"< {PSI_WATCH} stable, {PSI_WATCH}-{PSI_DRIFT} watch, > {PSI_DRIFT} drift",
                           "rate_ratio": f"outside [{RATIO_LOW}, {RATIO_HIGH}] drift"}}


def _num(x: float, digits: int = 4):
    return round(float(x), digits) if x is not None and np.isfinite(x) else None


def _props(counts) -> list[float]:
    c = np.asarray(counts, float)
    return [round(float(v), 4) for v in (c / c.sum() if c.sum() else c)]


# -------------------------------------------------------------------------------------- build

def compute(out: str, reference: str | None = None) -> dict:
    """The numbers of report.json."""
    r = load_run(out)
    ref_run = load_run(reference) if reference else None
    labels = run_labels(r)
    docs = r["docs"]
    words = words_of(docs)
    by_label = label_counts(r, labels)
    scores = scores_of(r["ents"])
    return {
        "out": out,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "documents": docs.num_rows,
        "by_status": status_counts(docs),
        "error_reasons": error_reasons(docs),
        "words": words,
        "entities": r["ents"].num_rows,
        "labels": labels,
        "by_label": {l: int(n) for l, n in zip(labels, by_label)},
        "entities_per_1k_words": {l: _num(per_1k_words(n, words), 2) if words else None
                                  for l, n in zip(labels, by_label)},
        "confidence": {"bins": bin_names(), "all": [int(x) for x in score_histogram(scores)],
                       "mean": _num(scores.mean()) if len(scores) else None,
                       "by_label": hist_by_label(r, labels)},
        "throughput": throughput(r["stats"]),
        "top_entities": top_entities(r, labels),
        "drift": drift(r, reference_of(r, ref_run, labels), labels),
        "quality": quality.load(out),  # OUT/quality.json (+ its history) from `python -m extract quality`, or None
    }


def write_report(out: str, reference: str | None = None, html_path: str | None = None) -> tuple[str, str, dict]:
    """Compute, then write the numbers (report.json) and the page (report_page); (html path, json
    path, numbers)."""
    data = compute(out, reference)
    html_path = html_path or fs.join(out, "report.html")
    json_path = (html_path[:-5] if html_path.endswith(".html") else html_path) + ".json"
    fs.write_bytes_atomic(json_path, json.dumps(data, indent=2).encode("utf-8"))
    write_page(data, html_path)
    return html_path, json_path, data


def main(out: str, reference: str | None, html_out: str | None) -> int:
    html_path, json_path, data = write_report(out, reference, html_out)
    dr = data["drift"]
    print(f"report: {html_path} (numbers: {json_path})")
    mix, conf = dr["label_mix"], dr["confidence"]
    print(f"drift vs {dr['reference']['kind']}: {dr['verdict']}; label mix PSI {mix['psi']} ({mix['flag']}), "
          f"confidence PSI {conf['psi']} ({conf['flag']})")
    for l, x in dr["rates"].items():
        print(f"  {l}: {x['per_1k_words']} per 1k words vs {x['reference_per_1k_words']}: ratio {x['ratio']} ({x['flag']})")
    return 0
