"""Model folders that ask for remote code, or hold corrupt weights, are refused before any work,
with one line and exit 2, by every entry point: the job, export-onnx, training evaluate, training
label and the Python API. No pickle is ever read (only safetensors are looked at)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from extract.__main__ import main as extract_main
from tests.helpers import ROOT, SAMPLE, run_cli
from training.__main__ import main as training_main

CONLL = ROOT / "tests" / "fixtures" / "tiny_conll.txt"


def _variant(tiny_model_dir: Path, tmp_path: Path, kind: str) -> Path:
    d = tmp_path / f"model_{kind}"
    shutil.copytree(tiny_model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    if kind == "auto_map":
        cfg["auto_map"] = {"AutoModelForTokenClassification": "modeling_evil.EvilModel"}
        (d / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    elif kind == "trust_remote_code":
        cfg["trust_remote_code"] = True
    elif kind == "model_type":
        cfg["model_type"] = "evil-bert"
    elif kind == "truncated":
        w = d / "model.safetensors"
        w.write_bytes(w.read_bytes()[:-100])
    elif kind == "garbage":
        (d / "model.safetensors").write_bytes(b"\xff" * 64)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


KINDS = ["auto_map", "trust_remote_code", "model_type", "truncated", "garbage"]
WORDS = {"auto_map": "remote code", "trust_remote_code": "remote code", "model_type": "evil-bert",
         "truncated": "truncated or corrupt", "garbage": "safetensors"}


def _one_line(capsys, kind: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert WORDS[kind] in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("kind", KINDS)
def test_the_job_refuses_before_any_work(kind, tiny_model_dir, tmp_path, capsys):
    d = _variant(tiny_model_dir, tmp_path, kind)
    out = tmp_path / "out"
    assert run_cli("--set", f"model.path={d}", "--set", f"output.path={out}", "--set", "runner=local",
                   "--set", f"input.path={SAMPLE}") == 2
    _one_line(capsys, kind)
    assert not out.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_export_onnx_and_evaluate_refuse(kind, tiny_model_dir, tmp_path, capsys):
    d = _variant(tiny_model_dir, tmp_path, kind)
    assert extract_main(["export-onnx", str(d)]) == 2
    _one_line(capsys, kind)
    assert not (d / "model.onnx").exists()
    assert training_main(["evaluate", "--model", str(d), "--data", str(CONLL), "--out", str(tmp_path / "ev")]) == 2
    _one_line(capsys, kind)


@pytest.mark.parametrize("kind", ["auto_map", "truncated"])
def test_the_python_api_refuses(kind, tiny_model_dir, tmp_path):
    from extract.api import Extractor

    d = _variant(tiny_model_dir, tmp_path, kind)
    with pytest.raises(ValueError, match=WORDS[kind]):
        Extractor.from_pretrained(str(d))


def test_label_refuses_a_teacher_with_remote_code(tiny_model_dir, tmp_path, capsys):
    d = _variant(tiny_model_dir, tmp_path, "auto_map")
    cfg = tmp_path / "label.yaml"
    cfg.write_text(f"teacher:\n  models: [{d}]\ninput:\n  path: [{SAMPLE}]\n  text_columns: [title, body]\n"
                   f"output:\n  path: {tmp_path / 'silver'}\nrunner: local\n")
    assert training_main(["label", "--config", str(cfg)]) == 2
    _one_line(capsys, "auto_map")
    assert not (tmp_path / "silver").exists()
