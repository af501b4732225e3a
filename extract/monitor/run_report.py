"""report.json + report.html for one output folder: what came out, how fast, and how it drifted.

``python -m extract report OUT [--reference OTHER_OUT] [--out FILE]``

This module computes the numbers (report.json); extract/monitor/report_page.py draws the page from
them. Everything comes from the finished shards' stats (``stats/part-*.json``: each shard's counts,
histograms and top texts, extract/job/shard_stats.py), merged here: the report reads no table whole,
so it costs the same memory for a billion records as for a million (a shard whose stats predate
those numbers is read from its own parts, one shard at a time). The counts are those of run.json
(extract/job/summary.py), merged by the same code. The top entities per label are merged from each
shard's own top texts, so they are approximate on a large run (``top_entities_note`` says whether).
Drift is measured against a reference run (``--reference``) or, by default, the model's
dev data (metrics.json beside the model: gold entity supports and words).

Drift thresholds (stated in the report too):
- population stability index, PSI = sum((p - q) * ln(p / q)) over bins (proportions floored at
  1e-4): < 0.1 stable, 0.1-0.25 watch, > 0.25 drift. Computed for the label mix (labels this run
  writes) and for the confidence distribution (10 equal bins over [0, 1]).
- entity rate per 1,000 words per label, here / reference: outside [0.5, 2] is drift.
The thresholds and the rate and PSI maths are extract/job/summary.py's, shared with run.json's drift.
"""
from __future__ import annotations

import html
import json
import os
import time

import numpy as np

from extract.core import fs, schema
from extract.job import shard_stats
from extract.job.summary import (PSI_DRIFT, PSI_WATCH, RATIO_HIGH, RATIO_LOW, bin_names, per_1k_words, psi,
                                  rate_ratio)
from extract.monitor import quality
from extract.monitor.report_page import render

TOP = 10


# ------------------------------------------------------------------------------------ loading

def load_run(out: str) -> dict:
    """One output folder's merged shard numbers (``totals``), run.json and its stats files'
    throughput fields (local path or URI)."""
    out = os.fspath(out)
    totals, stats = shard_stats.collect(out, with_stats=True)
    run_json = fs.join(out, "run.json")
    run = json.loads(fs.read_text(run_json)) if fs.is_file(run_json) else {}
    return {"out": out, "totals": totals, "run": run, "stats": stats}


def run_labels(r: dict) -> list[str]:
    """The labels the run writes (its config), else those it found."""
    labels = (r["run"].get("config") or {}).get("model", {}).get("labels")
    return sorted(labels) if labels else sorted(l for l, n in r["totals"].by_label.items() if n)


# -------------------------------------------------------------------------------- statistics

def label_counts(r: dict, labels: list[str]) -> np.ndarray:
    """Entities per label, in the order of ``labels`` (0 for a label not found)."""
    found = r["totals"].by_label
    return np.array([found.get(l, 0) for l in labels], dtype=float)


def score_hist(r: dict) -> np.ndarray:
    """The entities' confidence histogram (summary's bins), as floats."""
    return np.asarray(r["totals"].histogram, dtype=float)


def hist_by_label(r: dict, labels: list[str]) -> dict[str, list[int]]:
    """Confidence histogram per label (floor(score * BINS), the last bin closed), merged over shards."""
    return {l: r["totals"].label_histogram(l) for l in labels}


def top_entities(r: dict, labels: list[str], k: int = TOP) -> dict[str, list[list]]:
    """The k most frequent entity texts per label, with counts and mean score, merged from each
    shard's own top texts (shard_stats.TOP_K per label): exact when every shard's list held all
    its texts, else approximate (``top_entities_note``)."""
    return {l: r["totals"].top_entities(l, k) for l in labels}


