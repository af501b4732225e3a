"""Tiny random models for tests: a char-level WordPiece vocab, a 2-layer BERT built from a config,
a 2-layer MPNet backbone, and training's token classifier built on a backbone.

No network and no downloaded weights. transformers 5 ignores ``vocab_file=`` for the fast BERT
tokenizer (../shared/docs/FACTS.md), so the vocab is passed as a dict.
"""
from __future__ import annotations

import string
from pathlib import Path

from extract.text.labels import bio_labels

WORDS = ["the", "of", "in", "and", "said", "reuters", "germany", "john", "smith", "bank", "new", "york"]


def tiny_vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens += chars + ["##" + c for c in string.ascii_lowercase + string.digits] + WORDS
    tokens += ["北", "京", "é"]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def tiny_tokenizer():
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=tiny_vocab(), do_lower_case=True, strip_accents=True)


def make_tiny_model(path: Path, types=("PER", "LOC", "ORG", "MISC"), seed: int = 0, layers: int = 2,
                    settings: dict | None = None) -> Path:
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    labels = bio_labels(types)
    tok = tiny_tokenizer()
    cfg = BertConfig(vocab_size=len(tok.get_vocab()), hidden_size=32, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                     type_vocab_size=6, num_labels=len(labels),
                     id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    cfg.ner_settings = {"max_length": 32, "stride": 8, "repair": "drop", "casing": True,
                        **(settings or {})}
    model = BertForTokenClassification(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def mpnet_tokenizer():
    """The tiny char vocab with MPNet's special-token ids (<s>=0, <pad>=1, </s>=2): MPNet's
    position ids treat id 1 as padding, so padding must be id 1 as in the real tokenizer."""
    from transformers import BertTokenizerFast

    tokens = ["[CLS]", "[PAD]", "[SEP]", "[UNK]"] + [t for t in tiny_vocab()
                                                     if t not in ("[CLS]", "[PAD]", "[SEP]", "[UNK]")]
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True, strip_accents=True)


def make_tiny_mpnet(path: Path, seed: int = 0) -> Path:
    """A random 2-layer MPNet backbone dir (as the real one: no head, no ner_settings)."""
    import torch
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    tok = mpnet_tokenizer()
    cfg = MPNetConfig(vocab_size=len(tok.get_vocab()), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                      eos_token_id=2)
    model = MPNetModel(cfg, add_pooling_layer=False)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def build_classifier(backbone: Path, tmp_path: Path):
    """(model, tokenizer) as training builds them on ``backbone`` for PER/LOC/ORG/MISC."""
    from training import modeling
    from training.config import ModelConfig, RunConfig, TrainConfig

    cfg = TrainConfig(model=ModelConfig(backbone=str(backbone), max_length=32, stride=8, dropout=0.0),
                      run=RunConfig(output=str(tmp_path / "run")))
    return modeling.build(cfg, bio_labels(("PER", "LOC", "ORG", "MISC")))
