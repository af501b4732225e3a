"""Entity-score calibration on CoNLL dev, by span length, for the current score rule and candidates.

    python scripts/calibration_table.py --model data/models/default [--dev ../shared/data/conll2003/valid.txt]

One dev pass (a few minutes on a busy 2-core CPU, seconds when idle), then every rule is fitted on
top of the entity-log-loss temperature, on all of dev (in-sample) and 2-fold cross-fitted (fit on
half the documents, score the other half). Prints markdown: a summary per rule and, per rule, ECE
by span length in words. "before" is always the plain product at T=1 (what a model without any
calibration gives).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from training.calibrate import (BUCKETS, Outcomes, RuleResult, dev_predictions, ece, evaluate_rule,  # noqa: E402
                                fit_score_map, fit_temperature, length_buckets, length_markdown, length_table,
                                log_loss)


# -- candidate rules: fit(outcomes) -> params, apply(outcomes, params) -> scores -------------------

def _product(o: Outcomes, _params) -> np.ndarray:
    return o.product


def _geomean(o: Outcomes, _params) -> np.ndarray:
    # Every span scored like one word: removes the length penalty altogether.
    return o.product ** (1.0 / o.n_words)


def _power_fit(o: Outcomes) -> tuple[float, float]:
    # product ** (a / len**b): a=1, b=0 is the product, a=1, b=1 the geometric mean. Nested
    # golden-section searches (b outside, shifted into the log-space search's positive range).
    def best_a(b: float) -> float:
        return fit_temperature(lambda a: log_loss(o.product ** (a / o.n_words ** b), o.correct), 0.05, 20.0)

    b = fit_temperature(lambda b1: log_loss(o.product ** (best_a(b1 - 1) / o.n_words ** (b1 - 1)), o.correct),
                        0.5, 4.0) - 1
    return best_a(b), round(b, 4)


def _power_apply(o: Outcomes, params: tuple[float, float]) -> np.ndarray:
    a, b = params
    return o.product ** (a / o.n_words ** b)


def _bucket_power_fit(o: Outcomes) -> list[float]:
    # product ** c_k, one exponent per length bucket (like a temperature per bucket, on the score).
    idx = length_buckets(o.n_words)
    return [fit_temperature(lambda c: log_loss(o.product[idx == k] ** c, o.correct[idx == k]), 0.05, 20.0)
            if (idx == k).any() else 1.0 for k in range(len(BUCKETS))]


def _bucket_power_apply(o: Outcomes, params: list[float]) -> np.ndarray:
    return o.product ** np.asarray(params)[length_buckets(o.n_words)]


RULES = {
    "product (current)": (lambda o: None, _product),
    "geometric mean": (lambda o: None, _geomean),
    "product^(a/len^b)": (_power_fit, _power_apply),
    "product^c per length bucket": (_bucket_power_fit, _bucket_power_apply),
    "logistic [logit product, ln len] (score_map)": (fit_score_map, lambda o, p: o.scores(p)),
}


def summary_row(name: str, r: RuleResult) -> str:
    co = r.crossfit_outcomes
    params = "-" if r.params is None else str([round(float(x), 3) for x in r.params])
    return (f"| {name} | {params} | {ece(r.after, r.fitted.correct):.4f} | {ece(r.crossfit, co.correct):.4f} | "
            f"{log_loss(r.after, r.fitted.correct):.4f} | {log_loss(r.crossfit, co.correct):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="data/models/default")
    ap.add_argument("--dev", default=str(ROOT.parent / "shared" / "data" / "conll2003" / "valid.txt"))
    ap.add_argument("--context", default="document")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the CPU is shared)")
    args = ap.parse_args()

    import torch

    from extract.model.load import load
    from training.conll import read_conll

    torch.set_num_threads(args.threads)
    loaded = load(args.model, "cpu", "fp32", args.threads)
    data = dev_predictions(loaded, read_conll(args.dev), args.context)
    labels, repair = loaded.labels, loaded.settings.get("repair", "drop")
    prepared: dict = {}  # the decode passes, shared by all rules
    results = {name: evaluate_rule(data, labels, repair, fit, apply, prepared) for name, (fit, apply) in RULES.items()}

    before = prepared["before"]
    print(f"model {args.model}, dev {args.dev}: {len(before.product)} predicted entities, "
          f"{100 * before.correct.mean():.1f}% exactly right; T fitted on entity log loss: {prepared['t']}; "
          f"before (T=1 product): ECE {ece(before.product, before.correct):.4f}, "
          f"log loss {log_loss(before.product, before.correct):.4f}\n")
    print("| rule (on top of T) | params | ECE after | ECE cross-fitted | log loss after | log loss cross-fitted |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(summary_row(name, r))
    for name, r in results.items():
        print(f"\n### {name}\n")
        print(length_markdown(length_table(r)))


if __name__ == "__main__":
    main()
