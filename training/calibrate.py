"""Confidence calibration on dev: a temperature, then a length-aware map of the entity score.

1. The temperature divides the logits before the softmax (word level), stored in config.json
   ``ner_settings.temperature`` and applied by extract.text.spans.combine. It is fitted to the entity
   scores' log loss (golden-section search; unimodal in T).
2. An entity's base score is the product of its words' chosen tag probabilities, which under-rates
   long names and over-rates single words (CoNLL dev, default model: 4+-word names scored 0.80 on
   average and were right 94% of the time; single words 0.94 for 90%). ``score_map`` [a, b, c]
   turns it into sigmoid(a + b logit(product) + c ln(words)) (extract.text.spans.mapped_score), a
   3-parameter logistic fit to the same log loss; stored as ``ner_settings.score_map`` and kept only
   when it lowers the 2-fold cross-fitted log loss (dev is the only held-out data we may tune on).

ECE is reported overall and by span length in words (1, 2, 3, 4+), before and after, in-sample and
2-fold cross-fitted (fit on half the documents, measure on the other half).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from extract.model.loaded import Loaded
from extract.model.predict import predict_probs
from extract.text.spans import SCORE_EPS, DocProbs, decode, mapped_score
from training.align import word_tags
from training.conll import Document, doc_text, units

BUCKETS = ("1", "2", "3", "4+")
MIN_ENTITIES_FOR_MAP = 200  # fewer dev entities than this: too few to fit 3 numbers, keep the product
IDENTITY_MAP = (0.0, 1.0, 0.0)  # sigmoid(logit(p)) == p


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


@dataclass
class Outcomes:
    """Predicted entities at one temperature: product score, exactly right or not, length in words."""

    product: np.ndarray
    correct: np.ndarray
    n_words: np.ndarray

    def scores(self, score_map: Sequence[float] | None = None) -> np.ndarray:
        return np.asarray(mapped_score(self.product, self.n_words, score_map), dtype=float)


def entity_records(data, labels: list[str], t: float, repair: str = "drop") -> Outcomes:
    """Decode every dev unit at temperature t (product scores) and mark each entity right or wrong."""
    scores, correct, n_words = [], [], []
    for text, p, log_p, gold in data:
        q = DocProbs(p.enc, p.word_starts, p.word_ends, _rescale(log_p, t).astype(np.float32))
        gp = DocProbs(p.enc, p.word_starts, p.word_ends, np.eye(len(labels), dtype=np.float32)[gold])
        truth = {(e["start"], e["end"], e["label"]) for e in decode(gp, text, labels, "begin")}
        for e in decode(q, text, labels, repair):
            scores.append(e["score"])
            correct.append((e["start"], e["end"], e["label"]) in truth)
            # words whose start lies inside the span (decode's entities start and end on word edges)
            n_words.append(int(np.searchsorted(p.word_starts, e["end"]) - np.searchsorted(p.word_starts, e["start"])))
    return Outcomes(np.asarray(scores, dtype=float), np.asarray(correct, dtype=float),
                    np.maximum(np.asarray(n_words, dtype=np.int64), 1))


def entity_outcomes(data, labels: list[str], t: float, repair: str = "drop",
                    score_map: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores of predicted entities at temperature t (mapped by ``score_map``), and whether each is
    exactly right."""
    o = entity_records(data, labels, t, repair)
    return o.scores(score_map), o.correct


def log_loss(scores: np.ndarray, correct: np.ndarray) -> float:
    """Binary log loss of scores read as P(entity exactly right): what users threshold on."""
    s = np.clip(scores, 1e-6, 1 - 1e-6)
    return float(-(correct * np.log(s) + (1 - correct) * np.log(1 - s)).mean()) if len(s) else 0.0


def entity_nll(data, labels: list[str], t: float, repair: str = "drop") -> float:
    """Entity log loss of the product scores at temperature t."""
    return log_loss(*entity_outcomes(data, labels, t, repair))


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


def _map_features(o: Outcomes) -> np.ndarray:
    # The same clipping as mapped_score, so the fitted coefficients mean the same thing there.
    p = np.clip(o.product, SCORE_EPS, 1 - SCORE_EPS)
    return np.column_stack([np.ones(len(p)), np.log(p / (1 - p)), np.log(o.n_words)])


