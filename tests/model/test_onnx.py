"""inference.engine: onnx (extract/model/onnx.py): the exported graph computes what torch does, casing
included, for BERT (token_type_ids) and MPNet (a casing table behind a forward pre-hook); a job gives
the same entities on either engine; a missing or stale model.onnx and a rerun on the other engine
are refused before any work. Tiny random models only."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import ROOT, common, run_cli, sorted_entities

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # the dynamo exporter's translator

from extract.text.casing import NUM_CASING_IDS  # noqa: E402
from extract.model.batch import batch_tensors  # noqa: E402
from extract.model.export import export_onnx  # noqa: E402
from extract.model.load import load  # noqa: E402
from extract.model.onnx import ONNX_FILE, run_logits  # noqa: E402
from extract.model.predict import run_windows  # noqa: E402


@pytest.fixture(scope="module")
def bert_onnx(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny BERT (random 6-row token-type table: casing matters) with its model.onnx."""
    d = tmp_path_factory.mktemp("onnx") / "bert"
    shutil.copytree(tiny_model_dir, d)
    export_onnx(d, threads=1)
    return d


@pytest.fixture(scope="module")
def mpnet_onnx(tmp_path_factory) -> Path:
    """A tiny MPNet token classifier with a random (non-zero) casing table, saved as training saves."""
    from tests.tiny import build_classifier, make_tiny_mpnet
    from training.checkpoint import save_model_dir

    root = tmp_path_factory.mktemp("onnx_mpnet")
    model, tok = build_classifier(make_tiny_mpnet(root / "backbone"), root)
    with torch.no_grad():
        model.base_model.embeddings.casing_embeddings.weight.normal_(0, 0.5)
    save_model_dir(model, tok, root / "model")
    export_onnx(root / "model", threads=1)
    return root / "model"


