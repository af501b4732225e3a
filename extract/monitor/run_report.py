"""report.html + report.json for one output folder: what came out, how fast, and how it drifted.

``python -m extract report OUT [--reference OTHER_OUT] [--out FILE]``

Everything is computed from the Parquet tables with Arrow compute and numpy (no per-row Python);
plots are matplotlib PNGs embedded as base64, each beside a table of the same numbers, so the page
is one self-contained file. Drift is measured against a reference run (``--reference``) or, by
default, the model's dev data (metrics.json beside the model: gold entity supports and words).

Drift thresholds (stated in the report too):
- population stability index, PSI = sum((p - q) * ln(p / q)) over bins (proportions floored at
  1e-4): < 0.1 stable, 0.1-0.25 watch, > 0.25 drift. Computed for the label mix (labels this run
  writes) and for the confidence distribution (10 equal bins over [0, 1]).
- entity rate per 1,000 words per label, here / reference: outside [0.5, 2] is drift.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, schema
from extract.job.summary import error_reasons, table_of, value_counts

PSI_WATCH, PSI_DRIFT = 0.1, 0.25
RATIO_LOW, RATIO_HIGH = 0.5, 2.0
BINS = 10
EPS = 1e-4
TOP = 10
COLORS = {"PER": "#e4572e", "LOC": "#29335c", "ORG": "#f3a712", "MISC": "#669bbc"}


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
        listed = fs.list_files(fs.join(out, "stats"), literal=True)
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

def words_of(r: dict) -> int:
    return int(pc.sum(r["docs"]["n_words"]).as_py() or 0)


def label_counts(r: dict, labels: list[str]) -> np.ndarray:
    found = value_counts(r["ents"]["label"])
    return np.array([found.get(l, 0) for l in labels], dtype=float)


def score_hist(scores: np.ndarray) -> np.ndarray:
    return np.histogram(scores, bins=BINS, range=(0.0, 1.0))[0].astype(float)


def scores_of(r: dict) -> np.ndarray:
    return r["ents"]["score"].to_numpy(zero_copy_only=False).astype(float) if r["ents"].num_rows else np.zeros(0)


def hist_by_label(r: dict, labels: list[str]) -> dict[str, list[int]]:
    """Confidence histogram per label in one pass: bincount over label index * BINS + bin."""
    ents = r["ents"]
    if not ents.num_rows:
        return {l: [0] * BINS for l in labels}
    idx = pc.fill_null(pc.index_in(ents["label"], value_set=pa.array(labels, pa.string())), -1)
    idx = idx.to_numpy(zero_copy_only=False).astype(np.int64)
    scores = scores_of(r)
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

def psi(p_counts, q_counts) -> float:
    """Population stability index of two count vectors over the same bins (proportions floored at
    EPS so an empty bin on one side gives a large, finite value); nan when either side is empty."""
    p, q = np.asarray(p_counts, float), np.asarray(q_counts, float)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p = np.maximum(p / p.sum(), EPS)
    q = np.maximum(q / q.sum(), EPS)
    return float(np.sum((p - q) * np.log(p / q)))


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
                "words": words_of(reference), "confidence": score_hist(scores_of(reference)),
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
    words = words_of(r)
    mix_psi = psi(here, ref["label_counts"])
    mix = {"psi": _num(mix_psi), "flag": psi_flag(mix_psi), "labels": labels,
           "here": _props(here), "reference": _props(ref["label_counts"])}
    if ref["confidence"] is not None:
        c_here = score_hist(scores_of(r))
        c_psi = psi(c_here, ref["confidence"])
        conf = {"psi": _num(c_psi), "flag": psi_flag(c_psi), "bins": _bin_names(),
                "here": _props(c_here), "reference": _props(ref["confidence"]), "note": ""}
    else:
        conf = {"psi": None, "flag": "n/a", "note": ref["note"]}
    rates = {}
    for l, n_here, n_ref in zip(labels, here, ref["label_counts"]):
        rate = 1000 * n_here / words if words else float("nan")
        ref_rate = 1000 * n_ref / ref["words"] if ref["words"] else float("nan")
        ratio = rate / ref_rate if ref_rate and np.isfinite(ref_rate) else float("nan")
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


def _bin_names() -> list[str]:
    edges = np.linspace(0, 1, BINS + 1)
    return [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(BINS)]


# -------------------------------------------------------------------------------------- build

def compute(out: str, reference: str | None = None) -> dict:
    r = load_run(out)
    ref_run = load_run(reference) if reference else None
    labels = run_labels(r)
    docs = r["docs"]
    words = words_of(r)
    by_label = label_counts(r, labels)
    status = value_counts(docs["status"])
    scores = scores_of(r)
    return {
        "out": out,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "documents": docs.num_rows,
        "by_status": {s: status.get(s, 0) for s in schema.STATUSES},
        "error_reasons": error_reasons(docs),
        "words": words,
        "entities": r["ents"].num_rows,
        "labels": labels,
        "by_label": {l: int(n) for l, n in zip(labels, by_label)},
        "entities_per_1k_words": {l: _num(1000 * n / words, 2) if words else None for l, n in zip(labels, by_label)},
        "confidence": {"bins": _bin_names(), "all": [int(x) for x in score_hist(scores)],
                       "mean": _num(scores.mean()) if len(scores) else None,
                       "by_label": hist_by_label(r, labels)},
        "throughput": throughput(r["stats"]),
        "top_entities": top_entities(r, labels),
        "drift": drift(r, reference_of(r, ref_run, labels), labels),
        "quality": _quality_of(out),  # OUT/quality.json (+ its history) from `python -m extract quality`, or None
    }


def _quality_of(out: str) -> dict | None:
    from extract.monitor import quality

    return quality.load(out)


def write_report(out: str, reference: str | None = None, html_path: str | None = None) -> tuple[str, str, dict]:
    """Compute, then write the page and its numbers; (html path, json path, numbers)."""
    data = compute(out, reference)
    html_path = html_path or fs.join(out, "report.html")
    json_path = (html_path[:-5] if html_path.endswith(".html") else html_path) + ".json"
    fs.write_bytes_atomic(json_path, json.dumps(data, indent=2).encode("utf-8"))
    fs.write_bytes_atomic(html_path, render(data).encode("utf-8"))
    return html_path, json_path, data


# ------------------------------------------------------------------------------------- render

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display; PNGs only
    import matplotlib.pyplot as plt

    return plt


def _fig(w: float = 5.5, h: float = 3.2):
    return _plt().subplots(figsize=(w, h))


def _table(header: list[str], rows: list[list]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _bar(names: list[str], values: list[float], title: str, color=None, horizontal=False) -> str:
    fig, ax = _fig()
    if not names:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
    elif horizontal:
        ax.barh(names[::-1], values[::-1], color=color)
    else:
        ax.bar(names, values, color=color)
    ax.set_title(title)
    return _png(fig)


def _section(sid: str, title: str, parts: list[tuple[str, str]], intro: str = "") -> str:
    rows = "".join(f'<div class="pair"><div class="plot">{img}</div><div class="tab">{tab}</div></div>' for img, tab in parts)
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{intro}{rows}</section>'


def render(d: dict) -> str:
    e = html.escape
    labels = d["labels"]
    colors = [COLORS.get(l, "#888888") for l in labels]
    sections = []

    # Documents
    st = d["by_status"]
    reasons = d["error_reasons"]
    parts = [(_bar(list(st), list(st.values()), "documents by status", "#4c72b0"),
              _table(["status", "documents"], [[k, v] for k, v in st.items()]))]
    parts.append((_bar([k[:40] for k in reasons], list(reasons.values()), "error / skip reasons", "#c44e52", True),
                  _table(["reason", "documents"], [[k, v] for k, v in reasons.items()]) if reasons
                  else "<p>no error or skipped documents</p>"))
    sections.append(_section("documents", "Documents by status and error reason", parts,
                             f"<p>{d['documents']:,} documents, {d['words']:,} words.</p>"))

    # Entities
    rates = d["entities_per_1k_words"]
    parts = [(_bar(labels, [d["by_label"][l] for l in labels], "entities by label", colors),
              _table(["label", "entities", "per 1k words"], [[l, d["by_label"][l], rates.get(l)] for l in labels]))]
    parts.append((_bar(labels, [rates.get(l) or 0 for l in labels], "entities per 1,000 words", colors),
                  _table(["label", "per 1k words"], [[l, rates.get(l)] for l in labels])))
    sections.append(_section("entities", "Entities by label and per 1,000 words", parts,
                             f"<p>{d['entities']:,} entities.</p>"))

    # Confidence
    c = d["confidence"]
    plt = _plt()
    fig, axes = plt.subplots(max(1, len(labels)), 1, figsize=(5.5, 1.5 * max(1, len(labels)) + 0.6), sharex=True,
                             squeeze=False)
    centers = np.arange(BINS) / BINS + 0.5 / BINS
    for ax, l, col in zip(axes[:, 0], labels, colors):
        ax.bar(centers, c["by_label"][l], width=1 / BINS * 0.9, color=col)
        ax.set_ylabel(l)
    axes[-1, 0].set_xlabel("confidence")
    axes[0, 0].set_title("confidence histograms per label")
    rows = [[b] + [c["by_label"][l][i] for l in labels] + [c["all"][i]] for i, b in enumerate(c["bins"])]
    sections.append(_section("confidence", "Confidence histograms per label",
                             [(_png(fig), _table(["bin"] + labels + ["all"], rows))],
                             f"<p>mean confidence {c['mean']}</p>"))

    # Throughput
    tp = d["throughput"]
    shards = tp["shards"]
    if shards:
        fig, ax = _fig()
        t = [s["t"] for s in shards]
        ax.plot([0] + t, [0] + [s["cum_words"] for s in shards], marker="o", color="#4c72b0", label="words")
        ax.set_xlabel("seconds since the first shard started")
        ax.set_ylabel("cumulative words")
        ax2 = ax.twinx()
        ax2.plot([0] + t, [0] + [s["cum_docs"] for s in shards], marker="s", color="#dd8452", label="documents")
        ax2.set_ylabel("cumulative documents")
        ax.set_title("throughput over time (per shard finish)")
        img1 = _png(fig)
        fig, ax = _fig()
        ax.bar(range(len(shards)), [s["words_per_second"] or 0 for s in shards], color="#55a868")
        ax.set_xlabel("shard (finishing order)")
        ax.set_ylabel("words/s")
        ax.set_title("words/s per shard")
        img2 = _png(fig)
        table = _table(["shard", "finished", "t (s)", "docs", "words", "seconds", "words/s", "cum. docs", "cum. words"],
                       [[s["shard"], s["finished_at"], s["t"], s["docs"], s["words"], s["seconds"],
                         s["words_per_second"], s["cum_docs"], s["cum_words"]] for s in shards])
        intro = (f"<p>{len(shards)} shards over {tp['elapsed_seconds']} s: {tp['words_per_second']} words/s, "
                 f"{tp['documents_per_second']} documents/s overall (wall clock).</p>")
        sections.append(_section("throughput", "Throughput over time per shard", [(img1, table), (img2, "")], intro))
    else:
        sections.append(_section("throughput", "Throughput over time per shard", [], "<p>no stats/*.json found</p>"))

    # Top entities
    parts = []
    for l, col in zip(labels, colors):
        top = d["top_entities"][l]
        parts.append((_bar([x[0][:30] for x in top], [x[1] for x in top], f"top {l}", col, True),
                      _table(["text", "count", "mean score"], top)))
    sections.append(_section("top-entities", "Top entities per label", parts))

    # Drift
    dr = d["drift"]
    ref = dr["reference"]
    thresholds = (f"<p>Thresholds: PSI &lt; {PSI_WATCH} stable, {PSI_WATCH}&ndash;{PSI_DRIFT} watch, &gt; {PSI_DRIFT} "
                  f"drift (10 confidence bins; proportions floored at {EPS}); entity rate ratio (here / reference, "
                  f"per 1,000 words) outside [{RATIO_LOW}, {RATIO_HIGH}] is drift.</p>")
    intro = (f"<p>Reference: {e(ref['kind'])} {e(str(ref.get('path', '')))}. Verdict: "
             f"<b class=\"{e(dr['verdict'])}\">{e(dr['verdict'])}</b>.</p>" + thresholds
             + (f"<p class=\"note\">Note: {e(ref['note'])}</p>" if ref.get("note") else ""))
    parts = []
    mix = dr["label_mix"]
    if mix.get("psi") is not None:
        parts.append((_pair_bars(labels, mix["here"], mix["reference"], f"label mix (PSI {mix['psi']:.3f}, {mix['flag']})"),
                      _table(["label", "here", "reference"], [[l, a, b] for l, a, b in zip(labels, mix["here"], mix["reference"])])
                      + f"<p>PSI {mix['psi']} &rarr; {mix['flag']}</p>"))
    conf = dr["confidence"]
    if conf.get("psi") is not None:
        parts.append((_pair_bars([b[:3] for b in conf["bins"]], conf["here"], conf["reference"],
                                 f"confidence (PSI {conf['psi']:.3f}, {conf['flag']})"),
                      _table(["bin", "here", "reference"], [[b, x, y] for b, x, y in zip(conf["bins"], conf["here"], conf["reference"])])
                      + f"<p>PSI {conf['psi']} &rarr; {conf['flag']}</p>"))
    elif ref["kind"] != "none":
        parts.append(("<p>confidence PSI: n/a</p>", f"<p class=\"note\">{e(conf.get('note', ''))}</p>"))
    rt = dr["rates"]
    if rt:
        fig, ax = _fig()
        ratios = [rt[l]["ratio"] or 0 for l in labels]
        ax.bar(labels, ratios, color=colors)
        ax.axhline(RATIO_LOW, ls="--", color="grey")
        ax.axhline(RATIO_HIGH, ls="--", color="grey")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_title("entity rate ratio (here / reference)")
        parts.append((_png(fig), _table(["label", "per 1k words", "reference per 1k", "ratio", "flag"],
                                         [[l, rt[l]["per_1k_words"], rt[l]["reference_per_1k_words"], rt[l]["ratio"],
                                           rt[l]["flag"]] for l in labels])))
    sections.append(_section("drift", "Drift against the reference", parts, intro))
    if d.get("quality"):
        from extract.monitor.quality import section_html

        sections.append(section_html(d["quality"]))

    nav = " · ".join(f'<a href="#{s}">{t}</a>' for s, t in [("documents", "documents"), ("entities", "entities"),
                     ("confidence", "confidence"), ("throughput", "throughput"), ("top-entities", "top entities"),
                     ("drift", "drift")] + ([("quality", "quality")] if d.get("quality") else []))
    style = ("body{font-family:sans-serif;margin:1.5em;color:#222}section{margin-bottom:2em}"
             ".pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin:0.8em 0}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
             "th{background:#f2f2f2}.drift{color:#b00}.watch{color:#b70}.stable{color:#070}.note{color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>run report: {e(d['out'])}</title>"
            f"<style>{style}</style></head><body><h1>Run report</h1><p>{e(d['out'])} &middot; generated "
            f"{e(d['generated_at'])}</p><nav>{nav}</nav>{''.join(sections)}</body></html>")


def _pair_bars(names: list[str], here: list[float], ref: list[float], title: str) -> str:
    fig, ax = _fig()
    x = np.arange(len(names))
    ax.bar(x - 0.2, here, width=0.4, label="here", color="#4c72b0")
    ax.bar(x + 0.2, ref, width=0.4, label="reference", color="#bbbbbb")
    ax.set_xticks(x, names)
    ax.set_ylabel("share")
    ax.legend()
    ax.set_title(title)
    return _png(fig)


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
