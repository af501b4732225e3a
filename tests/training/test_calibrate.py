"""Calibration: ECE by span length, the length-aware score map, and that decode applies it only
when a model's config.json asks for it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extract.text.labels import bio_labels
from extract.text.spans import DocProbs, decode, mapped_score
from training.calibrate import BUCKETS, Outcomes, by_length, ece, fit_score_map, length_buckets

LABELS = bio_labels()
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def synthetic(n: int, seed: int, length_effect: float) -> tuple[Outcomes, np.ndarray]:
    """Entities of 1..6 words whose true chance of being right is
    sigmoid(logit(score) + length_effect * ln(words)): 0 means the scores are calibrated, > 0 that
    long spans are under-rated, < 0 that they are over-rated. Returns the outcomes and true chances."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0.3, 0.999, n)
    words = rng.choice([1, 2, 3, 4, 5, 6], n, p=[0.5, 0.25, 0.1, 0.07, 0.05, 0.03])
    truth = _sigmoid(np.log(score / (1 - score)) + length_effect * np.log(words))
    correct = (rng.uniform(size=n) < truth).astype(float)
    return Outcomes(score, correct, words), truth


def test_length_buckets_are_1_2_3_and_4_plus():
    assert [BUCKETS[i] for i in length_buckets(np.array([1, 2, 3, 4, 9]))] == ["1", "2", "3", "4+", "4+"]


def test_ece_by_length_is_near_zero_for_calibrated_scores():
    o, _ = synthetic(40000, 0, 0.0)
    table = by_length(o.product, o.correct, o.n_words)
    assert sum(m["n"] for m in table.values()) == 40000
    for m in table.values():
        assert m["ece"] < 0.03 and abs(m["mean_score"] - m["accuracy"]) < 0.02


def test_overconfident_long_spans_are_found_and_the_fit_recovers_the_map():
    o, _ = synthetic(40000, 1, -1.0)  # the longer the span, the less often it is right than scored
    before = by_length(o.product, o.correct, o.n_words)
    assert before["1"]["ece"] < 0.03  # single words are calibrated ...
    assert before["4+"]["ece"] > 0.1 and before["4+"]["mean_score"] > before["4+"]["accuracy"]  # ... long not
    fitted = fit_score_map(o)
    assert fitted == pytest.approx([0.0, 1.0, -1.0], abs=0.1)  # the known answer
    after = by_length(o.scores(fitted), o.correct, o.n_words)
    assert after["4+"]["ece"] < 0.04 and after["1"]["ece"] < 0.03
    fresh, _ = synthetic(40000, 2, -1.0)  # and it holds on data it was not fitted on
    assert ece(fresh.scores(fitted), fresh.correct) < 0.5 * ece(fresh.product, fresh.correct)


def test_fit_score_map_needs_enough_entities_of_both_outcomes():
    o, _ = synthetic(100, 3, 0.0)
    assert fit_score_map(o) is None
    all_right = Outcomes(np.full(500, 0.9), np.ones(500), np.ones(500, dtype=np.int64))
    assert fit_score_map(all_right) is None


def random_doc(seed: int, n_words: int = 40) -> tuple[DocProbs, str]:
    rng = np.random.default_rng(seed)
    text = " ".join(f"w{i}" for i in range(n_words))
    starts = np.array([len(" ".join(f"w{j}" for j in range(i))) + (1 if i else 0) for i in range(n_words)])
    ends = starts + np.array([len(f"w{i}") for i in range(n_words)])
    logits = rng.normal(0, 3, (n_words, len(LABELS)))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return DocProbs(None, starts, ends, probs.astype(np.float32)), text


def test_without_score_map_decode_gives_exactly_the_product():
    for seed in range(5):
        doc, text = random_doc(seed)
        chosen = doc.probs.max(axis=1)
        ents = decode(doc, text, LABELS, "drop")
        assert ents and ents == decode(doc, text, LABELS, "drop", score_map=None)
        for e in ents:
            first = int(np.searchsorted(doc.word_starts, e["start"]))
            last = int(np.searchsorted(doc.word_starts, e["end"])) - 1
            assert e["score"] == float(np.prod(chosen[first:last + 1], dtype=np.float64))  # bit for bit


