"""What the service served, fed back into training, the whole way: serve (the real CLI, the log on)
-> `extract show` and `extract review` on the log -> a (simulated) Label Studio export ->
`extract quality` -> `training corrections` -> three distillation steps that read the log as job
silver (data.silver_jobs) and the corrections. A log kept as hashes is refused with a clear error."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import yaml

from extract.__main__ import main as extract_main
from extract.core import schema
from extract.serve.log import ServeLog
from tests.serve.test_serve import Server, post
from training.__main__ import main as training_main

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"
TEXTS = ["John Smith of Germany said in New York.", "Reuters reported from Bonn on Monday.",
         "Paris and London agreed; the United Nations in New York said nothing.",
         "Angela Merkel met Emmanuel Macron in Berlin.", "the bank of new york said reuters", "   "]


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, list]]:
    """The log of a service that answered TEXTS in two requests; doc_id -> text; doc_id -> entities."""
    log = tmp_path_factory.mktemp("served_log")
    srv = Server(tiny_model_dir, f"serve.log.path={log}", "serve.log.rotate_seconds=3600")
    try:
        answers = [post(srv.url, {"texts": TEXTS[:3]}), post(srv.url, {"texts": TEXTS[3:]})]
    finally:
        assert srv.stop() == 0  # SIGTERM: the buffered rows are written as the last part
    assert [a[0] for a in answers] == [200, 200]
    docs = pads.dataset(str(log / "docs"), schema=schema.DOCS).to_table().to_pylist()
    assert len(docs) == len(TEXTS)
    stored = pads.dataset(str(log / "texts")).to_table().to_pydict()
    texts = dict(zip(stored["doc_id"], stored["text"]))
    assert sorted(texts.values()) == sorted(TEXTS)
    by_doc: dict[str, list] = {}
    for e in pads.dataset(str(log / "entities"), schema=schema.ENTITIES).to_table().to_pylist():
        by_doc.setdefault(e["doc_id"], []).append(e)
    served_ents = [e for a in answers for r in a[2]["results"] for e in r]
    assert sum(map(len, by_doc.values())) == len(served_ents) > 0  # every answered entity is in the log
    return log, texts, by_doc


def test_served_entities_equal_the_batch_jobs_parquet(served, tmp_path, tiny_model_dir):
    """One code path: the batch job over the texts the service answered writes the same entities,
    offsets and scores as the service logged."""
    from tests.helpers import common, run_cli, tables

    log, texts, by_doc = served
    src = tmp_path / "served.jsonl"
    src.write_text("".join(json.dumps({"id": d, "text": t}) + "\n" for d, t in texts.items()), encoding="utf-8")
    assert run_cli(*common(tiny_model_dir, tmp_path / "job", "local"), "--set", f"input.path={src}",
                   "--set", "input.text_columns=[text]") == 0
    ents, _ = tables(tmp_path / "job")

    def rows(found):
        return sorted((e["doc_id"], e["label"], e["start"], e["end"], round(e["score"], 5)) for e in found)

    assert rows(ents.to_pylist()) == rows(e for found in by_doc.values() for e in found) != []


def test_show_reads_the_served_texts(served, tmp_path):
    log, texts, by_doc = served
    doc_id = max(by_doc, key=lambda d: len(by_doc[d]))
    page = tmp_path / "show.html"
    assert extract_main(["show", str(log), "--ids", doc_id, "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert doc_id in html and "do not match the input text" not in html
    first = by_doc[doc_id][0]
    assert first["text"].split()[0] in html


def test_served_log_to_review_to_corrections_to_three_distill_steps(served, tmp_path, tiny_model_dir):
    log, texts, by_doc = served
    tasks_path = tmp_path / "tasks.json"
    assert extract_main(["review", str(log), "--n", "3", "--strategy", "lowest-confidence",
                         "--out", str(tasks_path)]) == 0
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    assert 1 <= len(tasks) <= 3
    for t in tasks:  # the served text and the served entities, as the log holds them
        assert t["data"]["text"] == texts[t["data"]["doc_id"]]
        spans = {(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
                 for r in t["predictions"][0]["result"]}
        assert spans == {(e["start"], e["end"], e["label"]) for e in by_doc[t["data"]["doc_id"]]}
    # The annotator relabels one span of the first task and accepts the others.
    export, changed = [], None
    for i, t in enumerate(tasks):
        result = copy.deepcopy(t["predictions"][0]["result"])
        if changed is None and result:
            result[0]["value"]["labels"] = ["ORG" if result[0]["value"]["labels"] != ["ORG"] else "PER"]
            changed = (t["data"]["doc_id"], result[0]["value"]["start"], result[0]["value"]["labels"][0])
        export.append({"id": i + 1, "data": t["data"], "predictions": t["predictions"],
                       "annotations": [{"id": 10 + i, "was_cancelled": False, "result": result,
                                        "created_at": "2026-01-01T00:00:00Z"}]})
    assert changed is not None
    export_path = tmp_path / "export.json"
    export_path.write_text(json.dumps(export), encoding="utf-8")

    assert extract_main(["quality", str(log), "--export", str(export_path),
                         "--history", str(tmp_path / "history.jsonl")]) == 0
    quality = json.loads((log / "quality.json").read_text())
    assert quality["counts"]["reviewed"] == len(tasks) and quality["predicted_from"]["job"] == len(tasks)
    assert quality["micro"]["tp"] == quality["micro"]["predicted"] - 1  # the relabelled span is the one miss

    corr = tmp_path / "corrections.jsonl"
    assert training_main(["corrections", str(export_path), "--out", str(corr)]) == 0
    rows = [json.loads(line) for line in corr.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(tasks) and all(r["text"] == texts[r["doc_id"]] for r in rows)
    assert (changed[1], changed[2]) in {(s[0], s[2]) for r in rows if r["doc_id"] == changed[0] for s in r["spans"]}

    cfg = {"data": {"train": str(FIXTURE), "dev": str(FIXTURE), "silver_jobs": [str(log)],
                    "silver_jobs_min_score": 0.0, "corrections": [str(corr)]},
           "model": {"backbone": str(tiny_model_dir), "max_length": 32, "stride": 8, "layers": [1]},
           "optim": {"lr": "1e-3", "batch_size": 2, "epochs": 1, "max_steps": 3, "warmup": 0.0},
           "run": {"output": str(tmp_path / "student"), "eval_every": 3, "log_every": 1, "device": "cpu",
                   "threads": 1, "seed": 3},
           "distill": {"init_from": str(tiny_model_dir), "temperature": 2.0}}
    (tmp_path / "distill.yaml").write_text(yaml.safe_dump(cfg))
    assert training_main(["distill", "--config", str(tmp_path / "distill.yaml")]) == 0
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    ok_docs = sum(1 for t in TEXTS if t.strip())
    assert summary["steps"] == 3 and summary["job_silver_docs"] == ok_docs
    assert summary["job_silver_entities"] == sum(map(len, by_doc.values()))
    assert summary["correction_docs"] == len(tasks)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "student" / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


def test_a_hashed_log_is_refused_with_the_reason(tmp_path, capsys):
    log = ServeLog(str(tmp_path / "hashed"), "hash", model_id="m",
                   run_info={"config": {"model": {"labels": ["PER", "LOC", "ORG"]}}})
    text = "John Smith met Reuters in Bonn."
    log.add([("r1", 0, text, None)], [[{"label": "PER", "text": "John Smith", "start": 0, "end": 10, "score": 0.4}]])
    log.flush()
    assert extract_main(["review", str(tmp_path / "hashed"), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "serve.log.text: hash" in err and "serve.log.text: full" in err
    assert extract_main(["show", str(tmp_path / "hashed"), "--sample", "1"]) == 2
    assert "serve.log.text: hash" in capsys.readouterr().err
