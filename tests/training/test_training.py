"""Fine-tune, resume and evaluate through the real CLI on tiny models and a tiny CoNLL fixture."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import write_config
from training.__main__ import main
from training.evaluate import scores

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"


def test_finetune_cli_writes_a_loadable_model(tiny_model_dir, tmp_path):
    cfg = write_config(tmp_path, tiny_model_dir)
    assert main(["finetune", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    for f in ("model.safetensors", "optimizer.safetensors", "state.json", "config.json", "tokenizer.json"):
        assert (run / "checkpoint" / f).is_file(), f
    best = run / "best"
    for f in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json", "training_config.yaml",
              "README.md"):
        assert (best / f).is_file(), f
    losses = [json.loads(l)["loss"] for l in (run / "train_log.jsonl").read_text().splitlines() if '"loss"' in l]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]  # lr 1e-3 on 12 entities: it learns
    dev = json.loads((best / "metrics.json").read_text())["dev"]
    for key in ("f1", "precision", "recall", "f1_plo", "per_type", "scheme", "mode", "words_per_second"):
        assert key in dev
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(best)
    assert model.config.id2label[1] == "B-PER" and model.config.type_vocab_size == 6
    assert model.config.ner_settings["max_length"] == 32


def test_resume_continues_to_the_same_weights(tiny_model_dir, tmp_path):
    from safetensors.numpy import load_file

    straight = tmp_path / "straight"
    straight.mkdir()
    assert main(["finetune", "--config", str(write_config(straight, tiny_model_dir))]) == 0
    parted = tmp_path / "parted"
    parted.mkdir()
    cfg = write_config(parted, tiny_model_dir)
    assert main(["finetune", "--config", str(cfg), "--set", "optim.max_steps=3"]) == 0
    assert json.loads((parted / "run" / "checkpoint" / "state.json").read_text())["step"] == 3
    assert main(["finetune", "--config", str(cfg), "--set", "run.resume=true"]) == 0
    a = load_file(str(straight / "run" / "checkpoint" / "model.safetensors"))
    b = load_file(str(parted / "run" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_bad_config_fails_before_training(tiny_model_dir, tmp_path, capsys):
    cfg = write_config(tmp_path, tiny_model_dir)
    assert main(["finetune", "--config", str(cfg), "--set", "optim.lrr=1"]) == 2
    assert "Unknown key 'optim.lrr'. Did you mean 'lr'?" in capsys.readouterr().err
    assert main(["finetune", "--config", str(cfg), "--set", "optim.epochs=lots"]) == 2
    assert "optim.epochs: expected a number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def make_always_loc(path: Path) -> Path:
    """A tiny model whose classifier says B-LOC for every word: predictable, so scorable by hand."""
    import torch
    from tests.tiny import make_tiny_model
    from transformers import AutoModelForTokenClassification

    make_tiny_model(path)
    model = AutoModelForTokenClassification.from_pretrained(path)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[model.config.label2id["B-LOC"]] = 10.0
    model.save_pretrained(path)
    return path


def test_evaluate_cli_against_hand_computed_numbers(tmp_path):
    model = make_always_loc(tmp_path / "loc")
    assert main(["evaluate", "--model", str(model), "--data", str(FIXTURE), "--out", str(tmp_path / "ev")]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # 54 gold tokens, each predicted as a one-token LOC; 12 gold entities, 4 of them one-token LOCs.
    assert m["precision"] == pytest.approx(4 / 54)
    assert m["recall"] == pytest.approx(4 / 12)
    assert m["f1"] == pytest.approx(8 / 66)
    assert m["f1_plo"] == pytest.approx(8 / 63)  # MISC -> O: 9 gold entities
    assert m["per_type"]["LOC"] == pytest.approx({"precision": 4 / 54, "recall": 1.0, "f1": 8 / 58, "support": 4})
    assert m["per_type"]["PER"]["f1"] == 0.0 and m["per_type"]["PER"]["support"] == 2
    assert (m["scheme"], m["mode"], m["words"]) == ("IOB2", "strict", 54)
    assert m["words_per_second"] > 0
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| LOC | 0.0741 | 1.0000 | 0.1379 | 4 |" in report
    assert (tmp_path / "ev" / "report.png").stat().st_size > 10_000


def test_scores_strict_mode_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O", "B-MISC"]]  # boundary error, type error
    m = scores(gold, pred)
    # gold 4 entities, pred 4, correct 2 (LOC, MISC)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # MISC -> O: gold 3, pred 3, correct 1
    assert m["f1_plo"] == pytest.approx(1 / 3)
    assert m["per_type"]["LOC"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    # strict mode: I- without B- is not an entity
    assert scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == 0.0


def test_evaluate_label_map(tmp_path):
    model = make_always_loc(tmp_path / "loc")
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(model), "--data", str(FIXTURE), "--out", str(out),
                 "--label-map", "LOC=PLACE,MISC=O"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "PLACE" in m["per_type"] and "MISC" not in m["per_type"]
    assert m["f1"] == pytest.approx(8 / 63)
