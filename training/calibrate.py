"""Confidence calibration: one temperature fitted on dev, entity-score ECE before and after.

The temperature divides the logits before the softmax (word level); entity scores are means of
the chosen tags' probabilities, so they move with it. It is fitted by minimising the negative
log-likelihood of the gold word labels on dev (golden-section search; NLL is unimodal in T), and
stored in config.json ``ner_settings.temperature``, which extract.predict applies.
"""
from __future__ import annotations

import math

import numpy as np

from extract.model import Loaded
from extract.predict import DocProbs, decode, predict_probs
from training.align import word_tags
from training.conll import Document, doc_text, units


def _rescale(log_p: np.ndarray, t: float) -> np.ndarray:
    # softmax(log p / T) == softmax(logits / T): log p differs from the logits by a per-row constant.
    z = log_p / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def dev_predictions(loaded: Loaded, docs: list[Document], context: str, batch_size: int = 64):
    """Per unit: text, word-level log-probs at T=1, gold word label ids, gold entity set."""
    label2id = {l: i for i, l in enumerate(loaded.labels)}
    texts, golds = [], []
    for unit in units(docs, context):
        text, starts, _, tags = doc_text(unit)
        texts.append(text)
        golds.append((starts, tags))
    preds = predict_probs(loaded, texts, batch_size, temperature=1.0)
    out = []
    for text, p, (tok_starts, tags) in zip(texts, preds, golds):
        wt = word_tags(p.word_starts, tok_starts, tags)
        gold_ids = np.array([label2id.get(t, 0) for t in wt], dtype=np.int64)
        out.append((text, p, np.log(np.clip(p.probs, 1e-12, 1.0)), gold_ids))
    return out


def nll(data, t: float) -> float:
    total, n = 0.0, 0
    for _, _, log_p, gold in data:
        if len(gold):
            q = _rescale(log_p, t)
            total -= float(np.log(np.clip(q[np.arange(len(gold)), gold], 1e-12, 1.0)).sum())
            n += len(gold)
    return total / max(1, n)


def entity_outcomes(data, labels: list[str], t: float, repair: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """Scores of predicted entities at temperature t, and whether each is exactly right."""
    scores, correct = [], []
    for text, p, log_p, gold in data:
        q = DocProbs(p.enc, p.word_starts, p.word_ends, _rescale(log_p, t).astype(np.float32))
        gp = DocProbs(p.enc, p.word_starts, p.word_ends, np.eye(len(labels), dtype=np.float32)[gold])
        truth = {(e["start"], e["end"], e["label"]) for e in decode(gp, text, labels, "begin")}
        for e in decode(q, text, labels, repair):
            scores.append(e["score"])
            correct.append((e["start"], e["end"], e["label"]) in truth)
    return np.asarray(scores, dtype=float), np.asarray(correct, dtype=float)


def entity_nll(data, labels: list[str], t: float, repair: str = "drop") -> float:
    """Binary log loss of entity scores read as P(entity exactly right): what users threshold on."""
    s, c = entity_outcomes(data, labels, t, repair)
    s = np.clip(s, 1e-6, 1 - 1e-6)
    return float(-(c * np.log(s) + (1 - c) * np.log(1 - s)).mean()) if len(s) else 0.0


def fit_temperature(objective, lo: float = 0.25, hi: float = 8.0, iters: int = 30) -> float:
    """Golden-section search over log T for the minimum of ``objective(T)`` (unimodal in practice)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = math.log(lo), math.log(hi)
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = objective(math.exp(c)), objective(math.exp(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = objective(math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = objective(math.exp(d))
    return round(math.exp((a + b) / 2), 4)


def ece(scores: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    total = 0.0
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(scores, edges[1:-1], right=True), 0, bins - 1)
    for i in range(bins):
        m = idx == i
        if m.any():
            total += m.mean() * abs(scores[m].mean() - correct[m].mean())
    return float(total)


def calibrate(loaded: Loaded, docs: list[Document], context: str) -> dict:
    """Fit T on all of dev for release; report ECE in-sample and 2-fold cross-fitted (fit on half the
    documents, measure on the other half), since dev is the only held-out data we may use."""
    data = dev_predictions(loaded, docs, context)
    labels, repair = loaded.labels, loaded.settings.get("repair", "drop")
    t = fit_temperature(lambda x: entity_nll(data, labels, x, repair))
    before = entity_outcomes(data, labels, 1.0, repair)
    after = entity_outcomes(data, labels, t, repair)
    halves = [data[0::2], data[1::2]]
    cross_s, cross_c = [], []
    for k in range(2):
        tk = fit_temperature(lambda x: entity_nll(halves[1 - k], labels, x, repair))
        s, c = entity_outcomes(halves[k], labels, tk, repair)
        cross_s.append(s); cross_c.append(c)
    cs, cc = np.concatenate(cross_s), np.concatenate(cross_c)
    return {"temperature": t, "objective": "entity log loss", "entities": int(len(before[0])),
            "accuracy": round(float(before[1].mean()), 4),
            "word_nll_before": round(nll(data, 1.0), 5), "word_nll_after": round(nll(data, t), 5),
            "ece_before": round(ece(*before), 4), "ece_after": round(ece(*after), 4),
            "ece_after_crossfit": round(ece(cs, cc), 4),
            "mean_score_before": round(float(before[0].mean()), 4), "mean_score_after": round(float(after[0].mean()), 4)}