def test_decode_applies_the_score_map_as_calibration_fits_it():
    score_map = [-1.25, 1.24, 1.42]
    doc, text = random_doc(7, 200)
    plain = decode(doc, text, LABELS, "drop")
    mapped = decode(doc, text, LABELS, "drop", score_map=score_map)
    assert [(e["start"], e["end"]) for e in plain] == [(e["start"], e["end"]) for e in mapped]
    words = np.array([np.searchsorted(doc.word_starts, e["end"]) - np.searchsorted(doc.word_starts, e["start"])
                      for e in plain])
    assert words.max() >= 2  # long spans are in the test
    expected = Outcomes(np.array([e["score"] for e in plain]), np.zeros(len(plain)), words).scores(score_map)
    assert [e["score"] for e in mapped] == pytest.approx(list(expected), rel=1e-12)
    # c > 0 lifts long spans relative to one word of the same product
    assert mapped_score(0.8, 4, score_map) > mapped_score(0.8, 1, score_map)
    assert 0.0 < mapped_score(1.0, 1, score_map) < 1.0 and 0.0 < mapped_score(0.0, 9, score_map) < 1.0


def test_score_map_round_trips_through_config_json_and_load(tmp_path):
    from extract.model.load import load
    from tests.tiny import make_tiny_model

    score_map = [-1.257, 1.244, 1.417]
    path = make_tiny_model(tmp_path / "m", settings={"temperature": 1.03, "score_map": score_map})
    assert json.loads((path / "config.json").read_text())["ner_settings"]["score_map"] == score_map
    assert load(path, "cpu", "fp32", 1).settings["score_map"] == score_map


def _batch_job_scores(model_dir: Path, text: str) -> list[float]:
    from extract.job.entities import ShardProcessor
    from extract.core.job_config import ExtractConfig, ModelConfig
    from extract.core.types import Record

    cfg = ExtractConfig(runner="local", model=ModelConfig(path=str(model_dir), labels=("PER", "LOC", "ORG", "MISC")))
    proc = ShardProcessor(cfg, "unused", threads=1)
    feats = proc.features(text)
    out = proc.outcome(Record("d", text, "test"), feats, proc.predict([feats])[0])
    return out.rows["score"]


def test_a_model_without_score_map_scores_as_before_in_the_batch_job(tiny_model_dir):
    from extract.model.load import load
    from extract.model.predict import predict_probs

    text = "John Smith of New York Bank said in Germany the bank of new york said john smith"
    loaded = load(tiny_model_dir, "cpu", "fp32", 1)
    assert "score_map" not in loaded.settings
    probs = predict_probs(loaded, [text])[0]
    chosen = probs.probs.max(axis=1)
    expected = [float(np.prod(chosen[np.searchsorted(probs.word_starts, e["start"]):
                                     np.searchsorted(probs.word_starts, e["end"])], dtype=np.float64))
                for e in decode(probs, text, loaded.labels, loaded.settings["repair"])]
    assert expected and _batch_job_scores(tiny_model_dir, text) == pytest.approx(expected, rel=1e-6)


def test_the_batch_job_applies_a_stored_score_map(tmp_path):
    from tests.tiny import make_tiny_model

    text = "John Smith of New York Bank said in Germany the bank of new york said john smith"
    score_map = [-0.5, 1.3, 0.8]
    plain = make_tiny_model(tmp_path / "plain", seed=4)
    mapped = make_tiny_model(tmp_path / "mapped", seed=4, settings={"score_map": score_map})
    base = _batch_job_scores(plain, text)
    from extract.model.load import load
    from extract.model.predict import predict_probs

    loaded = load(plain, "cpu", "fp32", 1)
    probs = predict_probs(loaded, [text])[0]
    ents = decode(probs, text, loaded.labels, loaded.settings["repair"])
    words = [int(np.searchsorted(probs.word_starts, e["end"]) - np.searchsorted(probs.word_starts, e["start"]))
             for e in ents]
    assert base
    assert _batch_job_scores(mapped, text) == pytest.approx(
        [float(mapped_score(s, n, score_map)) for s, n in zip(base, words)], rel=1e-6)


def test_calibrate_reports_ece_by_length_end_to_end(tiny_model_dir):
    from extract.model.load import load
    from training.calibrate import calibrate
    from training.conll import read_conll

    cal = calibrate(load(tiny_model_dir, "cpu", "fp32", 1), read_conll(FIXTURE), "document")
    assert set(cal["by_length"]) == set(BUCKETS)
    assert sum(m["n"] for m in cal["by_length"].values()) == cal["entities"]
    assert cal["score_map"] is None and cal["score_rule"] == "product"  # far too few entities to fit a map
    for key in ("ece_before", "ece_after", "ece_after_crossfit", "entity_nll_after_crossfit"):
        assert 0.0 <= cal[key]
    json.dumps(cal)  # goes into metrics.json as is
