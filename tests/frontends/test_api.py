"""The Python API runs the batch job's own stages: the same entities as the Parquet output."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from tests.helpers import common, run_cli, tables

from extract.api import Entity, Extractor

TEXTS = ["John Smith of Germany said in New York.", "", "Reuters \ud83d in Bonn " * 30, "北京 and é in Paris."]


def test_extractor_matches_the_job(tiny_model_dir, tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    assert run_cli(*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={src}",
                   "--set", "input.text_columns=[text]") == 0
    ents, _ = tables(tmp_path / "out")
    job = sorted((int(r["doc_id"]), r["label"], r["start"], r["end"], round(r["score"], 5)) for r in ents.to_pylist())
    ner = Extractor.from_pretrained(str(tiny_model_dir), labels=None, threads=1)
    api = sorted((i, e.label, e.start, e.end, round(e.score, 5))
                 for i, found in enumerate(ner.pipe(TEXTS, batch_size=2)) for e in found)
    assert job and api == job
    for text, found in zip(TEXTS, ner.pipe(TEXTS)):
        assert all(isinstance(e, Entity) and text[e.start:e.end] == e.text for e in found)
    assert ner("") == []


def test_extractor_refuses_labels_the_model_lacks(tiny_model_dir):
    with pytest.raises(ValueError, match="PERSON"):
        Extractor.from_pretrained(str(tiny_model_dir), labels=["PERSON"])


def test_console_entry_point_is_installed():
    exe = shutil.which("nerbatch")
    if exe is None:
        pytest.skip("package not installed with its entry points (pip install -e .)")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout


def test_funnel_skips_windows_without_capitals_or_digits(tiny_model_dir, tmp_path):
    texts = ["john smith said in new york " * 20, "John Smith said in New York."]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    runs = {"off": ["--set", "funnel.enabled=false"], "digit": ["--set", "funnel.rule=capitalised-or-digit"],
            "default": []}
    for name, extra in runs.items():
        assert run_cli(*common(tiny_model_dir, tmp_path / name, "local"), "--set", f"input.path={src}",
                       "--set", "input.text_columns=[text]", *extra) == 0
    off, digit, default = (tables(tmp_path / f)[0].to_pylist() for f in runs)
    assert not [r for r in digit if r["doc_id"] == "0"]  # every window of the lowercase text skipped
    assert [r for r in off if r["doc_id"] == "0"]  # the random tiny model tags something there
    assert default == off  # capitalised-or-caseless: a caseless document runs whole; the cased one has capitals
    assert [r for r in digit if r["doc_id"] == "1"] == [r for r in off if r["doc_id"] == "1"]


def test_caseless_rule_skips_lowercase_stretches_of_cased_text_only():
    from extract.text.casing import LOWER, OTHER, TITLE
    from extract.text.funnel import keep_windows

    wins = [(0, 10), (10, 20)]
    cased = np.array([TITLE, LOWER] * 5 + [LOWER] * 10)  # 5 of 20 lettered pieces capitalised
    assert keep_windows(cased, wins, "capitalised-or-caseless") == [True, False]
    assert keep_windows(cased, wins, "capitalised-or-digit") == [True, False]
    caseless = np.array([LOWER] * 19 + [OTHER])
    assert keep_windows(caseless, wins, "capitalised-or-caseless") == [True, True]  # the model decides
    assert keep_windows(caseless, wins, "capitalised-or-digit") == [False, False]
    almost = np.array([TITLE] + [LOWER] * 99)  # 1% capitalised: a chat log with one "I"
    assert keep_windows(almost, [(0, 50), (50, 100)], "capitalised-or-caseless") == [True, True]
    with pytest.raises(ValueError, match="funnel.rule"):
        keep_windows(cased, wins, "capitals")