def fit_score_map(o: Outcomes, ridge: float = 1.0, iters: int = 50) -> list[float] | None:
    """Logistic regression of "exactly right" on [1, logit(product), ln(words)] by Newton's method.

    A small ridge pulls towards the identity map (0, 1, 0): it keeps the fit finite when all
    entities share one length or one outcome, and is negligible against thousands of dev entities.
    None when there are too few entities, or only right (or only wrong) ones, to fit three numbers.
    """
    if len(o.correct) < MIN_ENTITIES_FOR_MAP or o.correct.min() == o.correct.max():
        return None
    x, y, w0 = _map_features(o), o.correct, np.array(IDENTITY_MAP)

    def loss(w: np.ndarray) -> float:
        z = x @ w
        return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * ridge * np.sum((w - w0) ** 2))

    w = w0.copy()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -60, 60)))
        grad = x.T @ (p - y) + ridge * (w - w0)
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(3)
        step = np.linalg.solve(hess, grad)
        # Newton on a convex loss; halve the step if it overshoots (far from the optimum).
        f0, k = loss(w), 0
        while loss(w - step) > f0 and k < 30:
            step, k = step / 2, k + 1
        w = w - step
        if np.abs(step).max() < 1e-9:
            break
    return [round(float(v), 4) for v in w]


def length_buckets(n_words: np.ndarray) -> np.ndarray:
    """Index into BUCKETS: 1, 2, 3 words, or 4 and more."""
    return np.minimum(np.asarray(n_words), 4) - 1


def ece(scores: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    total = 0.0
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(scores, edges[1:-1], right=True), 0, bins - 1)
    for i in range(bins):
        m = idx == i
        if m.any():
            total += m.mean() * abs(scores[m].mean() - correct[m].mean())
    return float(total)


def by_length(scores: np.ndarray, correct: np.ndarray, n_words: np.ndarray) -> dict[str, dict]:
    """Per length bucket: count, accuracy, mean score and ECE (10 bins within the bucket), so a rule
    that is right on average but wrong for long names shows."""
    b = length_buckets(n_words)
    out = {}
    for i, name in enumerate(BUCKETS):
        m = b == i
        out[name] = {"n": int(m.sum()),
                     "accuracy": round(float(correct[m].mean()), 4) if m.any() else None,
                     "mean_score": round(float(scores[m].mean()), 4) if m.any() else None,
                     "ece": round(ece(scores[m], correct[m]), 4) if m.any() else None}
    return out


# A score rule, for comparing candidates: fit(outcomes at the fitted T) -> params;
# apply(outcomes, params) -> scores.
Fit = Callable[[Outcomes], Any]
Apply = Callable[[Outcomes, Any], np.ndarray]


@dataclass
class RuleResult:
    """A rule fitted on all of dev (in-sample) and 2-fold cross-fitted, next to T=1 products."""

    temperature: float
    params: Any
    before: Outcomes  # T=1, product
    after: np.ndarray  # scores on ``fitted`` with the rule fitted on all of dev
    fitted: Outcomes  # at the fitted temperature
    crossfit: np.ndarray  # scores, each dev half scored by T and params fitted on the other half
    crossfit_outcomes: Outcomes  # the halves' outcomes in the same order
    crossfit_temperature_only: np.ndarray  # cross-fitted T, product score


def fit_temperature_on(data, labels: list[str], repair: str) -> float:
    return fit_temperature(lambda x: entity_nll(data, labels, x, repair))


def evaluate_rule(data, labels: list[str], repair: str, fit: Fit, apply: Apply,
                  prepared: dict | None = None) -> RuleResult:
    """Fit T, then the rule at that T, on all of dev and on each half; ``prepared`` caches the
    decode passes (temperatures and outcomes) between rules, since those dominate the time."""
    prep = prepared if prepared is not None else {}
    if "t" not in prep:
        halves = [data[0::2], data[1::2]]
        prep["t"] = fit_temperature_on(data, labels, repair)
        prep["before"] = entity_records(data, labels, 1.0, repair)
        prep["fitted"] = entity_records(data, labels, prep["t"], repair)
        prep["halves"] = []
        for k in range(2):
            tk = fit_temperature_on(halves[1 - k], labels, repair)
            prep["halves"].append((entity_records(halves[1 - k], labels, tk, repair),  # to fit on
                                   entity_records(halves[k], labels, tk, repair)))  # to score
    params = fit(prep["fitted"])
    cross, cross_t, outs = [], [], []
    for train, test in prep["halves"]:
        cross.append(apply(test, fit(train)))
        cross_t.append(test.product)
        outs.append(test)
    joined = Outcomes(*(np.concatenate([getattr(o, f) for o in outs]) for f in ("product", "correct", "n_words")))
    return RuleResult(prep["t"], params, prep["before"], apply(prep["fitted"], params), prep["fitted"],
                      np.concatenate(cross), joined, np.concatenate(cross_t))


