"""Casing ids for encoders without a token-type embedding (MPNet): a ``casing_embeddings`` table
added to the word embeddings, attached at load (``check_casing_input``).

BERT-family models take casing ids through their token-type embedding, widened to one row per
casing id at training time (training/modeling.py); config.json ``ner_settings.casing_input`` says
which way a model takes them ("token_type" | "embedding"). Either way callers feed the casing ids
as ``token_type_ids``: here a forward pre-hook routes them into the table.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from extract.text.casing import NUM_CASING_IDS

CASING_MODULE = "casing_embeddings"  # registered on base_model.embeddings, saved in model.safetensors


def casing_input_of(model) -> str:
    """How this architecture can take casing ids: "token_type" (it has a token-type embedding to
    widen, the BERT family) or "embedding" (a casing table of our own, added to word embeddings)."""
    emb = getattr(model.base_model, "embeddings", None)
    return "token_type" if hasattr(emb, "token_type_embeddings") else "embedding"


def _padding_aware_positions(emb, input_ids):
    """What MPNet/RoBERTa embeddings compute from input_ids (they cannot once given inputs_embeds):
    padding_idx + 1, + 2, ... for real tokens, padding_idx for padding."""
    pad = getattr(emb, "padding_idx", None)
    if pad is None:
        return None  # the embeddings' own default (arange) is what input_ids would give too
    mask = input_ids.ne(pad).int()
    return (mask.cumsum(dim=1).type_as(mask) * mask).long() + pad


def _casing_pre_hook(module, args, kwargs):
    """``model(input_ids=..., token_type_ids=casing, ...)`` -> ``model(inputs_embeds=words + casing,
    position_ids=<as from input_ids>, ...)``; stateless, so one model serves any number of calls."""
    casing = kwargs.pop("token_type_ids", None)
    if casing is None:
        return args, kwargs
    if args:
        if len(args) > 1:
            raise TypeError("casing input: pass attention_mask and the rest by keyword.")
        kwargs["input_ids"], args = args[0], ()
    input_ids = kwargs.get("input_ids")
    if input_ids is None or kwargs.get("inputs_embeds") is not None:
        raise ValueError("casing input: token_type_ids (casing ids) need input_ids, not inputs_embeds.")
    emb = module.base_model.embeddings
    if kwargs.get("position_ids") is None:
        kwargs["position_ids"] = _padding_aware_positions(emb, input_ids)
    kwargs["input_ids"] = None
    kwargs["inputs_embeds"] = emb.word_embeddings(input_ids) + getattr(emb, CASING_MODULE)(casing)
    return args, kwargs


@contextmanager
def expecting_casing_table(path: str | Path):
    """While ``from_pretrained`` reads a model dir whose config says casing_input "embedding", tell
    transformers that key is expected (``load_casing_weights`` puts it in afterwards), so it does
    not print an UNEXPECTED-key load report per process. Other unexpected keys still report."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    if (cfg.get("ner_settings") or {}).get("casing_input") != "embedding":
        yield
        return
    from transformers import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING, AutoConfig

    cls = MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING[type(AutoConfig.from_pretrained(str(path)))]
    own = "_keys_to_ignore_on_load_unexpected" in cls.__dict__
    before = cls.__dict__.get("_keys_to_ignore_on_load_unexpected")
    cls._keys_to_ignore_on_load_unexpected = [*(getattr(cls, "_keys_to_ignore_on_load_unexpected") or []),
                                              rf"embeddings\.{CASING_MODULE}\.weight$"]
    try:
        yield
    finally:
        if own:
            cls._keys_to_ignore_on_load_unexpected = before
        else:
            del cls._keys_to_ignore_on_load_unexpected


def add_casing_embedding(model, n: int = NUM_CASING_IDS) -> None:
    """Give a model without a token-type embedding a casing embedding: ``n`` rows of zeros added to
    the word embeddings (before position embeddings and LayerNorm, where BERT adds token types).

    Zeros make the model compute exactly what the backbone did; training learns what casing adds.
    The table is a submodule, so ``state_dict``/``save_pretrained`` store it in model.safetensors;
    ``from_pretrained`` drops it as an unknown key, so ``load_casing_weights`` puts it back. A
    forward pre-hook routes ``token_type_ids`` into it: callers feed both families the same way.
    """
    import torch

    emb = model.base_model.embeddings
    if not hasattr(emb, CASING_MODULE):
        word = emb.word_embeddings
        table = torch.nn.Embedding(n, word.embedding_dim, device=word.weight.device, dtype=word.weight.dtype)
        with torch.no_grad():
            table.weight.zero_()
        setattr(emb, CASING_MODULE, table)
    if not getattr(model, "_casing_hook_installed", False):
        model.register_forward_pre_hook(_casing_pre_hook, with_kwargs=True)
        model._casing_hook_installed = True


def load_casing_weights(model, path: Path, required: bool = True) -> bool:
    """Copy the casing table from ``path``/model.safetensors into ``model`` (matched by name)."""
    import torch
    from safetensors import safe_open

    name = next(n for n, _ in model.named_parameters() if n.endswith(f"{CASING_MODULE}.weight"))
    with safe_open(str(Path(path) / "model.safetensors"), framework="pt") as f:
        keys = [k for k in f.keys() if k == name or k.endswith(f"embeddings.{CASING_MODULE}.weight")]
        if not keys:
            if required:
                raise ValueError(f"{path}: config.json says casing_input 'embedding' but model.safetensors has "
                                 f"no {name}; re-save the model from training.")
            return False
        weight = f.get_tensor(keys[0])
    param = model.get_parameter(name)
    if weight.shape != param.shape:
        raise ValueError(f"{path}: {keys[0]} has shape {tuple(weight.shape)}, expected {tuple(param.shape)}.")
    with torch.no_grad():
        param.copy_(weight.to(param.dtype))
    return True


def check_casing_input(model, settings: dict, path: Path) -> None:
    """At load: re-attach the casing table of an "embedding" model; refuse a model that expects
    casing ids but has nowhere to take them (they would be dropped without a word)."""
    how = settings.get("casing_input") or casing_input_of(model)
    if how == "embedding" and settings.get("casing", True):
        if casing_input_of(model) != "embedding":
            raise ValueError(f"{path}: ner_settings.casing_input is 'embedding' but this model has a token-type "
                             "embedding; expected 'token_type'.")
        add_casing_embedding(model)
        # A foreign MPNet dir without ner_settings gets a zero table: exactly the plain model.
        load_casing_weights(model, path, required="casing_input" in settings)