def top_entities_note(r: dict) -> dict:
    t = r["totals"]
    if t.top_exact:
        return {"exact": True, "note": "exact: every shard's stats held all of its entity texts"}
    return {"exact": False,
            "note": (f"approximate: merged from each shard's {shard_stats.TOP_K} most frequent texts per label "
                     f"(counts are lower bounds; a text frequent overall but never among a shard's top "
                     f"{shard_stats.TOP_K} is missed)")}


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
                "words": reference["totals"].words, "confidence": score_hist(reference), "note": ""}
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
        return {"reference": {"kind": "none", "note": ref["note"]}, "verdict": "n/a",
                "label_mix": {"psi": None, "flag": "n/a"},
                "confidence": {"psi": None, "flag": "n/a", "note": ref["note"]}, "rates": {}}
    here = label_counts(r, labels)
    words = r["totals"].words
    mix_psi = psi(here, ref["label_counts"])
    mix = {"psi": _num(mix_psi), "flag": psi_flag(mix_psi), "labels": labels,
           "here": _props(here), "reference": _props(ref["label_counts"])}
    if ref["confidence"] is not None:
        c_here = score_hist(r)
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
    t = r["totals"]
    words = t.words
    by_label = label_counts(r, labels)
    mean = t.mean_score()
    return {
        "out": out,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "documents": t.documents,
        "by_status": {s: t.by_status.get(s, 0) for s in schema.STATUSES},
        "error_reasons": t.error_reasons(),
        "words": words,
        "entities": t.entities,
        "labels": labels,
        "by_label": {l: int(n) for l, n in zip(labels, by_label)},
        "entities_per_1k_words": {l: _num(per_1k_words(n, words), 2) if words else None
                                  for l, n in zip(labels, by_label)},
        "confidence": {"bins": bin_names(), "all": [int(x) for x in t.histogram],
                       "mean": _num(mean) if mean is not None else None,
                       "by_label": hist_by_label(r, labels)},
        "throughput": throughput(r["stats"]),
        "top_entities": top_entities(r, labels),
        "top_entities_note": top_entities_note(r),
        "drift": drift(r, reference_of(r, ref_run, labels), labels),
        "quality": quality.load(out),  # OUT/quality.json (+ its history) from `python -m extract quality`, or None
        "shards": {"summarised": t.shards, "from_parts": t.from_parts},
    }


def write_report(out: str, reference: str | None = None, html_path: str | None = None) -> tuple[str, str, dict]:
    """Compute, then write the numbers (report.json) and the page (report_page); (html path, json
    path, numbers)."""
    data = compute(out, reference)
    html_path = html_path or fs.join(out, "report.html")
    json_path = (html_path[:-5] if html_path.endswith(".html") else html_path) + ".json"
    fs.write_bytes_atomic(json_path, json.dumps(data, indent=2).encode("utf-8"))
    fs.write_bytes_atomic(html_path, with_top_note(render(data), data["top_entities_note"]).encode("utf-8"))
    return html_path, json_path, data


def with_top_note(page: str, note: dict) -> str:
    """The page with the top entities' note under the section's title (report_page draws the rest)."""
    head = '<section id="top-entities"><h2>'
    at = page.find(head)
    end = page.find("</h2>", at) if at >= 0 else -1
    if end < 0:
        return page
    end += len("</h2>")
    return page[:end] + f'<p class="note">Top entities: {html.escape(note["note"])}.</p>' + page[end:]


def main(out: str, reference: str | None, html_out: str | None) -> int:
    html_path, json_path, data = write_report(out, reference, html_out)
    dr = data["drift"]
    print(f"report: {html_path} (numbers: {json_path})")
    mix, conf = dr["label_mix"], dr["confidence"]
    print(f"drift vs {dr['reference']['kind']}: {dr['verdict']}; label mix PSI {mix['psi']} ({mix['flag']}), "
          f"confidence PSI {conf['psi']} ({conf['flag']})")
    for l, x in dr["rates"].items():
        print(f"  {l}: {x['per_1k_words']} per 1k words vs {x['reference_per_1k_words']}: ratio {x['ratio']} "
              f"({x['flag']})")
    return 0
