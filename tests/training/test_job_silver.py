"""A batch job's output as silver for distillation (data.silver_jobs)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
from tests.corpus import SMALL_TEXTS, run_small_job
import yaml

from extract.core import schema
from extract.text.labels import bio_labels
from training.__main__ import main as training_main

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"
TEXTS = SMALL_TEXTS
LABELS = bio_labels(("PER", "LOC", "ORG", "MISC"))


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir) -> Path:
    return run_small_job(tmp_path_factory.mktemp("jobsilver"), tiny_model_dir, TEXTS)


def job_entities(out: Path) -> list[dict]:
    return pads.dataset(str(out / "entities"), schema=schema.ENTITIES).to_table().to_pylist()


def test_spans_to_word_distributions_with_threshold():
    from extract.text.windows import encode
    from tests.tiny import tiny_tokenizer
    from training.job_silver import word_distributions

    text = "Angela Merkel visited New York and Bonn."
    enc = encode(text, tiny_tokenizer())
    s, e = enc.word_spans()
    words = [text[a:b] for a, b in zip(s, e)]
    ents = [{"start": 0, "end": 13, "label": "PER", "score": 0.9},
            {"start": 22, "end": 30, "label": "LOC", "score": 0.4},  # below 0.5: dropped, its words O
            {"start": 35, "end": 39, "label": "LOC", "score": 0.75},
            {"start": 7, "end": 13, "label": "ORG", "score": 0.99},  # overlaps PER: the first span keeps the word
            {"start": 0, "end": 6, "label": "DATE", "score": 0.99}]  # not a student type
    probs, used = word_distributions(s, e, ents, LABELS, min_score=0.5)
    assert used == 2 and probs.shape == (len(words), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    o = LABELS.index("O")
    expect = {"Angela": ("B-PER", 0.9), "Merkel": ("I-PER", 0.9), "visited": ("O", 1.0), "New": ("O", 1.0),
              "York": ("O", 1.0), "Bonn": ("B-LOC", 0.75), ".": ("O", 1.0)}
    for w, (tag, p) in expect.items():
        row = probs[words.index(w)]
        assert row[LABELS.index(tag)] == pytest.approx(p)
        assert row[o] == pytest.approx(1.0 if tag == "O" else 1 - p)
    # threshold 0 keeps the LOC at 0.4: "New" B-LOC, "York" I-LOC
    probs0, used0 = word_distributions(s, e, ents, LABELS, min_score=0.0)
    assert used0 == 3
    assert probs0[words.index("New"), LABELS.index("B-LOC")] == pytest.approx(0.4)
    assert probs0[words.index("York"), LABELS.index("I-LOC")] == pytest.approx(0.4)


def test_read_job_silver_rereads_texts_and_caps_docs(job, tiny_model_dir):
    from tests.tiny import tiny_tokenizer
    from training.job_silver import read_job_silver

    ents = job_entities(job)
    assert ents, "the tiny model should find something"
    texts, starts, probs, facts = read_job_silver([str(job)], LABELS, tiny_tokenizer(), min_score=0.0)
    assert sorted(texts) == sorted(v for k, v in TEXTS.items() if k != "d3")  # ok documents only, re-read
    assert facts["docs"] == 4 and facts["entities"] == len(ents) and facts["entities_below_min_score"] == 0
    for t, s, p in zip(texts, starts, probs):
        assert p.shape == (len(s), len(LABELS))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    # the cap takes the first documents in (shard, index) order, like teacher silver's first-N
    capped, _, _, f2 = read_job_silver([str(job)], LABELS, tiny_tokenizer(), min_score=0.0, max_docs=2)
    assert capped == [TEXTS["d1"], TEXTS["d2"]] and f2["docs"] == 2


def test_job_output_as_silver_for_distill(job, tmp_path, tiny_model_dir):
    ents = job_entities(job)
    scores = sorted(e["score"] for e in ents)
    cut = scores[len(scores) // 2] if len(scores) > 1 else 0.0  # some entities kept, some dropped
    cap = 3  # d1, d2, d4: the first three ok documents
    docs = pads.dataset(str(job / "docs"), schema=schema.DOCS).to_table().to_pylist()
    first = [d["doc_id"] for d in sorted((d for d in docs if d["status"] == "ok"),
                                         key=lambda d: (d["shard"], d["index"]))][:cap]
    assert first == ["d1", "d2", "d4"]
    kept = [e for e in ents if e["doc_id"] in first and e["score"] >= cut]
    below = [e for e in ents if e["doc_id"] in first and e["score"] < cut]

    cfg = {"data": {"train": str(FIXTURE), "dev": str(FIXTURE), "silver_jobs": [str(job)],
                    "silver_jobs_min_score": float(cut), "silver_max_docs": cap},
           "model": {"backbone": str(tiny_model_dir), "max_length": 32, "stride": 8, "layers": [1]},
           "optim": {"lr": "1e-3", "batch_size": 2, "epochs": 1, "max_steps": 3, "warmup": 0.0},
           "run": {"output": str(tmp_path / "student"), "eval_every": 3, "log_every": 1, "device": "cpu",
                   "threads": 1, "seed": 3},
           "distill": {"init_from": str(tiny_model_dir), "temperature": 2.0}}
    p = tmp_path / "distill.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert training_main(["distill", "--config", str(p)]) == 0
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    assert summary["steps"] == 3
    assert summary["job_silver_docs"] == cap
    assert summary["job_silver_entities"] == len(kept)
    assert summary["job_silver"]["entities_below_min_score"] == len(below)
    assert summary["job_silver_windows"] >= cap and summary["silver_windows"] == summary["job_silver_windows"]
    losses = [json.loads(l)["loss"] for l in (tmp_path / "student" / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in l]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


def test_silver_jobs_config_errors(job, tmp_path, tiny_model_dir, capsys):
    base = {"data": {"train": str(FIXTURE), "dev": str(FIXTURE), "silver_jobs": [str(job)]},
            "model": {"backbone": str(tiny_model_dir)}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(base))
    assert training_main(["finetune", "--config", str(p)]) == 2
    assert "no distill section" in capsys.readouterr().err
    base["distill"] = {"temperature": 2.0}
    base["data"]["silver_jobs"] = [str(tmp_path)]
    p.write_text(yaml.safe_dump(base))
    assert training_main(["distill", "--config", str(p)]) == 2
    assert "has no plan.json" in capsys.readouterr().err
