"""Review round trip: job output -> Label Studio tasks -> (simulated) Label Studio export ->
corrections file -> fine-tuning that reads the corrections."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from tests.corpus import SMALL_TEXTS, run_small_job
import yaml

from extract.core import schema
from extract.__main__ import main as extract_main
from training.__main__ import main as training_main

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"
TEXTS = {**SMALL_TEXTS, "d6": "Paris and London agreed; the United Nations in New York said nothing."}


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir) -> Path:
    return run_small_job(tmp_path_factory.mktemp("review"), tiny_model_dir, TEXTS)


def entities(out: Path) -> dict[str, list[dict]]:
    by_doc: dict[str, list[dict]] = {}
    for e in pads.dataset(str(out / "entities"), schema=schema.ENTITIES).to_table().to_pylist():
        by_doc.setdefault(e["doc_id"], []).append(e)
    return by_doc


def review(out: Path, dest: Path, *args: str) -> list[dict]:
    assert extract_main(["review", str(out), "--out", str(dest), *args]) == 0
    return json.loads(dest.read_text(encoding="utf-8"))


def test_lowest_confidence_tasks_carry_the_job_entities(job, tmp_path):
    ents = entities(job)
    assert len(ents) >= 3, "the tiny model should find something in most documents"
    docs = pads.dataset(str(job / "docs"), schema=schema.DOCS).to_table().to_pylist()
    assert len({d["shard"] for d in docs}) > 1  # texts are re-read from several shards
    tasks = review(job, tmp_path / "t.json", "--n", "3", "--strategy", "lowest-confidence")
    assert len(tasks) == 3
    mins = [min(e["score"] for e in ents[t["data"]["doc_id"]]) for t in tasks]
    assert mins == sorted(mins)
    everyone = sorted(min(e["score"] for e in v) for v in ents.values())
    assert mins == pytest.approx(everyone[:3], abs=1e-6)
    for t in tasks:
        doc_id, text = t["data"]["doc_id"], t["data"]["text"]
        assert text == TEXTS[doc_id]
        (pred,) = t["predictions"]
        assert pred["model_version"].startswith("model@sha256:")
        assert pred["score"] == pytest.approx(min(e["score"] for e in ents[doc_id]), abs=1e-6)
        got = {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in pred["result"]}
        assert got == {(e["start"], e["end"], e["label"]) for e in ents[doc_id]}
        for r in pred["result"]:
            assert (r["from_name"], r["to_name"], r["type"]) == ("label", "text", "labels")
            assert text[r["value"]["start"]:r["value"]["end"]] == r["value"]["text"]
    xml = (tmp_path / "t.xml").read_text()
    assert xml.startswith('<View><Labels name="label" toName="text"><Label value="PER"/>')
    assert '<Text name="text" value="$text"/></View>' in xml


def test_random_is_seeded_and_skips_empty_documents(job, tmp_path):
    a = [t["data"]["doc_id"]
         for t in review(job, tmp_path / "a.json", "--n", "3", "--strategy", "random", "--seed", "1")]
    b = [t["data"]["doc_id"]
         for t in review(job, tmp_path / "b.json", "--n", "3", "--strategy", "random", "--seed", "1")]
    assert a == b and len(set(a)) == 3
    every = [t["data"]["doc_id"] for t in review(job, tmp_path / "c.json", "--n", "50", "--strategy", "random")]
    assert sorted(every) == ["d1", "d2", "d4", "d5", "d6"]  # d3 is empty


def test_disagreement_ranks_by_jaccard_distance(job, tmp_path, tiny_model_dir):
    from tests.tiny import make_tiny_model

    same = review(job, tmp_path / "s.json", "--n", "10", "--strategy", "disagreement", "--teacher", str(tiny_model_dir))
    assert {t["data"]["review_score"] for t in same} == {0.0}  # the job's own model agrees with itself
    other = make_tiny_model(tmp_path / "other", seed=7)
    tasks = review(job, tmp_path / "d.json", "--n", "10", "--strategy", "disagreement", "--teacher", str(other))
    scores = [t["data"]["review_score"] for t in tasks]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    from extract.api import Extractor
    from extract.monitor.review import jaccard_distance

    ner = Extractor.from_pretrained(str(other), labels=None)
    ents = entities(job)
    for t in tasks:
        d = t["data"]["doc_id"]
        theirs = {(e.start, e.end, e.label) for e in ner(TEXTS[d])}
        ours = {(e["start"], e["end"], e["label"]) for e in ents.get(d, [])}
        assert t["data"]["review_score"] == pytest.approx(jaccard_distance(ours, theirs), abs=1e-6)


def test_review_errors_exit_2(job, tmp_path, capsys):
    assert extract_main(["review", str(job), "--strategy", "disagreement", "--out", str(tmp_path / "x.json")]) == 2
    assert "needs --teacher" in capsys.readouterr().err
    assert extract_main(["review", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.json")]) == 2


def test_import_fixes_utf16_offsets_and_skips_unreviewed():
    from training.corrections import from_label_studio

    text = "😀 Bonn and 😀 Paris"
    py = text.index("Paris")
    tasks = [
        {"data": {"text": text, "doc_id": "a"}, "annotations": [
            {"id": 1, "was_cancelled": True, "result": []},
            {"id": 2, "result": [
                {"type": "labels", "value": {"start": 2, "end": 6, "text": "Bonn", "labels": ["LOC"]}},
                {"type": "labels", "value": {"start": py + 2, "end": py + 7, "text": "Paris", "labels": ["LOC"]}},
                {"type": "labels", "value": {"start": 0, "end": 3, "text": "nowhere", "labels": ["PER"]}}]}]},
        {"data": {"text": "x", "doc_id": "b"}, "annotations": [], "predictions": [{"result": []}]},
        {"data": {"text": "Nothing here.", "doc_id": "c"}, "annotations": [{"id": 3, "result": []}]},
    ]
    records, facts = from_label_studio(tasks)
    assert [r["doc_id"] for r in records] == ["a", "c"]
    assert records[0]["spans"] == [[2, 6, "LOC"], [py, py + 5, "LOC"]]
    assert records[1]["spans"] == []
    assert facts == {"tasks": 3, "corrected": 2, "unannotated": 1, "spans": 2, "fixed_offsets": 1, "dropped_spans": 1}


def test_word_tags_follow_the_silver_alignment():
    from tests.tiny import tiny_tokenizer
    from extract.text.windows import encode
    from training.corrections import word_tags_from_spans

    text = "Angela Merkel visited U.S. troops."
    enc = encode(text, tiny_tokenizer())
    s, e = enc.word_spans()
    words = [text[a:b] for a, b in zip(s, e)]
    tags = word_tags_from_spans(s, e, [[0, 13, "PER"], [22, 26, "LOC"], [27, 33, "FOO"]], ("PER", "LOC"))
    got = dict(zip(words, tags))
    assert (got["Angela"], got["Merkel"], got["visited"]) == ("B-PER", "I-PER", "O")
    loc = [t for w, t in zip(words, tags) if w in ("U", ".", "S")][:4]
    assert loc[0] == "B-LOC" and set(loc[1:]) == {"I-LOC"}
    assert got["troops"] == "O"  # FOO is not a trained type


def test_round_trip_review_export_corrections_finetune(job, tmp_path, tiny_model_dir):
    tasks = review(job, tmp_path / "tasks.json", "--n", "3", "--strategy", "lowest-confidence")
    # Label Studio export: annotations = the predictions with one label changed; one task not reviewed.
    export, changed = [], None
    for i, t in enumerate(tasks):
        task = {"id": i + 1, "data": t["data"], "predictions": t["predictions"], "annotations": []}
        if i < 2:
            result = copy.deepcopy(t["predictions"][0]["result"])
            if changed is None and result:
                result[0]["value"]["labels"] = ["ORG" if result[0]["value"]["labels"] != ["ORG"] else "PER"]
                changed = (t["data"]["doc_id"], result[0]["value"]["start"], result[0]["value"]["labels"][0])
            task["annotations"] = [{"id": 10 + i, "was_cancelled": False, "result": result,
                                    "created_at": "2026-01-01T00:00:00Z"}]
        export.append(task)
    assert changed is not None
    (tmp_path / "export.json").write_text(json.dumps(export), encoding="utf-8")
    corr = tmp_path / "corrections.jsonl"
    assert training_main(["corrections", str(tmp_path / "export.json"), "--out", str(corr)]) == 0
    rows = [json.loads(l) for l in corr.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and all(r["text"] == TEXTS[r["doc_id"]] for r in rows)
    spans = {(s[0], s[2]) for r in rows if r["doc_id"] == changed[0] for s in r["spans"]}
    assert (changed[1], changed[2]) in spans

    cfg = {"data": {"train": str(FIXTURE), "dev": str(FIXTURE), "context": "document",
                    "corrections": [str(corr)], "corrections_weight": 2.0},
           "model": {"backbone": str(tiny_model_dir), "max_length": 32, "stride": 8, "dropout": 0.0},
           "optim": {"lr": "1e-3", "batch_size": 2, "epochs": 1, "max_steps": 3, "warmup": 0.0},
           "run": {"output": str(tmp_path / "run"), "eval_every": 3, "log_every": 1, "device": "cpu",
                   "threads": 1, "seed": 3}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert training_main(["finetune", "--config", str(tmp_path / "cfg.yaml")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["correction_docs"] == 2
    assert summary["correction_windows"] >= 4 and summary["correction_windows"] % 2 == 0  # weight 2: twice each
    assert summary["silver_windows"] == 0 and summary["steps"] == 3

    assert training_main(["finetune", "--config", str(tmp_path / "cfg.yaml"),
                          "--set", f"data.corrections=[{tmp_path / 'missing.jsonl'}]"]) == 2
