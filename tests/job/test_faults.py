"""Issue 7: a record that kills its worker, and a killed driver, on both runners."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, common, kill_on_env, sorted_entities, tables

POISON = "POISON-RECORD-MARKER"


def _corpus(path: Path, n: int = 30, poison_at: int | None = 14) -> Path:
    rows = [{"id": f"d{i}", "text": f"John Smith of Germany said {i} times in New York."} for i in range(n)]
    if poison_at is not None:
        rows[poison_at]["text"] += f" {POISON}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _argv(model: Path, out: Path, corpus: Path, runner: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"),
            *common(model, out, runner), "--set", f"input.path={corpus}", "--set", "input.text_columns=[text]",
            "--set", "input.shard_bytes=600", *extra]


def _env() -> dict:
    # tests/fault_injection/sitecustomize.py kills the process (and, on Ray, the worker) that is
    # about to predict the poisoned record
    return kill_on_env(POISON, {**os.environ, "RAY_AUTH_MODE": "disabled"})


PATCH_PROBE = ("import extract.job.stages as s; "
               "print(getattr(s.Processor._predict_isolated, '_nerbatch_kill_on_marker', False))")


def test_fault_injection_patches_the_predict_step_only_when_asked():
    """The kill hook lives on the tests' side: it is in place in a subprocess given kill_on_env, and
    absent without the marker (the product code has none)."""
    def probe(env):
        proc = subprocess.run([sys.executable, "-c", PATCH_PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip()

    assert probe(_env()) == "True"
    without = _env()
    del without["NERBATCH_TEST_KILL_ON"]
    assert probe(without) == "False"


def _check_poisoned(out: Path) -> None:
    _, docs = tables(out)
    rows = {r["doc_id"]: r for r in docs.to_pylist()}
    assert len(rows) == 30 and docs.num_rows == 30  # every record once
    assert rows["d14"]["status"] == "error" and "killed its worker process" in rows["d14"]["error"]
    assert all(r["status"] == "ok" for k, r in rows.items() if k != "d14")


def test_local_runner_gives_up_on_a_record_that_kills_it_after_bounded_reruns(tiny_model_dir, tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl")
    argv = _argv(tiny_model_dir, tmp_path / "out", corpus, "local")
    codes = [subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True).returncode for _ in range(5)]
    # Two batched attempts die, a one-by-one attempt dies on the record, the next writes it as an error.
    assert codes[:4] == [137, 137, 137, 0] and codes[4] == 0
    _check_poisoned(tmp_path / "out")


@pytest.mark.ray
@pytest.mark.slow
def test_ray_retries_a_poisoned_shard_and_completes_in_one_run(tiny_model_dir, tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl")
    argv = _argv(tiny_model_dir, tmp_path / "out", corpus, "ray", "--set", "ray.num_cpus=2")
    proc = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_poisoned(tmp_path / "out")


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def test_killed_driver_reruns_to_the_same_tables(tiny_model_dir, tmp_path, runner):
    corpus = _corpus(tmp_path / "c.jsonl", n=600, poison_at=None)
    argv = _argv(tiny_model_dir, tmp_path / "out", corpus, runner, "--set", "ray.num_cpus=2")
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and len(list((tmp_path / "out" / "docs").glob("part-*"))) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and, on Ray, the embedded cluster it started
    proc.wait()
    done = len(list((tmp_path / "out" / "docs").glob("part-*")))
    assert 3 <= done < 60, "the run was not stopped part-way"
    assert subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True).returncode == 0
    ref = _argv(tiny_model_dir, tmp_path / "ref", corpus, "local")
    assert subprocess.run(ref, cwd=ROOT, env=_env(), capture_output=True).returncode == 0
    assert sorted_entities(tmp_path / "out").equals(sorted_entities(tmp_path / "ref"))
    _, docs = tables(tmp_path / "out")
    assert sorted(docs.column("doc_id").to_pylist()) == sorted(f"d{i}" for i in range(600))
    assert not list((tmp_path / "out" / "_attempts").glob("*.json"))


def test_an_exception_for_one_record_becomes_its_error_row(tiny_model_dir, tmp_path, monkeypatch):
    """Tokenising, predicting or decoding fails for one record: that record errs, its shard completes."""
    import extract.model.predict as predict
    import extract.text.spans as spans
    from tests.helpers import run_cli

    real_window, real_forward, real_decode = predict.window_text, predict.forward_docs, spans.decode

    def flaky_window(text, *a, **k):
        if "TOKFAIL" in text:
            raise ValueError("tokenizer exploded")
        return real_window(text, *a, **k)

    def flaky_forward(loaded, docs, *a, **k):
        if any(len(d.enc.ids) > 150 for d in docs):  # the long record below
            raise RuntimeError("CUDA error: an illegal memory access")
        return real_forward(loaded, docs, *a, **k)

    def flaky_decode(doc, text, *a, **k):
        if "DECODEFAIL" in text:
            raise IndexError("span out of range")
        return real_decode(doc, text, *a, **k)

    monkeypatch.setattr(predict, "window_text", flaky_window)
    monkeypatch.setattr(predict, "forward_docs", flaky_forward)
    monkeypatch.setattr(spans, "decode", flaky_decode)
    rows = [{"id": f"d{i}", "text": f"John Smith in Bonn {i}."} for i in range(8)]
    rows[1]["text"] += " TOKFAIL"
    rows[2]["text"] += " Bonn" * 200
    rows[5]["text"] += " DECODEFAIL"
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli(*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={src}",
                   "--set", "input.text_columns=[text]") == 0
    _, docs = tables(tmp_path / "out")
    got = {r["doc_id"]: r for r in docs.to_pylist()}
    assert got["d1"]["status"] == "error" and "tokenising failed: ValueError: tokenizer exploded" in got["d1"]["error"]
    assert got["d2"]["status"] == "error" and "prediction failed: RuntimeError: CUDA error" in got["d2"]["error"]
    assert got["d5"]["status"] == "error" and "decoding entities failed: IndexError" in got["d5"]["error"]
    assert all(got[f"d{i}"]["status"] == "ok" for i in (0, 3, 4, 6, 7))


def test_a_spacy_teacher_name_never_imports_a_module(monkeypatch):
    import spacy

    from training.teachers import load_spacy

    seen = []
    monkeypatch.setattr(spacy, "load", lambda name: seen.append(name) or "pipeline")
    assert load_spacy("subprocess") == "pipeline" and seen == ["subprocess"]  # spacy.load, no import
