"""`python -m extract quality OUT --export EXPORT.json`: the model's precision and recall on reviewed documents.

Online metrics from human review: for each reviewed task of a Label Studio JSON export (a task with an
annotation that is not cancelled; the latest one counts, offsets repaired, spans checked: read by
``extract.monitor.labelstudio``, the reader ``python -m training corrections`` uses too), the job's
predicted spans for that document are compared with the annotator's spans. Predicted spans come
from OUT's entities table, matched by the task's ``data.doc_id`` (``--predicted job``, the default,
falling back to the task's own predictions for a doc_id that OUT does not hold), or from the task's
predictions (``--predicted export``); quality.json says how many documents came from each
(``predicted_from``).

Annotated spans are checked as for training (extract/monitor/labelstudio.py): a label the job does
not write (``--labels``, default the run's ``model.labels`` from run.json, else PER, LOC, ORG, MISC),
offsets that are not integers inside the text, a ``value.text`` that is not the slice: dropped and
counted by reason (``counts.dropped``, ``counts.unknown_labels``); the export's own predictions are
checked the same way, without the label check (``counts.predicted_dropped``). A file that is not a
Label Studio export (not JSON, nested past 64 levels, not a list of tasks, wrong types) is exit 2.

An exact match of ``(start, end, label)`` is a true positive (TP). Per label and micro over all labels:

    precision = TP / predicted spans        recall = TP / annotated spans (on the reviewed documents only)

each with a Wilson score interval (95 %, z = 1.959964) for k successes in n trials, p = k / n:

    centre = (p + z^2 / (2n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    interval = [centre - half, centre + half], clipped to [0, 1]

With n = 0 the estimate is undefined (``null``) and the interval is [0, 1] (no information). The
interval treats spans as independent trials; spans of one document are correlated, so the true
uncertainty is somewhat larger.

Writes OUT/quality.json (numbers, counts, documents, the run's model id, a UTC timestamp) and appends
one JSON line to a history file (default ``quality_history.jsonl`` in OUT's parent folder, i.e. next to
OUT; ``--history``) so successive runs build a time series; ``python -m extract report`` shows both.

Sampling: review tasks record no strategy, but ``review`` writes ``data.review_score`` for
``lowest-confidence`` (the document's least entity score, equal to the prediction's ``score``) and
``disagreement`` (1 - Jaccard), and nothing for ``random``. A lowest-confidence or disagreement sample
is chosen for being hard, so its precision understates the whole run's; the page says so. Without a
known strategy the estimates are for the reviewed sample.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter, defaultdict

from extract.core import fs, schema
from extract.monitor.html import esc, figure, html_table, png, section
from extract.monitor.labelstudio import iter_reviewed, load_export, predicted_spans, summary
from extract.monitor.outputs import read_table
from extract.text.labels import DEFAULT_TYPES

Z95 = 1.959964
HISTORY_NAME = "quality_history.jsonl"


class QualityError(ValueError):
    pass


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (see the module docstring); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson: expected 0 <= k <= n, found k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if k == 0 else lo), (1.0 if k == n else hi)  # exact at the ends (no rounding residue)


def rates(tp: int, predicted: int, annotated: int, z: float = Z95) -> dict:
    p_lo, p_hi = wilson(tp, predicted, z)
    r_lo, r_hi = wilson(tp, annotated, z)
    p = tp / predicted if predicted else None
    r = tp / annotated if annotated else None
    f1 = None if p is None or r is None else (2 * p * r / (p + r) if p + r > 0 else 0.0)
    rnd = lambda x: None if x is None else round(x, 6)  # noqa: E731
    return {"tp": tp, "predicted": predicted, "annotated": annotated, "precision": rnd(p),
            "precision_ci": [rnd(p_lo), rnd(p_hi)], "recall": rnd(r), "recall_ci": [rnd(r_lo), rnd(r_hi)],
            "f1": rnd(f1)}


def infer_strategy(tasks: list[dict]) -> str | None:
    """'lowest-confidence' when every task with a review_score has it equal to its prediction's score,
    'lowest-confidence or disagreement' when tasks carry review_score otherwise, None when none does."""
    num = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
    scored = [t for t in tasks if (t.get("data") or {}).get("review_score") is not None]
    if not scored:
        return None
    for t in scored:
        preds = t.get("predictions") or []
        ps = preds[-1].get("score") if preds and isinstance(preds[-1], dict) else None
        rs = t["data"]["review_score"]
        if not (num(ps) and num(rs)) or abs(float(ps) - float(rs)) > 1e-6:
            return "lowest-confidence or disagreement"
    return "lowest-confidence"


def sampling_note(strategy: str | None) -> str:
    if strategy in ("lowest-confidence", "disagreement", "lowest-confidence or disagreement"):
        return (f"The reviewed documents were chosen by {strategy} (the hardest documents first), not at random: "
                "these estimates are for the reviewed sample and understate the model's quality on the whole run.")
    if strategy == "random":
        return ("The reviewed documents are a random sample of the run's ok documents: the intervals estimate the "
                "whole run (spans within a document are correlated, so the intervals are somewhat narrow).")
    return "The review strategy is not known: estimates are for the reviewed sample."


def _job_entities(out: str, doc_ids: set[str]) -> tuple[dict[str, list[tuple]], set[str]]:
    docs = {d for d in read_table(out, "docs", schema.DOCS, ["doc_id"]).column("doc_id").to_pylist() if d is not None}
    by_doc: dict[str, list[tuple]] = defaultdict(list)
    for e in read_table(out, "entities", schema.ENTITIES, ["doc_id", "start", "end", "label"]).to_pylist():
        if e["doc_id"] in doc_ids:
            by_doc[e["doc_id"]].append((int(e["start"]), int(e["end"]), str(e["label"])))
    return by_doc, docs


def run_labels(out: str) -> tuple[list[str], str]:
    """The entity types the job writes (run.json's model.labels) and where they came from; the
    default types (PER, LOC, ORG, MISC) without a run.json that names them."""
    run_path = fs.join(out, "run.json")
    try:
        run = json.loads(fs.read_text(run_path)) if fs.is_file(run_path) else {}
        labels = ((run.get("config") or {}).get("model") or {}).get("labels")
    except (ValueError, AttributeError):
        labels = None
    if isinstance(labels, list) and labels and all(isinstance(l, str) for l in labels):
        return list(labels), "the run's model.labels (run.json)"
    return list(DEFAULT_TYPES), f"default ({', '.join(DEFAULT_TYPES)}): run.json names no model.labels"


def compute(out: str, tasks: list[dict], predicted: str = "job", strategy: str | None = None, z: float = Z95,
            labels: list[str] | None = None) -> dict:
    """The numbers of quality.json (without paths and timestamp). Annotated spans are checked by
    extract.monitor.labelstudio (labels against ``labels``, default: the run's, see run_labels);
    those dropped are counted by reason in ``counts``."""
    if predicted not in ("job", "export"):
        raise QualityError(f"--predicted: expected job or export, found {predicted!r}")
    allowed, labels_from = (list(labels), "--labels") if labels is not None else run_labels(out)
    reviewed = []  # (doc_id, task, gold spans)
    facts: Counter = Counter()
    for i, rec in iter_reviewed(tasks, allowed, facts):  # ExportError for what is not a list of tasks
        reviewed.append((rec["doc_id"], tasks[i], {tuple(s) for s in rec["spans"]}))
    facts["unreviewed"] = facts["unannotated"] + facts["tasks_without_text"]
    job_ents, job_docs = ({}, set())
    if predicted == "job":
        job_ents, job_docs = _job_entities(out, {str(d) for d, _, _ in reviewed})
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    source = Counter()
    docs = 0
    for doc_id, task, gold in reviewed:
        if predicted == "job" and doc_id is not None and str(doc_id) in job_docs:
            pred, src = set(job_ents.get(str(doc_id), [])), "job"
        else:
            spans = predicted_spans(task, None, facts)
            if spans is None:
                facts["no_predictions"] += 1
                continue
            pred, src = set(spans), "export"
        source[src] += 1
        docs += 1
        for s in pred:
            n_pred[s[2]] += 1
        for s in gold:
            n_gold[s[2]] += 1
        for s in pred & gold:
            tp[s[2]] += 1
    labels = sorted(set(n_pred) | set(n_gold))
    strategy = strategy or infer_strategy([t for _, t, _ in reviewed])
    checked = summary(facts)
    pred_checked = summary(facts, prefix="predicted_")
    return {
        "documents": docs,
        "counts": {"tasks": facts["tasks"], "reviewed": len(reviewed), "unreviewed": facts["unreviewed"],
                   "no_predictions": facts["no_predictions"], "dropped_spans": checked["dropped_spans"],
                   "dropped": checked["dropped"], "unknown_labels": checked["unknown_labels"],
                   "fixed_offsets": facts["fixed_offsets"], "other_results": checked["other_results"],
                   "predicted_dropped_spans": pred_checked["predicted_dropped_spans"],
                   "predicted_dropped": pred_checked["predicted_dropped"]},
        "labels_checked": {"labels": allowed, "from": labels_from},
        "predicted_from": {"job": source["job"], "export": source["export"]},
        "match": "exact (start, end, label)",
        "interval": f"Wilson score, {round(100 * (2 * _phi(z) - 1))} % (z = {z})",
        "labels": {l: rates(tp[l], n_pred[l], n_gold[l], z) for l in labels},
        "micro": rates(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()), z),
        "strategy": strategy,
        "sampling_note": sampling_note(strategy),
    }


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def default_history(out: str) -> str:
    folder = fs.parent(out.rstrip("/"))
    return fs.join(folder, HISTORY_NAME) if folder else HISTORY_NAME


def _model_id(out: str) -> str:
    run_path = fs.join(out, "run.json")
    run = json.loads(fs.read_text(run_path)) if fs.is_file(run_path) else {}
    m = run.get("model") or {}
    return str(m.get("id") or m.get("path") or ((run.get("config") or {}).get("model") or {}).get("path") or "unknown")


def read_history(path: str | None) -> list[dict]:
    if not path or not fs.is_file(path):
        return []
    rows = []
    for line in fs.read_text(path).splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line must not hide the rest
    return rows


def run_quality(out: str, export: str, history: str | None = None, predicted: str = "job",
                strategy: str | None = None, labels: list[str] | None = None) -> dict:
    """Compute, write OUT/quality.json, append the history line; the quality.json dict."""
    out = str(out).rstrip("/")
    if not fs.is_dir(out):
        raise QualityError(f"{out}: not found; is it the output folder of `python -m extract run`?")
    tasks = load_export(export)  # ExportError (exit 2) for what is not an export
    q = compute(out, tasks, predicted, strategy, labels=labels)
    history = history or default_history(out)
    q = {"out": out, "export": os.path.abspath(export), "model": _model_id(out),
         "computed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "history": history, **q}
    fs.write_bytes_atomic(fs.join(out, "quality.json"), json.dumps(q, indent=2).encode("utf-8"))
    line = {k: q[k] for k in ("computed_at", "model", "out", "export", "documents", "strategy", "micro", "labels")}
    old = fs.read_text(history) if fs.is_file(history) else ""
    if old and not old.endswith("\n"):
        old += "\n"
    fs.write_bytes_atomic(history, (old + json.dumps(line) + "\n").encode("utf-8"))
    return q


def load(out: str) -> dict | None:
    """OUT/quality.json with its history rows (``history_rows``), or None; for the run report."""
    path = fs.join(out, "quality.json")
    if not fs.is_file(path):
        return None
    q = json.loads(fs.read_text(path))
    q["history_rows"] = read_history(q.get("history"))
    return q


# ------------------------------------------------------------------------------ report section

def section_html(q: dict) -> str:
    """The "Quality on reviewed samples" section of report.html."""
    e = esc  # quality.json is a file: every value from it is text here
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    ci = lambda c: f"[{c[0]:.3f}, {c[1]:.3f}]"  # noqa: E731
    rows = [[l, v["predicted"], v["annotated"], v["tp"], fmt(v["precision"]), ci(v["precision_ci"]), fmt(v["recall"]),
             ci(v["recall_ci"])] for l, v in list(q["labels"].items()) + [("micro (all)", q["micro"])]]
    table = html_table(["label", "predicted", "annotated", "TP", "precision", "precision 95% CI",
                        "recall (reviewed docs)", "recall 95% CI"], rows)
    src = q.get("predicted_from") or {}
    intro = (f"<p>{e(q['documents'])} reviewed documents (export {e(q.get('export', ''))}, computed "
             f"{e(q.get('computed_at', ''))}, model {e(q.get('model', ''))}); predicted spans from the job's "
             f"entities table for {e(src.get('job', 0))} documents, from the tasks' predictions for "
             f"{e(src.get('export', 0))}. "
             f"True positive: exact (start, end, label) match; precision = TP / predicted, recall = TP / annotated "
             f"(on the reviewed documents only); {e(q.get('interval', 'Wilson 95 %'))} intervals.</p>"
             f"<p class=\"note\">{e(q.get('sampling_note', ''))}</p>")
    hist = [h for h in q.get("history_rows") or [] if (h.get("micro") or {}).get("precision") is not None]
    parts = [("", table)]
    if len(hist) >= 2:
        fig, ax = figure()
        x = list(range(len(hist)))
        p = [h["micro"]["precision"] for h in hist]
        lo = [h["micro"]["precision"] - h["micro"]["precision_ci"][0] for h in hist]
        hi = [h["micro"]["precision_ci"][1] - h["micro"]["precision"] for h in hist]
        ax.errorbar(x, p, yerr=[lo, hi], marker="o", capsize=3, color="black", label="micro")
        labels = sorted({l for h in hist for l in h.get("labels") or {}})
        for l in labels:
            ys = [(h.get("labels") or {}).get(l, {}).get("precision") for h in hist]
            ax.plot([i for i, y in zip(x, ys) if y is not None], [y for y in ys if y is not None], marker=".",
                    lw=1, label=l)
        ax.set_xticks(x, [str(h.get("computed_at", ""))[:16].replace("T", " ") for h in hist], rotation=30, fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("precision")
        ax.set_title("precision on reviewed samples over time")
        ax.legend(fontsize=7)
        htab = html_table(["computed", "model", "documents", "micro precision", "95% CI", "micro recall"],
                      [[h.get("computed_at"), h.get("model"), h.get("documents"), fmt(h["micro"]["precision"]),
                        ci(h["micro"]["precision_ci"]), fmt(h["micro"].get("recall"))] for h in hist])
        parts.append((png(fig), htab))
    return section("quality", "Quality on reviewed samples", parts, intro)


def main(out: str, export: str, history: str | None, predicted: str, strategy: str | None,
         labels: list[str] | None = None) -> int:
    q = run_quality(out, export, history, predicted, strategy, labels)
    m = q["micro"]
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    src = q["predicted_from"]
    print(f"{q['documents']} reviewed documents of {q['counts']['tasks']} tasks (predicted spans: job {src['job']}, "
          f"export {src['export']}); model {q['model']}")
    for l, v in list(q["labels"].items()) + [("micro", m)]:
        print(f"  {l}: precision {fmt(v['precision'])} [{v['precision_ci'][0]:.3f}, {v['precision_ci'][1]:.3f}] "
              f"({v['tp']}/{v['predicted']}), recall {fmt(v['recall'])} [{v['recall_ci'][0]:.3f}, "
              f"{v['recall_ci'][1]:.3f}] ({v['tp']}/{v['annotated']})")
    print(q["sampling_note"])
    c = q["counts"]
    if c["dropped_spans"] or c["predicted_dropped_spans"]:
        print(f"dropped: {c['dropped_spans']} annotated spans {json.dumps(c['dropped'])}"
              + (f", unknown labels {json.dumps(c['unknown_labels'])}" if c["unknown_labels"] else "")
              + (f"; {c['predicted_dropped_spans']} predicted spans {json.dumps(c['predicted_dropped'])}"
                 if c["predicted_dropped_spans"] else "")
              + f" (labels checked: {', '.join(q['labels_checked']['labels'])}, {q['labels_checked']['from']})")
    print(f"-> {fs.join(q['out'], 'quality.json')}; history {q['history']}", file=sys.stdout)
    return 0
