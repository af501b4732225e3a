"""The Python API runs the batch job's own stages: the same entities as the Parquet output."""
from __future__ import annotations

import json
import shutil
import subprocess

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
    api = sorted((i, e.label, e.start, e.end, round(e.score, 5)) for i, found in enumerate(ner.pipe(TEXTS, batch_size=2))
                 for e in found)
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
    for funnel in ("true", "false"):
        assert run_cli(*common(tiny_model_dir, tmp_path / funnel, "local"), "--set", f"input.path={src}",
                       "--set", "input.text_columns=[text]", "--set", f"funnel.enabled={funnel}") == 0
    on, off = (tables(tmp_path / f)[0].to_pylist() for f in ("true", "false"))
    assert not [r for r in on if r["doc_id"] == "0"]  # every window of the lowercase text skipped
    assert [r for r in off if r["doc_id"] == "0"]  # the random tiny model tags something there
    assert [r for r in on if r["doc_id"] == "1"] == [r for r in off if r["doc_id"] == "1"]
