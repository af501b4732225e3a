"""Tiny random models for tests: a char-level WordPiece vocab and a 2-layer BERT built from a config.

No network and no downloaded weights. transformers 5 ignores ``vocab_file=`` for the fast BERT
tokenizer (FACTS.md), so the vocab is passed as a dict.
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
