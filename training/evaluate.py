"""Evaluate a model directory on a CoNLL-format file: seqeval strict IOB2, report and picture.

Predictions go through the batch job's own path (extract.model.predict: windows, forward passes;
extract.text.spans: decode, repair) on the gold tokens joined into text, then back onto gold tokens
by character offsets.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from extract.model.loaded import Loaded
from extract.model.predict import predict_probs
from extract.text.spans import decode
from training.align import spans_to_token_tags
from training.conll import Document, doc_text, units


def predict_conll(loaded: Loaded, docs: list[Document], context: str, batch_size: int = 64, predict=None,
                  funnel: str | None = None) -> tuple[list[list[str]], list[list[str]], int, float]:
    """Gold and predicted tags per sentence, word count, seconds spent predicting.

    ``predict(texts) -> [DocProbs-like]`` replaces the single model (e.g. a teacher ensemble).
    """
    us = units(docs, context)
    texts, starts, ends, golds = [], [], [], []
    for unit in us:
        text, s, e, tags = doc_text(unit)
        texts.append(text)
        starts.append(s)
        ends.append(e)
        golds.append(tags)
    t0 = time.perf_counter()
    probs = predict(texts) if predict else predict_probs(loaded, texts, batch_size, funnel=funnel)
    repair = loaded.settings.get("repair", "drop")
    consistency = bool(loaded.settings.get("consistency", False))
    preds = [spans_to_token_tags(decode(p, t, loaded.labels, repair, consistency=consistency), s, e)
             for p, t, s, e in zip(probs, texts, starts, ends)]
    seconds = time.perf_counter() - t0
    # Split back into sentences so seqeval sees the usual sentence lists.
    y_true, y_pred = [], []
    for unit, gold, pred in zip(us, golds, preds):
        k = 0
        for sent in unit:
            n = len(sent.tokens)
            y_true.append(gold[k:k + n])
            y_pred.append(pred[k:k + n])
            k += n
    return y_true, y_pred, sum(len(g) for g in golds), seconds


def map_tags(seqs: list[list[str]], mapping: dict[str, str]) -> list[list[str]]:
    """Rename entity types; mapping a type to 'O' removes it."""
    out = []
    for seq in seqs:
        row = []
        for tag in seq:
            if tag != "O" and tag[2:] in mapping:
                new = mapping[tag[2:]]
                tag = "O" if new == "O" else f"{tag[:2]}{new}"
            row.append(tag)
        out.append(row)
    return out


def _prf(y_true, y_pred) -> tuple[float, float, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    return (float(precision_score(y_true, y_pred, **kw)), float(recall_score(y_true, y_pred, **kw)),
            float(f1_score(y_true, y_pred, **kw)))


def scores(y_true: list[list[str]], y_pred: list[list[str]]) -> dict:
    """Micro P/R/F1 over all types, F1 over PER/LOC/ORG (MISC -> O on both sides), per type."""
    from seqeval.metrics.sequence_labeling import get_entities

    p, r, f = _prf(y_true, y_pred)
    plo_t, plo_p = map_tags(y_true, {"MISC": "O"}), map_tags(y_pred, {"MISC": "O"})
    pp, rp, fp = _prf(plo_t, plo_p)
    types = sorted({t for seq in y_true + y_pred for t, _, _ in get_entities(seq)})
    per_type = {}
    for t in types:
        others = {o: "O" for o in types if o != t}
        pt, rt, ft = _prf(map_tags(y_true, others), map_tags(y_pred, others))
        support = sum(1 for seq in y_true for e in get_entities(seq) if e[0] == t)
        per_type[t] = {"precision": pt, "recall": rt, "f1": ft, "support": support}
    return {"precision": p, "recall": r, "f1": f, "precision_plo": pp, "recall_plo": rp, "f1_plo": fp,
            "per_type": per_type, "scheme": "IOB2", "mode": "strict"}


def confusion(y_true: list[list[str]], y_pred: list[list[str]]) -> dict[str, Counter]:
    """Entity-level confusion: gold type -> predicted type for exact-boundary matches,
    'missed' for gold spans no prediction matches, and a 'spurious' row for the reverse."""
    from seqeval.metrics.sequence_labeling import get_entities

    table: dict[str, Counter] = {}
    for gold, pred in zip(y_true, y_pred):
        g = {(s, e): t for t, s, e in get_entities(gold)}
        p = {(s, e): t for t, s, e in get_entities(pred)}
        for span, t in g.items():
            table.setdefault(t, Counter())[p.get(span, "missed")] += 1
        for span, t in p.items():
            if span not in g:
                table.setdefault("spurious", Counter())[t] += 1
    return table


def write_report(metrics: dict, table: dict[str, Counter], out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    types = sorted(metrics["per_type"])
    cols = types + ["missed"]
    lines = [f"# Evaluation: {title}", "",
             f"seqeval, mode `{metrics['mode']}`, scheme `{metrics['scheme']}`; "
             f"{metrics.get('words', 0):,} words at {metrics.get('words_per_second', 0):,.0f} words/s.", "",
             "| | precision | recall | F1 |", "|---|---|---|---|",
             f"| all types (micro) | {metrics['precision']:.4f} | {metrics['recall']:.4f} | {metrics['f1']:.4f} |",
             f"| PER/LOC/ORG (MISC->O) | {metrics['precision_plo']:.4f} | {metrics['recall_plo']:.4f} "
             f"| {metrics['f1_plo']:.4f} |",
             "", "| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for t in types:
        m = metrics["per_type"][t]
        lines.append(f"| {t} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |")
    lines += ["", "Entity confusion (rows gold, columns predicted; exact boundaries; "
              "`missed` = no prediction with these boundaries, `spurious` row = predictions with no gold span):", "",
              "| gold \\ pred | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in types + ["spurious"]:
        c = table.get(row, Counter())
        lines.append(f"| {row} | " + " | ".join(str(c.get(col, 0)) for col in cols) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _plot(metrics, table, types, cols, out / "report.png", title)


def _plot(metrics: dict, table: dict[str, Counter], types: Sequence[str], cols: Sequence[str],
          path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    f1s = [metrics["per_type"][t]["f1"] for t in types]
    a.barh(list(types), f1s, color="#4c72b0")
    for i, v in enumerate(f1s):
        a.text(min(v, 0.98), i, f"{v:.3f}", va="center", ha="right", color="white", fontsize=9)
    a.set_xlim(0, 1)
    a.set_xlabel("F1 (strict IOB2)")
    a.set_title(f"per type; micro F1 {metrics['f1']:.4f}")
    rows = list(types) + ["spurious"]
    grid = np.array([[table.get(r, Counter()).get(c, 0) for c in cols] for r in rows])
    b.imshow(np.log1p(grid), cmap="Blues")
    b.set_xticks(range(len(cols)), cols)
    b.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            dark = np.log1p(grid[i, j]) > 0.6 * np.log1p(grid.max())
            b.text(j, i, str(grid[i, j]), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    b.set_xlabel("predicted")
    b.set_ylabel("gold")
    b.set_title("entity confusion")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_loaded(loaded: Loaded, docs: list[Document], context: str, batch_size: int = 64,
                    label_map: dict[str, str] | None = None, predict=None, funnel: str | None = None
                    ) -> tuple[dict, dict]:
    y_true, y_pred, words, seconds = predict_conll(loaded, docs, context, batch_size, predict, funnel)
    if label_map:
        y_true, y_pred = map_tags(y_true, label_map), map_tags(y_pred, label_map)
    metrics = scores(y_true, y_pred)
    metrics.update({"words": words, "seconds": round(seconds, 2),
                    "words_per_second": round(words / seconds, 1) if seconds else 0.0})
    return metrics, confusion(y_true, y_pred)
