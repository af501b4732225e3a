"""Case augmentation (issue 18): re-cased windows keep their labels and offsets, their casing ids
follow the re-cased text, the choice is seeded, and the config keys are validated."""
from __future__ import annotations

import numpy as np
import pytest

from extract.core.config import ConfigError
from extract.text.casing import casing_ids
from extract.text.labels import bio_labels
from extract.text.windows import encode
from tests.tiny import tiny_tokenizer
from training.augment import CaseAugment, recase
from training.conll import read_conll
from training.examples import gold_examples

CONLL = """-DOCSTART- O

John B-PER
Smith I-PER
said O
in O
New B-LOC
York I-LOC
. O

The O
Bank B-ORG
of I-ORG
Germany I-ORG
said O
. O
"""


def test_recase_keeps_length_and_letters_whose_case_map_changes_length():
    text = "Straße in İstanbul, o'neill SAID 3x"
    for mode in ("lower", "upper", "title"):
        out = recase(text, mode)
        assert len(out) == len(text)
    assert recase(text, "upper") == "STRAßE IN İSTANBUL, O'NEILL SAID 3X"  # ß kept: 'SS' is two letters
    assert recase(text, "lower") == "straße in İstanbul, o'neill said 3x"  # İ kept: lower() is two code points
    assert recase("new york o'neill", "title") == "New York O'neill"
    with pytest.raises(ValueError, match="expected one of"):
        recase("x", "camel")


def test_modes_are_seeded_by_text_not_by_order():
    aug = CaseAugment(0.5, ("lower", "upper", "title"), seed=7)
    a = aug.modes_for("John Smith said", 200)
    assert a == aug.modes_for("John Smith said", 200)  # same text, same choice, any order
    assert a != CaseAugment(0.5, seed=8).modes_for("John Smith said", 200)
    share = sum(m is not None for m in a) / len(a)
    assert 0.35 < share < 0.65 and {m for m in a if m} == {"lower", "upper", "title"}
    assert CaseAugment(0.0).modes_for("x", 5) == [None] * 5


def test_augmented_windows_keep_labels_and_get_the_recased_casing_ids(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL)
    docs = read_conll(path)
    tok = tiny_tokenizer()
    labels = bio_labels(["PER", "LOC", "ORG"])
    label2id = {l: i for i, l in enumerate(labels)}
    plain = gold_examples(docs, tok, label2id, ["PER", "LOC", "ORG"], "document", 8, 2)
    upper = gold_examples(docs, tok, label2id, ["PER", "LOC", "ORG"], "document", 8, 2,
                          augment=CaseAugment(1.0, ("upper",), seed=1))
    assert len(plain) == len(upper) > 1  # several windows: the choice is a window's
    for p, u in zip(plain, upper):
        assert np.array_equal(p.ids, u.ids)  # uncased wordpieces: the same ids
        assert np.array_equal(p.labels, u.labels)  # the same labels at the same places
        assert not np.array_equal(p.casing, u.casing)  # the casing ids changed with the text
    # The casing ids are the ones inference computes for the re-cased text itself.
    from training.conll import doc_text, units

    doc = doc_text(units(docs, "document")[0])[0]
    enc = encode(recase(doc, "upper"), tok)
    assert list(enc.casing) == casing_ids(recase(doc, "upper"), list(zip(enc.starts, enc.ends)))
    assert np.array_equal(upper[0].casing, enc.casing[:len(upper[0].casing)])


def test_config_keys_are_validated(monkeypatch):
    from extract.core.config import load
    from tests.helpers import ROOT
    from training.config import TrainConfig

    monkeypatch.chdir(ROOT)  # the config's backbone is repo-relative; its data (../shared) is not here in CI
    fixture = str(ROOT / "tests" / "fixtures" / "tiny_conll.txt")
    cfg, data = ROOT / "configs" / "finetune_case.yaml", [f"data.train={fixture}", f"data.dev={fixture}"]
    assert load(TrainConfig, cfg, data).data.case_augment == 0.5
    with pytest.raises(ConfigError, match="data.case_augment"):
        load(TrainConfig, cfg, [*data, "data.case_augment=1.5"])
    with pytest.raises(ConfigError, match="lower"):  # did you mean
        load(TrainConfig, cfg, [*data, "data.case_augment_modes=[lowr]"])
    with pytest.raises(ConfigError, match="case_augment_modes"):
        load(TrainConfig, cfg, [*data, "data.case_augment_modes=[]"])
