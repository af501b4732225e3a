"""`python -m extract quality`: precision / recall with Wilson intervals from a synthetic Label Studio export
with known agreements; the history file; the report section."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.core import schema
from extract.__main__ import main
from extract.monitor.quality import wilson

TEXTS = {"d0": "Alice met Bob in Paris.", "d1": "IBM in Rome", "d2": "Nothing here", "d3": "Bonn", "d9": "Al ok"}
# the job's entities (d9 is not in the job: its predicted spans come from the task)
JOB = {"d0": [(0, 5, "PER"), (10, 13, "PER"), (17, 22, "LOC")], "d1": [(0, 3, "ORG")], "d2": [], "d3": [(0, 4, "LOC")]}
GOLD = {"d0": [(0, 5, "PER"), (10, 13, "ORG"), (17, 22, "LOC")], "d1": [(0, 3, "ORG"), (7, 11, "LOC")],
        "d9": [(0, 2, "PER")]}
EXPECTED = {"PER": (2, 3, 2), "LOC": (1, 1, 2), "ORG": (1, 1, 2)}  # (TP, predicted, annotated)


def fake_out(root: Path) -> Path:
    out = root / "run"
    (out / "entities").mkdir(parents=True)
    (out / "docs").mkdir()
    ents = [(d, *s) for d, spans in JOB.items() for s in spans]
    pq.write_table(pa.table({"doc_id": [e[0] for e in ents], "label": [e[3] for e in ents],
                             "text": [TEXTS[e[0]][e[1]:e[2]] for e in ents], "start": [e[1] for e in ents],
                             "end": [e[2] for e in ents], "score": [0.9] * len(ents), "model": ["m"] * len(ents)},
                            schema=schema.ENTITIES), out / "entities" / "part-00000.parquet")
    ids = list(JOB)
    n = len(ids)
    pq.write_table(pa.table({"doc_id": ids, "status": ["ok"] * n, "error": [None] * n, "n_chars": [10] * n,
                             "n_words": [3] * n, "n_tokens": [3] * n, "n_entities": [len(JOB[d]) for d in ids],
                             "source": ["f"] * n, "warning": [None] * n, "shard": ["00000"] * n,
                             "index": list(range(n))}, schema=schema.DOCS), out / "docs" / "part-00000.parquet")
    (out / "run.json").write_text(json.dumps({"config": {"model": {"labels": ["LOC", "ORG", "PER"]}},
                                              "model": {"id": "tiny-v1", "path": "/nowhere"}}))
    return out


def result(doc: str, spans) -> list[dict]:
    return [{"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": TEXTS[doc][s:e], "labels": [l]}} for s, e, l in spans]


def export(root: Path, review_scores: bool = False) -> Path:
    tasks = []
    for doc in ("d0", "d1", "d2", "d3", "d9"):
        spans = JOB.get(doc, [(0, 2, "PER")] if doc == "d9" else [])
        task = {"id": len(tasks) + 1, "data": {"text": TEXTS[doc], "doc_id": doc},
                "predictions": [{"model_version": "tiny-v1", "score": 0.5, "result": result(doc, spans)}]}
        if review_scores:
            task["data"]["review_score"] = 0.5
        if doc in GOLD:  # an older annotation first: the latest one counts
            task["annotations"] = [{"id": 1, "updated_at": "2026-01-01", "result": []},
                                   {"id": 2, "updated_at": "2026-01-02", "result": result(doc, GOLD[doc])}]
        elif doc == "d3":
            task["annotations"] = [{"id": 3, "was_cancelled": True, "result": []}]
        tasks.append(task)
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_wilson_known_values_and_zero_counts():
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(0.7225, abs=1e-4) and hi == 1.0


def test_quality_numbers_intervals_and_history(tmp_path, capsys):
    out, exp = fake_out(tmp_path), export(tmp_path)
    assert main(["quality", str(out), "--export", str(exp)]) == 0
    q = json.loads((out / "quality.json").read_text())
    assert q["documents"] == 3 and q["model"] == "tiny-v1" and q["computed_at"]
    assert q["counts"]["tasks"] == 5 and q["counts"]["unreviewed"] == 2  # d2 unannotated, d3 cancelled
    assert q["predicted_from"] == {"job": 2, "export": 1}
    for label, (tp, pred, gold) in EXPECTED.items():
        v = q["labels"][label]
        assert (v["tp"], v["predicted"], v["annotated"]) == (tp, pred, gold)
        assert v["precision"] == pytest.approx(tp / pred) and v["recall"] == pytest.approx(tp / gold)
        assert v["precision_ci"] == pytest.approx(list(wilson(tp, pred)), abs=1e-6)
        assert v["precision_ci"][0] <= v["precision"] <= v["precision_ci"][1]
        assert v["recall_ci"][0] <= v["recall"] <= v["recall_ci"][1]
    m = q["micro"]
    assert (m["tp"], m["predicted"], m["annotated"]) == (4, 5, 6)
    assert m["precision"] == pytest.approx(0.8) and m["recall"] == pytest.approx(4 / 6)
    assert m["precision_ci"] == pytest.approx([0.3755, 0.9638], abs=1e-4)  # Wilson 4/5
    assert "not known" in q["sampling_note"]
    history = tmp_path / "quality_history.jsonl"  # next to OUT
    assert len(history.read_text().splitlines()) == 1
    assert "PER: precision 0.667" in capsys.readouterr().out

    # the tasks' own predictions instead: d0's are the same, so the same numbers; a second history line
    assert main(["quality", str(out), "--export", str(exp), "--predicted", "export"]) == 0
    q2 = json.loads((out / "quality.json").read_text())
    assert q2["predicted_from"] == {"job": 0, "export": 3} and q2["micro"] == q["micro"]
    rows = [json.loads(l) for l in history.read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["micro"]["precision"] == pytest.approx(0.8)


def test_lowest_confidence_sample_is_flagged_and_history_flag(tmp_path):
    out, exp = fake_out(tmp_path), export(tmp_path, review_scores=True)
    hist = tmp_path / "h" / "q.jsonl"
    assert main(["quality", str(out), "--export", str(exp), "--history", str(hist)]) == 0
    q = json.loads((out / "quality.json").read_text())
    assert q["strategy"] == "lowest-confidence" and "understate" in q["sampling_note"]
    assert len(hist.read_text().splitlines()) == 1 and not (tmp_path / "quality_history.jsonl").exists()


def test_report_shows_quality_section_with_plot(tmp_path):
    out, exp = fake_out(tmp_path), export(tmp_path)
    assert main(["report", str(out)]) == 0
    assert '<section id="quality">' not in (out / "report.html").read_text()
    assert main(["quality", str(out), "--export", str(exp)]) == 0
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    section = page[page.index('<section id="quality">'):]
    assert "Quality on reviewed samples" in section and "<table>" in section and "<img" not in section
    assert "estimates are for the reviewed sample" in section
    assert main(["quality", str(out), "--export", str(exp)]) == 0  # second history entry: the plot appears
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    section = page[page.index('<section id="quality">'):]
    assert "precision on reviewed samples over time" not in section  # the title is inside the PNG
    assert section.count("<img") == 1 and "0.800" in section
    data = json.loads((out / "report.json").read_text())
    assert data["quality"]["micro"]["precision"] == pytest.approx(0.8) and len(data["quality"]["history_rows"]) == 2


def test_quality_errors_exit_2(tmp_path, capsys):
    exp = export(tmp_path)
    assert main(["quality", str(tmp_path / "missing"), "--export", str(exp)]) == 2
    assert "not found" in capsys.readouterr().err
