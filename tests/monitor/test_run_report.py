"""`python -m extract report` and `python -m extract show` through the CLI, on a tiny-model run of the
bundled sample and on small synthetic output folders."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.core import schema
from extract.__main__ import main
from extract.monitor.run_report import psi

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "reuters_sample.jsonl"
SECTIONS = ["documents", "entities", "confidence", "throughput", "top-entities", "drift"]


def sample_texts() -> dict[str, str]:
    out = {}
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out[d["id"]] = "\n\n".join(x for x in (d["title"], d["body"]) if x)
    return out


@pytest.fixture(scope="module")
def sample_run(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    code = main(["run", "--config", str(ROOT / "configs" / "extract.yaml"), "--show", "0",
                 "--set", f"model.path={tiny_model_dir}", "--set", f"output.path={out}", "--set", "runner=local",
                 "--set", "inference.threads=1", "--set", "show_progress=false",
                 "--set", "model.labels=[PER, LOC, ORG, MISC]", "--set", "input.shard_bytes=40000"])
    assert code == 0
    return out


def fake_run(out: Path, labels: list[str], scores: list[float], words: int = 1000,
             model_path: str | None = None) -> Path:
    """An output folder with the tables, stats and run.json of a run (no model, no input)."""
    n = len(labels)
    (out / "entities").mkdir(parents=True)
    (out / "docs").mkdir()
    (out / "stats").mkdir()
    pq.write_table(pa.table({"doc_id": ["d0"] * n, "label": labels, "text": [f"e{i % 7}" for i in range(n)],
                             "start": list(range(n)), "end": [i + 1 for i in range(n)], "score": scores,
                             "model": ["m"] * n}, schema=schema.ENTITIES), out / "entities" / "part-00000.parquet")
    pq.write_table(pa.table({"doc_id": ["d0", "d1", "d2"], "status": ["ok", "error", "skipped"],
                             "error": [None, "malformed JSON: x", "duplicate id, first seen at f@0"],
                             "n_chars": [5 * words, 0, 0], "n_words": [words, 0, 0], "n_tokens": [words, 0, 0],
                             "n_entities": [n, 0, 0], "source": ["f@0", "f@9", "f@20"], "warning": [None] * 3,
                             "shard": ["00000"] * 3, "index": [0, 1, 2]}, schema=schema.DOCS),
                   out / "docs" / "part-00000.parquet")
    (out / "stats" / "part-00000.json").write_text(json.dumps(
        {"shard": "00000", "docs": 3, "ok": 1, "words": words, "entities": n, "seconds": 2.0, "finished_at": 1.7e9}))
    config = {"model": {"labels": sorted(set(labels)), "path": model_path}}
    (out / "run.json").write_text(json.dumps({"config": config, "model": {"path": model_path}}))
    return out


def report(out: Path, *extra: str) -> dict:
    assert main(["report", str(out), *extra]) == 0
    html_out = Path(extra[extra.index("--out") + 1]) if "--out" in extra else out / "report.html"
    assert html_out.is_file()
    return json.loads(html_out.with_suffix(".json").read_text())


def test_report_page_sections_images_and_numbers(sample_run):
    data = report(sample_run)
    page = (sample_run / "report.html").read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    for title in ("Documents by status and error reason", "Entities by label and per 1,000 words",
                  "Confidence histograms per label", "Throughput over time per shard", "Top entities per label",
                  "Drift against the reference"):
        assert title in page
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 8
    import base64

    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "<table>" in page
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from elsewhere
    run = json.loads((sample_run / "run.json").read_text())
    assert data["documents"] == run["documents"] and data["entities"] == run["entities"]
    assert sum(data["confidence"]["all"]) == run["entities"]
    assert sum(sum(v) for v in data["confidence"]["by_label"].values()) == run["entities"]
    assert len(data["throughput"]["shards"]) == 4
    assert data["throughput"]["shards"][-1]["cum_docs"] == run["documents"]
    assert "PSI < 0.1 stable" in page.replace("&lt;", "<")
    # The tiny model has no metrics.json: no dev reference, said so.
    assert data["drift"]["reference"]["kind"] == "none"


def test_psi_of_a_run_against_itself_is_zero(sample_run, tmp_path):
    data = report(sample_run, "--reference", str(sample_run), "--out", str(tmp_path / "self.html"))
    d = data["drift"]
    assert d["reference"]["kind"] == "run"
    assert d["label_mix"]["psi"] == pytest.approx(0.0, abs=1e-9) and d["label_mix"]["flag"] == "stable"
    assert d["confidence"]["psi"] == pytest.approx(0.0, abs=1e-9) and d["confidence"]["flag"] == "stable"
    assert all(x["ratio"] == pytest.approx(1.0) for x in d["rates"].values() if x["ratio"] is not None)
    assert d["verdict"] == "stable"
    assert (tmp_path / "self.json").is_file() and not (sample_run / "self.json").exists()


def test_psi_is_large_for_very_different_label_mixes(tmp_path):
    a = fake_run(tmp_path / "a", ["PER"] * 80 + ["LOC"] * 10 + ["ORG"] * 10, [0.95] * 100)
    b = fake_run(tmp_path / "b", ["PER"] * 5 + ["LOC"] * 5 + ["ORG"] * 90, [0.35] * 100)
    d = report(b, "--reference", str(a))["drift"]
    assert d["label_mix"]["psi"] > 1.0 and d["label_mix"]["flag"] == "drift"
    assert d["confidence"]["psi"] > 1.0 and d["confidence"]["flag"] == "drift"
    assert d["rates"]["ORG"]["ratio"] == pytest.approx(9.0) and d["rates"]["ORG"]["flag"] == "drift"
    assert d["verdict"] == "drift"
    data = json.loads((b / "report.json").read_text())
    assert data["by_status"] == {"ok": 1, "empty": 0, "error": 1, "skipped": 1}
    assert data["error_reasons"] == {"malformed JSON": 1, "duplicate id, first seen at f@0": 1}
    assert data["top_entities"]["ORG"][0][1] >= data["top_entities"]["ORG"][-1][1]
    assert psi([1, 1, 1], [1, 1, 1]) == 0.0 and psi([10, 0], [0, 10]) > 5


def test_default_reference_is_the_models_dev_data(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "metrics.json").write_text(json.dumps(
        {"dev": {"words": 10000, "per_type": {"PER": {"support": 100}, "LOC": {"support": 100},
                                              "ORG": {"support": 100}, "MISC": {"support": 500}}}}))
    run = fake_run(tmp_path / "run", ["PER"] * 10 + ["LOC"] * 10 + ["ORG"] * 10, [0.9] * 30, words=3000,
                   model_path=str(model))
    d = report(run)["drift"]
    assert d["reference"]["kind"] == "model dev data"
    assert d["label_mix"]["psi"] == pytest.approx(0.0, abs=1e-9)  # MISC is not written by this run: left out
    assert d["rates"]["PER"] == {"per_1k_words": 3.33, "reference_per_1k_words": 10.0, "ratio": 0.333, "flag": "drift"}
    assert d["confidence"]["psi"] is None and "no dev confidence distribution" in d["confidence"]["note"]
    assert "no dev confidence distribution" in (run / "report.html").read_text()


MARK = re.compile(r'<mark class="entity"[^>]*>(.*?)<span[^>]*>(.*?)</span>\s*</mark>', re.S)


def test_show_renders_chosen_documents_with_displacy(sample_run, tmp_path):
    docs = pq.read_table(sample_run / "docs").to_pylist()
    ents = pq.read_table(sample_run / "entities").to_pylist()
    texts = sample_texts()
    with_ents = [d["doc_id"] for d in sorted(docs, key=lambda d: -d["n_entities"])][:3]
    page_path = tmp_path / "show.html"
    assert main(["show", str(sample_run), "--ids", *with_ents, "--out", str(page_path)]) == 0
    page = page_path.read_text()
    assert 'class="entities"' in page and page.count('class="entities"') == 3  # displaCy's ent markup
    for doc_id in with_ents:
        assert html.escape(doc_id) in page
    marks = MARK.findall(page)
    expected = sorted((e["text"], e["label"], f"{e['score']:.2f}") for e in ents if e["doc_id"] in with_ents)
    assert len(marks) == len(expected) > 0
    found = []
    for text, label in marks:
        text, label = html.unescape(text).strip(), html.unescape(label).strip()
        assert re.fullmatch(r"(PER|LOC|ORG|MISC) [01]\.\d\d", label)
        found.append((text, *label.split(" ")))
    assert sorted(found) == expected
    for e in ents:  # every shown span is the document's own slice
        if e["doc_id"] in with_ents:
            assert texts[e["doc_id"]][e["start"]:e["end"]] == e["text"]


def test_show_sample_default_path_and_unknown_id(sample_run, capsys):
    assert main(["show", str(sample_run), "--sample", "2", "--seed", "3"]) == 0
    page = (sample_run / "show.html").read_text()
    assert page.count('class="entities"') == 2
    assert main(["show", str(sample_run), "--ids", "no-such-id"]) == 2
    assert "no-such-id" in capsys.readouterr().out


@pytest.mark.slow
def test_page_check_in_headless_chromium(sample_run):
    """scripts/page_check.sh: both pages open in headless Chromium without console errors, with images."""
    assert main(["report", str(sample_run)]) == 0
    assert main(["show", str(sample_run), "--sample", "2"]) == 0
    if shutil.which("chromium") is None and shutil.which("apt-get") is None:
        pytest.skip("no chromium and no apt-get")
    proc = subprocess.run([str(ROOT / "scripts" / "page_check.sh"), str(sample_run / "report.html"),
                           str(sample_run / "show.html")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (sample_run / "report.png").is_file() and (sample_run / "show.png").is_file()
