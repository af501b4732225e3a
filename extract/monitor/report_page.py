"""report.html: the page of the run report, drawn from the numbers of report.json
(extract/monitor/run_report.py computes them).

Each plot is a matplotlib PNG embedded as base64 beside a table of the same numbers, so the page is
one self-contained file (helpers in extract/monitor/html.py); the quality section comes from
extract/monitor/quality.py.
"""
from __future__ import annotations

import numpy as np

from extract.core import fs
from extract.job.summary import BINS, EPS, PSI_DRIFT, PSI_WATCH, RATIO_HIGH, RATIO_LOW
from extract.monitor.html import bar, esc, figure, html_table, png, pyplot, section
from extract.monitor.quality import section_html

COLORS = {"PER": "#e4572e", "LOC": "#29335c", "ORG": "#f3a712", "MISC": "#669bbc"}


def write_page(data: dict, html_path: str) -> str:
    """Render ``data`` (run_report.compute's numbers) and write it to ``html_path``; the path."""
    fs.write_bytes_atomic(html_path, render(data).encode("utf-8"))
    return html_path


def render(d: dict) -> str:
    """The page of the numbers ``d`` (run_report.compute): one section per part, each plot beside its table."""
    e = esc  # every string from data goes through it (tables escape their cells)
    labels = d["labels"]
    colors = [COLORS.get(l, "#888888") for l in labels]
    sections = []

    # Documents
    st = d["by_status"]
    reasons = d["error_reasons"]
    parts = [(bar(list(st), list(st.values()), "documents by status", "#4c72b0"),
              html_table(["status", "documents"], [[k, v] for k, v in st.items()]))]
    parts.append((bar([k[:40] for k in reasons], list(reasons.values()), "error / skip reasons", "#c44e52", True),
                  html_table(["reason", "documents"], [[k, v] for k, v in reasons.items()]) if reasons
                  else "<p>no error or skipped documents</p>"))
    sections.append(section("documents", "Documents by status and error reason", parts,
                             f"<p>{d['documents']:,} documents, {d['words']:,} words.</p>"))

    # Entities
    rates = d["entities_per_1k_words"]
    parts = [(bar(labels, [d["by_label"][l] for l in labels], "entities by label", colors),
              html_table(["label", "entities", "per 1k words"], [[l, d["by_label"][l], rates.get(l)] for l in labels]))]
    parts.append((bar(labels, [rates.get(l) or 0 for l in labels], "entities per 1,000 words", colors),
                  html_table(["label", "per 1k words"], [[l, rates.get(l)] for l in labels])))
    sections.append(section("entities", "Entities by label and per 1,000 words", parts,
                             f"<p>{d['entities']:,} entities.</p>"))

    # Confidence
    c = d["confidence"]
    plt = pyplot()
    fig, axes = plt.subplots(max(1, len(labels)), 1, figsize=(5.5, 1.5 * max(1, len(labels)) + 0.6), sharex=True,
                             squeeze=False)
    centers = np.arange(BINS) / BINS + 0.5 / BINS
    for ax, l, col in zip(axes[:, 0], labels, colors):
        ax.bar(centers, c["by_label"][l], width=1 / BINS * 0.9, color=col)
        ax.set_ylabel(l)
    axes[-1, 0].set_xlabel("confidence")
    axes[0, 0].set_title("confidence histograms per label")
    rows = [[b] + [c["by_label"][l][i] for l in labels] + [c["all"][i]] for i, b in enumerate(c["bins"])]
    sections.append(section("confidence", "Confidence histograms per label",
                             [(png(fig), html_table(["bin"] + labels + ["all"], rows))],
                             f"<p>mean confidence {e(c['mean'])}</p>"))

    # Throughput
    tp = d["throughput"]
    shards = tp["shards"]
    if shards:
        fig, ax = figure()
        t = [s["t"] for s in shards]
        ax.plot([0] + t, [0] + [s["cum_words"] for s in shards], marker="o", color="#4c72b0", label="words")
        ax.set_xlabel("seconds since the first shard started")
        ax.set_ylabel("cumulative words")
        ax2 = ax.twinx()
        ax2.plot([0] + t, [0] + [s["cum_docs"] for s in shards], marker="s", color="#dd8452", label="documents")
        ax2.set_ylabel("cumulative documents")
        ax.set_title("throughput over time (per shard finish)")
        img1 = png(fig)
        fig, ax = figure()
        ax.bar(range(len(shards)), [s["words_per_second"] or 0 for s in shards], color="#55a868")
        ax.set_xlabel("shard (finishing order)")
        ax.set_ylabel("words/s")
        ax.set_title("words/s per shard")
        img2 = png(fig)
        table = html_table(["shard", "finished", "t (s)", "docs", "words", "seconds", "words/s", "cum. docs",
                            "cum. words"],
                       [[s["shard"], s["finished_at"], s["t"], s["docs"], s["words"], s["seconds"],
                         s["words_per_second"], s["cum_docs"], s["cum_words"]] for s in shards])
        intro = (f"<p>{len(shards)} shards over {e(tp['elapsed_seconds'])} s: {e(tp['words_per_second'])} words/s, "
                 f"{e(tp['documents_per_second'])} documents/s overall (wall clock).</p>")
        sections.append(section("throughput", "Throughput over time per shard", [(img1, table), (img2, "")], intro))
    else:
        sections.append(section("throughput", "Throughput over time per shard", [], "<p>no stats/*.json found</p>"))

    # Top entities
    parts = []
    for l, col in zip(labels, colors):
        top = d["top_entities"][l]
        parts.append((bar([x[0][:30] for x in top], [x[1] for x in top], f"top {l}", col, True),
                      html_table(["text", "count", "mean score"], top)))
    sections.append(section("top-entities", "Top entities per label", parts))

    # Drift
    dr = d["drift"]
    ref = dr["reference"]
    thresholds = (f"<p>Thresholds: PSI &lt; {PSI_WATCH} stable, {PSI_WATCH}&ndash;{PSI_DRIFT} watch, &gt; {PSI_DRIFT} "
                  f"drift (10 confidence bins; proportions floored at {EPS}); entity rate ratio (here / reference, "
                  f"per 1,000 words) outside [{RATIO_LOW}, {RATIO_HIGH}] is drift.</p>")
    intro = (f"<p>Reference: {e(ref['kind'])} {e(ref.get('path', ''))}. Verdict: "
             f"<b class=\"{e(dr['verdict'])}\">{e(dr['verdict'])}</b>.</p>" + thresholds
             + (f"<p class=\"note\">Note: {e(ref['note'])}</p>" if ref.get("note") else ""))
    parts = []
    mix = dr["label_mix"]
    if mix.get("psi") is not None:
        parts.append((_pair_bars(labels, mix["here"], mix["reference"],
                                 f"label mix (PSI {mix['psi']:.3f}, {mix['flag']})"),
                      html_table(["label", "here", "reference"],
                                 [[l, a, b] for l, a, b in zip(labels, mix["here"], mix["reference"])])
                      + f"<p>PSI {e(mix['psi'])} &rarr; {e(mix['flag'])}</p>"))
    conf = dr["confidence"]
    if conf.get("psi") is not None:
        parts.append((_pair_bars([b[:3] for b in conf["bins"]], conf["here"], conf["reference"],
                                 f"confidence (PSI {conf['psi']:.3f}, {conf['flag']})"),
                      html_table(["bin", "here", "reference"],
                                 [[b, x, y] for b, x, y in zip(conf["bins"], conf["here"], conf["reference"])])
                      + f"<p>PSI {e(conf['psi'])} &rarr; {e(conf['flag'])}</p>"))
    elif ref["kind"] != "none":
        parts.append(("<p>confidence PSI: n/a</p>", f"<p class=\"note\">{e(conf.get('note', ''))}</p>"))
    rt = dr["rates"]
    if rt:
        fig, ax = figure()
        ratios = [rt[l]["ratio"] or 0 for l in labels]
        ax.bar(labels, ratios, color=colors)
        ax.axhline(RATIO_LOW, ls="--", color="grey")
        ax.axhline(RATIO_HIGH, ls="--", color="grey")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_title("entity rate ratio (here / reference)")
        parts.append((png(fig), html_table(["label", "per 1k words", "reference per 1k", "ratio", "flag"],
                                         [[l, rt[l]["per_1k_words"], rt[l]["reference_per_1k_words"], rt[l]["ratio"],
                                           rt[l]["flag"]] for l in labels])))
    sections.append(section("drift", "Drift against the reference", parts, intro))
    if d.get("quality"):
        sections.append(section_html(d["quality"]))

    nav = " · ".join(f'<a href="#{s}">{t}</a>' for s, t in [("documents", "documents"), ("entities", "entities"),
                     ("confidence", "confidence"), ("throughput", "throughput"), ("top-entities", "top entities"),
                     ("drift", "drift")] + ([("quality", "quality")] if d.get("quality") else []))
    style = ("body{font-family:sans-serif;margin:1.5em;color:#222}section{margin-bottom:2em}"
             ".pair{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin:0.8em 0}"
             "table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
             "th{background:#f2f2f2}.drift{color:#b00}.watch{color:#b70}.stable{color:#070}.note{color:#555}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>run report: {e(d['out'])}</title>"
            f"<style>{style}</style></head><body><h1>Run report</h1><p>{e(d['out'])} &middot; generated "
            f"{e(d['generated_at'])}</p><nav>{nav}</nav>{''.join(sections)}</body></html>")


def _pair_bars(names: list[str], here: list[float], ref: list[float], title: str) -> str:
    fig, ax = figure()
    x = np.arange(len(names))
    ax.bar(x - 0.2, here, width=0.4, label="here", color="#4c72b0")
    ax.bar(x + 0.2, ref, width=0.4, label="reference", color="#bbbbbb")
    ax.set_xticks(x, names)
    ax.set_ylabel("share")
    ax.legend()
    ax.set_title(title)
    return png(fig)
