"""Teacher labelling, ensembles, the spaCy backend, the distillation loss, and distil through the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from tests.tiny import make_tiny_model, tiny_tokenizer

from training.__main__ import main
from training.losses import IGNORE, token_loss

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_conll.txt"
TEXTS = {"a": "John Smith said in Germany that the bank of New York 😀 grew.",
         "b": "Reuters reported from Bonn.\r\nJohn Smith agreed.", "c": "   "}


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("teachers")
    return [make_tiny_model(root / f"t{s}", seed=s) for s in (1, 2)]


def write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in TEXTS.items()), encoding="utf-8")
    return path


def label_config(tmp_path: Path, teachers: list[Path], runner: str = "local", spacy: dict | None = None) -> Path:
    cfg = {"runner": runner, "input": {"path": [str(write_corpus(tmp_path / "c.jsonl"))], "text_columns": ["text"]},
           "output": {"path": str(tmp_path / "silver")}, "show_progress": False,
           "teacher": {"models": [str(t) for t in teachers]}, "inference": {"threads": 1}}
    if spacy:
        cfg["teacher"]["spacy"] = spacy
    p = tmp_path / "label.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def read_parts(out: Path) -> list[dict]:
    rows = []
    for f in sorted((out / "silver").glob("part-*.parquet")):
        t = pq.read_table(f)
        labels = json.loads(t.schema.metadata[b"labels"])
        for r in t.to_pylist():
            r["probs"] = np.asarray(r["probs"], dtype=np.float32).reshape(len(r["word_start"]), len(labels))
            rows.append(r)
    return rows


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_label_cli_writes_silver_whose_offsets_slice_the_text(tmp_path, teachers, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    assert main(["label", "--config", str(label_config(tmp_path, teachers, runner))]) == 0
    rows = read_parts(tmp_path / "silver")
    assert {r["doc_id"] for r in rows} == {"a", "b"}  # "c" is empty: accounted in docs/, not silver
    for r in rows:
        text = TEXTS[r["doc_id"]]
        assert r["text"] == text
        words = [text[s:e] for s, e in zip(r["word_start"], r["word_end"])]
        assert all(w and not w.isspace() for w in words)
        np.testing.assert_allclose(r["probs"].sum(axis=1), 1.0, atol=3e-3)  # fp16 storage
    a = next(r for r in rows if r["doc_id"] == "a")
    assert "😀" in [TEXTS["a"][s:e] for s, e in zip(a["word_start"], a["word_end"])]
    docs = pq.read_table(tmp_path / "silver" / "docs").to_pylist()
    assert {d["doc_id"]: d["status"] for d in docs} == {"a": "ok", "b": "ok", "c": "empty"}


def test_ensemble_averages_teacher_probabilities(teachers):
    from extract.model.load import load
    from extract.model.predict import predict_probs
    from training.teachers import Ensemble, TeacherConfig

    texts = [TEXTS["a"], TEXTS["b"]]
    ens = Ensemble(TeacherConfig(models=tuple(map(str, teachers))), threads=1)
    got = ens.label(texts)
    singles = [predict_probs(load(t, threads=1), texts) for t in teachers]
    for i in range(len(texts)):
        expected = (singles[0][i].probs + singles[1][i].probs) / 2
        np.testing.assert_allclose(got[i][2], expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(singles[0][i].probs, singles[1][i].probs)  # the two teachers differ


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory) -> Path:
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "John Smith"}, {"label": "GPE", "pattern": "Germany"},
                        {"label": "DATE", "pattern": "today"}])
    path = tmp_path_factory.mktemp("spacy") / "ruler"
    nlp.to_disk(path)
    return path


def test_spacy_backend_maps_labels(ruler_pipeline):
    from training.teachers import Ensemble, SpacyTeacher, TeacherConfig

    ens = Ensemble(TeacherConfig(spacy=SpacyTeacher(pipeline=str(ruler_pipeline), confidence=0.9)))
    text = "John Smith flew to Germany today ."
    [(starts, ends, probs)] = ens.label([text])
    words = [text[s:e] for s, e in zip(starts, ends)]
    assert words == ["John", "Smith", "flew", "to", "Germany", "today", "."]
    tags = [ens.labels[i] for i in probs.argmax(axis=1)]
    assert tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]  # DATE is not mapped: O
    assert probs[0, ens.labels.index("B-PER")] == pytest.approx(0.9)
    assert probs[0].sum() == pytest.approx(1.0)


def test_spacy_combines_with_models_on_the_model_word_grid(teachers, ruler_pipeline):
    from extract.model.load import load
    from extract.model.predict import predict_probs
    from training.teachers import Ensemble, SpacyTeacher, TeacherConfig

    text = "John Smith flew to Germany ."
    ens = Ensemble(TeacherConfig(models=(str(teachers[0]),),
                                 spacy=SpacyTeacher(pipeline=str(ruler_pipeline), weight=1.0)),
                   threads=1)
    [(starts, _, probs)] = ens.label([text])
    model = predict_probs(load(teachers[0], threads=1), [text])[0].probs
    spacy_p = np.full_like(model, 0.1 / 8)
    for j, tag in enumerate(["B-PER", "I-PER", "O", "O", "B-LOC", "O"]):
        spacy_p[j, ens.labels.index(tag)] = 0.9
    np.testing.assert_allclose(probs, (model + spacy_p) / 2, rtol=1e-5, atol=1e-6)


def test_distillation_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # one sequence, 3 positions, 2 labels
    labels = torch.tensor([[0, IGNORE, IGNORE]])
    soft = torch.tensor([[[0.0, 0.0], [0.5, 0.5], [0.9, 0.1]]])
    mask = torch.tensor([[False, True, True]])
    # gold: -log softmax([2, 0])[0]
    ce = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert token_loss(logits, labels).item() == pytest.approx(ce, rel=1e-6)
    t = 2.0

    def kl(p, z):
        # teacher re-tempered: softmax(log p / T); student: softmax(z / T)
        pt = [x ** (1 / t) for x in p]
        pt = [x / sum(pt) for x in pt]
        qs = [math.exp(v / t) for v in z]
        qs = [x / sum(qs) for x in qs]
        return sum(a * math.log(a / b) for a, b in zip(pt, qs))

    expected_kl = (kl([0.5, 0.5], [0.0, 1.0]) + kl([0.9, 0.1], [1.0, 1.0])) / 2 * t ** 2
    got = token_loss(logits, labels, soft, mask, temperature=t, gold_weight=0.3, silver_weight=0.7).item()
    assert got == pytest.approx(0.3 * ce + 0.7 * expected_kl, rel=1e-5)


def test_silver_offsets_align_to_student_first_pieces():
    from training.examples import silver_examples

    text = "John Smith said"
    starts = np.array([0, 5, 11])
    probs = np.eye(3, 9, dtype=np.float32)[[1, 2, 0]]  # B-PER, I-PER, O
    [ex] = silver_examples([text], [starts], [probs], tiny_tokenizer(), 32, 8)
    firsts = np.flatnonzero(ex.soft_mask)
    assert len(firsts) == 3  # one target per word, on its first wordpiece only
    np.testing.assert_array_equal(ex.soft[firsts], probs)
    assert (ex.labels == IGNORE).all()


def test_label_then_distill_through_the_cli(tmp_path, teachers):
    assert main(["label", "--config", str(label_config(tmp_path, teachers))]) == 0
    cfg = {
        "data": {"train": str(FIXTURE), "dev": str(FIXTURE), "silver": [str(tmp_path / "silver")]},
        "model": {"backbone": str(teachers[0]), "max_length": 32, "stride": 8, "layers": [1]},
        "optim": {"lr": "1e-3", "batch_size": 4, "max_steps": 4, "epochs": 10},
        "run": {"output": str(tmp_path / "student"), "eval_every": 2, "log_every": 1, "device": "cpu", "threads": 1},
        "distill": {"init_from": str(teachers[0]), "temperature": 2.0, "gold_weight": 1.0, "silver_weight": 0.5},
    }
    p = tmp_path / "distill.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["distill", "--config", str(p)]) == 0
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    assert summary["silver_windows"] >= 2 and summary["gold_windows"] >= 2
    from transformers import AutoModelForTokenClassification

    student = AutoModelForTokenClassification.from_pretrained(tmp_path / "student" / "best")
    assert student.config.num_hidden_layers == 1
    losses = [json.loads(l)["loss"] for l in (tmp_path / "student" / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in l]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)


def test_distill_without_distill_section_is_refused(tmp_path, teachers, capsys):
    p = tmp_path / "d.yaml"
    p.write_text(yaml.safe_dump({"data": {"train": str(FIXTURE), "dev": str(FIXTURE)},
                                 "model": {"backbone": str(teachers[0])}}))
    assert main(["distill", "--config", str(p)]) == 2
    assert "distill needs a `distill:` section" in capsys.readouterr().err


def test_keep_layers_takes_the_chosen_layers(teachers):
    from transformers import AutoModelForTokenClassification

    from training.modeling import keep_layers

    model = AutoModelForTokenClassification.from_pretrained(teachers[0])
    chosen = model.bert.encoder.layer[1].attention.self.query.weight.detach().clone()
    keep_layers(model, [1])
    assert model.config.num_hidden_layers == 1 and len(model.bert.encoder.layer) == 1
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, chosen)
    with pytest.raises(ValueError, match="out of range"):
        keep_layers(model, [3])


def test_a_student_starts_in_fp32_from_a_released_fp16_model(tmp_path):
    """A released model is fp16 on disk; transformers 5 would load it as fp16, and fp16 master
    weights turn the first step's loss into NaN. The student must train in fp32."""
    import transformers
    from safetensors import safe_open

    from extract.text.labels import bio_labels
    from training.config import DistillConfig, ModelConfig, TrainConfig
    from training.modeling import build

    src = make_tiny_model(tmp_path / "released", layers=2)
    transformers.AutoModelForTokenClassification.from_pretrained(src).half().save_pretrained(src)
    with safe_open(str(src / "model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    cfg = TrainConfig(model=ModelConfig(layers=(1,)), distill=DistillConfig(init_from=str(src)))
    student, _ = build(cfg, bio_labels(("PER", "LOC", "ORG", "MISC")))
    assert {p.dtype for p in student.parameters()} == {torch.float32}
    assert student.config.num_hidden_layers == 1