def length_table(r: RuleResult) -> dict[str, dict]:
    """by_length before (T=1 product), after (in-sample) and cross-fitted, merged per bucket."""
    before = by_length(r.before.product, r.before.correct, r.before.n_words)
    after = by_length(r.after, r.fitted.correct, r.fitted.n_words)
    cross = by_length(r.crossfit, r.crossfit_outcomes.correct, r.crossfit_outcomes.n_words)
    return {b: {"n": before[b]["n"], "accuracy": before[b]["accuracy"],
                "mean_score_before": before[b]["mean_score"], "mean_score_after": after[b]["mean_score"],
                "ece_before": before[b]["ece"], "ece_after": after[b]["ece"],
                "ece_after_crossfit": cross[b]["ece"]} for b in BUCKETS}


def calibrate(loaded: Loaded, docs: list[Document], context: str) -> dict:
    """Fit T and the score map on all of dev for release; report ECE (overall and by span length) and
    entity log loss in-sample and 2-fold cross-fitted. ``score_map`` is None (store nothing: the
    plain product) unless the map lowers the cross-fitted entity log loss."""
    data = dev_predictions(loaded, docs, context)
    labels, repair = loaded.labels, loaded.settings.get("repair", "drop")
    r = evaluate_rule(data, labels, repair, fit_score_map, Outcomes.scores)
    co = r.crossfit_outcomes
    loss_t, loss_map = log_loss(r.crossfit_temperature_only, co.correct), log_loss(r.crossfit, co.correct)
    use_map = r.params is not None and loss_map < loss_t
    if not use_map:  # report what will be released: T and the plain product
        r.params, r.after, r.crossfit = None, r.fitted.product, r.crossfit_temperature_only
    t, before, fitted = r.temperature, r.before, r.fitted
    return {"temperature": t, "score_map": r.params,
            "score_rule": "sigmoid(a + b logit(product) + c ln(words))" if use_map else "product",
            "objective": "entity log loss", "entities": int(len(before.product)),
            "accuracy": round(float(before.correct.mean()), 4),
            "word_nll_before": round(nll(data, 1.0), 5), "word_nll_after": round(nll(data, t), 5),
            "ece_before": round(ece(before.product, before.correct), 4),
            "ece_after_temperature": round(ece(fitted.product, fitted.correct), 4),
            "ece_after_temperature_crossfit": round(ece(r.crossfit_temperature_only, co.correct), 4),
            "ece_after": round(ece(r.after, fitted.correct), 4),
            "ece_after_crossfit": round(ece(r.crossfit, co.correct), 4),
            "entity_nll_before": round(log_loss(before.product, before.correct), 5),
            "entity_nll_after": round(log_loss(r.after, fitted.correct), 5),
            "entity_nll_after_temperature_crossfit": round(loss_t, 5),
            "entity_nll_after_crossfit": round(log_loss(r.crossfit, co.correct), 5),
            "mean_score_before": round(float(before.product.mean()), 4),
            "mean_score_after": round(float(r.after.mean()), 4),
            "by_length": length_table(r)}


def length_markdown(by_len: dict[str, dict]) -> str:
    """The by-length table as markdown (release log, model card, scripts/calibration_table.py)."""
    rows = ["| words | n | accuracy | mean score before | mean score after | ECE before | ECE after "
            "| ECE cross-fitted |",
            "|---|---|---|---|---|---|---|---|"]
    for b, m in by_len.items():
        cells = [m[k] for k in ("n", "accuracy", "mean_score_before", "mean_score_after", "ece_before", "ece_after",
                                "ece_after_crossfit")]
        rows.append(f"| {b} | " + " | ".join("-" if v is None else str(v) for v in cells) + " |")
    return "\n".join(rows)