def _windows(loaded, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random windows from 1 wordpiece to the model's longest, with casing ids of every kind."""
    rng = np.random.default_rng(seed)
    top = int(loaded.settings["max_length"]) - 2
    lengths = [1, 2, top, *rng.integers(1, top + 1, 12)]
    return [(rng.integers(5, len(loaded.tokenizer), n), rng.integers(0, NUM_CASING_IDS, n)) for n in lengths]


@pytest.mark.parametrize("which", ["bert_onnx", "mpnet_onnx"])
def test_onnx_logits_equal_torch_fp32_with_casing_and_padding(which, request):
    model_dir = request.getfixturevalue(which)
    pt, ox = load(model_dir, threads=1), load(model_dir, threads=1, engine="onnx")
    assert ox.model is None and {i.name for i in ox.session.get_inputs()} >= {"input_ids", "token_type_ids"}
    tok = pt.tokenizer
    pieces = _windows(pt, 0)
    # Whole padded batches, padding rows included, at several batch sizes.
    for size in (1, 3, len(pieces)):
        arrays = batch_tensors(pieces[:size], tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
        assert (arrays["attention_mask"] == 0).any() or size == 1
        with torch.inference_mode():
            want = pt.model(**{k: torch.from_numpy(v) for k, v in arrays.items()}).logits.numpy()
        got = run_logits(ox.session, arrays)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        # Casing is a real input of the graph: other casing ids, other logits.
        uncased = {**arrays, "token_type_ids": np.zeros_like(arrays["token_type_ids"])}
        assert np.abs(run_logits(ox.session, uncased) - got).max() > 1e-3
    # The job's own batching (length-sorted, token budget) on both engines.
    for batch_size in (1, 4, 32):
        for a, b in zip(run_windows(pt, pieces, batch_size), run_windows(ox, pieces, batch_size)):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)


def _corpus(tmp_path: Path, n: int = 25) -> Path:
    lines = (ROOT / "data" / "sample" / "reuters_sample.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _job(model: Path, out: Path, corpus: Path, *extra: str) -> list[str]:
    return [*common(model, out, "local"), "--set", f"input.path={corpus}", *extra]


def test_a_job_gives_the_same_entities_on_both_engines(bert_onnx, tmp_path):
    corpus = _corpus(tmp_path)
    for engine in ("torch", "onnx"):
        assert run_cli(*_job(bert_onnx, tmp_path / engine, corpus, "--set", f"inference.engine={engine}")) == 0
    pt, ox = sorted_entities(tmp_path / "torch"), sorted_entities(tmp_path / "onnx")
    assert pt.num_rows > 0
    for col in ("doc_id", "label", "start", "end", "text", "model"):
        assert pt.column(col).to_pylist() == ox.column(col).to_pylist(), col
    np.testing.assert_allclose(ox.column("score").to_numpy(), pt.column("score").to_numpy(), atol=1e-4, rtol=0)
    run = json.loads((tmp_path / "onnx" / "run.json").read_text())
    assert run["config"]["inference"]["engine"] == "onnx"


def test_a_missing_or_stale_model_onnx_fails_early_naming_the_fix(tiny_model_dir, bert_onnx, tmp_path, capsys):
    corpus = _corpus(tmp_path, 3)
    onnx = ["--set", "inference.engine=onnx"]
    assert not (tiny_model_dir / ONNX_FILE).exists()
    assert run_cli(*_job(tiny_model_dir, tmp_path / "a", corpus, *onnx)) == 2
    err = capsys.readouterr().err
    assert f"has no {ONNX_FILE}" in err and f"python -m extract export-onnx {tiny_model_dir}" in err
    assert "Traceback" not in err and not (tmp_path / "a").exists()
    # Weights changed after the export: the graph would run the old ones.
    stale = tmp_path / "stale"
    shutil.copytree(bert_onnx, stale)
    data = bytearray((stale / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (stale / "model.safetensors").write_bytes(bytes(data))
    assert run_cli(*_job(stale, tmp_path / "b", corpus, *onnx)) == 2
    err = capsys.readouterr().err
    assert "was not exported from the model.safetensors next to it" in err and "export-onnx" in err
    # onnx is fp32 on the CPU: another dtype is a config error, not a silent change.
    assert run_cli(*_job(bert_onnx, tmp_path / "c", corpus, *onnx, "--set", "inference.dtype=bf16")) == 2
    assert "inference.engine: onnx runs on the CPU (fp32 activations)" in capsys.readouterr().err


def test_a_rerun_on_the_other_engine_is_refused(bert_onnx, tmp_path, capsys):
    args = _job(bert_onnx, tmp_path / "out", _corpus(tmp_path, 3))
    assert run_cli(*args) == 0
    capsys.readouterr()
    assert run_cli(*args, "--set", "inference.engine=onnx") == 2
    assert "inference.engine was 'torch', now 'onnx'" in capsys.readouterr().err
    assert run_cli(*args) == 0  # the same engine resumes


def test_export_cli_and_the_torch_path_never_imports_onnxruntime(tiny_model_dir, tmp_path, capsys):
    from extract.__main__ import main

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    assert main(["export-onnx", str(d), "--threads", "1"]) == 0
    assert f"wrote {d / ONNX_FILE}" in capsys.readouterr().out
    assert main(["export-onnx", str(tmp_path / "nope")]) == 2
    assert "Model directory not found" in capsys.readouterr().err
    # onnxruntime is a lazy import of extract/model/onnx.py alone.
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "extract").rglob("*.py")
             if "import onnxruntime" in p.read_text(encoding="utf-8")]
    assert users == ["extract/model/onnx.py"]


def test_an_output_folder_from_before_the_engine_setting_resumes_on_torch_only():
    from extract.job.identity import differences

    before = {"inference.device": "cpu", "inference.dtype": "fp32"}  # _job.json of a v0.1 job
    assert differences(before, {**before, "inference.engine": "torch"}) == []
    assert differences(before, {**before, "inference.engine": "onnx"}) == ["inference.engine was 'torch', now 'onnx'"]


def test_int8_engine_round_trip_export_check_and_job(bert_onnx, tmp_path, capsys):
    """inference.engine: onnx-int8: export-onnx --int8 writes model.int8.onnx checked against torch,
    a job runs on it, its logits stay close to torch's, and a stale or missing graph is refused."""
    from extract.__main__ import main
    from extract.model.onnx import INT8_FILE

    d = tmp_path / "bert"
    shutil.copytree(bert_onnx, d)
    assert main(["export-onnx", str(d), "--int8", "--threads", "1"]) == 0
    assert "model.int8.onnx (dynamic int8" in capsys.readouterr().out and (d / INT8_FILE).is_file()
    pt, q = load(d, threads=1), load(d, threads=1, engine="onnx-int8")
    assert q.engine == "onnx-int8" and q.model is None
    pieces = _windows(pt, 1)
    want = run_windows(pt, pieces, 8)
    got = run_windows(q, pieces, 8)
    top = max(float(np.abs(w).max()) for w in want)
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) < 0.15 * max(1.0, top)
    corpus = _corpus(tmp_path, 10)
    assert run_cli(*_job(d, tmp_path / "int8", corpus, "--set", "inference.engine=onnx-int8")) == 0
    assert json.loads((tmp_path / "int8" / "run.json").read_text())["config"]["inference"]["engine"] == "onnx-int8"
    (d / INT8_FILE).unlink()
    capsys.readouterr()
    assert run_cli(*_job(d, tmp_path / "missing", corpus, "--set", "inference.engine=onnx-int8")) == 2
    err = capsys.readouterr().err
    assert "has no model.int8.onnx" in err and f"export-onnx {d} --int8" in err
