"""Load a token-classification model directory and run it on windows of wordpieces.

The model is a plain Hugging Face ``*ForTokenClassification`` that takes casing ids as
``token_type_ids``: BERT-family models through their token-type embedding widened to one row per
casing id, encoders without one (MPNet) through a separate ``casing_embeddings`` table added to the
word embeddings (``ner_settings.casing_input``: "token_type" | "embedding"). Everything the batch
job needs to use it the way it was trained (max length, stride, BIO repair rule, casing input) sits
in config.json under ``ner_settings``.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from extract.text.casing import NUM_CASING_IDS

DEFAULT_SETTINGS = {"max_length": 128, "stride": 32, "repair": "drop", "casing": True}


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    labels: list[str]
    settings: dict
    device: str
    dtype: Any
    model_id: str
    engine: str = "torch"  # "onnx": ``session`` (ONNX Runtime) runs the forward pass, ``model`` is None
    session: Any = None


def check_model_dir(path: str | Path) -> Path:
    """Fail early, with a fix, if ``path`` is not a usable model directory."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(
            f"Model directory not found: {p}. Expected a folder with config.json and "
            "model.safetensors (e.g. data/models/default, or one written by `python -m training finetune`).")
    missing = [f for f in ("config.json", "model.safetensors") if not (p / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{p} is not a model directory: missing {', '.join(missing)}. Only safetensors weights are "
            "loaded (no pickle); save with `save_pretrained(..., safe_serialization=True)`.")
    return p


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but CUDA is not available; use device: auto or cpu.")
    return device


def resolve_dtype(name: str, device: str):
    import torch

    if device == "cpu" and name == "fp16":
        return torch.float32  # fp16 matmuls on CPU are slow or unsupported; weights upcast on load
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def load(path: str | Path, device: str = "cpu", dtype: str = "fp32", threads: int = 0,
         engine: str = "torch") -> Loaded:
    if engine == "onnx":
        if device == "cuda" or dtype != "fp32":
            raise ValueError(f"inference.engine onnx runs fp32 on the CPU; found device {device!r}, dtype {dtype!r}.")
        from extract.model.onnx import load_onnx

        return load_onnx(path, threads)
    if engine != "torch":
        raise ValueError(f"inference.engine: expected 'torch' or 'onnx', found {engine!r}.")
    import torch
    from transformers import AutoModelForTokenClassification

    p = check_model_dir(path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars per actor drown the job's own progress
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    with expecting_casing_table(p):
        model = AutoModelForTokenClassification.from_pretrained(
            str(p), use_safetensors=True, trust_remote_code=False, dtype=torch_dtype)
    model.to(device).eval()
    tokenizer, labels, settings = tokenizer_labels_settings(p, model.config)
    check_casing_input(model, settings, p)
    from extract.job.identity import model_id

    return Loaded(model, tokenizer, labels, settings, device, torch_dtype, model_id(p))


def tokenizer_labels_settings(p: Path, config) -> tuple[Any, list[str], dict]:
    """What every engine reads beside the weights: the fast tokenizer, the label names in id order
    and ``ner_settings`` over the defaults."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(p), trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{p}: a fast tokenizer (tokenizer.json) is required for character offsets.")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    return tokenizer, labels, {**DEFAULT_SETTINGS, **(getattr(config, "ner_settings", None) or {})}


def check_tokenizer(path: Path) -> None:
    """tokenizer.json must parse (with the light `tokenizers` library: no torch in the driver)."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise ValueError(f"{path} has no tokenizer.json: a fast tokenizer is needed for character offsets; "
                         "save it with tokenizer.save_pretrained(...).")
    try:
        Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 - any parse error means an unusable tokenizer
        raise ValueError(f"{file} does not load ({type(exc).__name__}: {exc}).") from None


def model_labels(path: Path) -> list[str]:
    """Entity types the model can produce, read from config.json; also checks that the weights'
    safetensors header reads, so a broken model fails before any work (ValueError, with a fix)."""
    import json

    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path / 'config.json'} is not readable JSON ({exc}); re-save the model with "
                         "save_pretrained.") from None
    id2label = cfg.get("id2label") or {}
    try:
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="np") as f:
            f.keys()
    except Exception as exc:  # noqa: BLE001 - any header problem means unusable weights
        raise ValueError(f"{path / 'model.safetensors'} is not a readable safetensors file ({exc}).") from None
    types = [tag[2:] for tag in id2label.values() if isinstance(tag, str) and tag[:2] in ("B-", "I-")]
    if not types:
        raise ValueError(f"{path / 'config.json'} has no BIO labels in id2label (found {list(id2label.values())}); "
                         "expected tags like B-PER, I-PER.")
    return list(dict.fromkeys(types))


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


# --- casing for encoders without a token-type embedding (MPNet) -----------------------------------

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
    import json

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


def batch_tensors(pieces: list[tuple[np.ndarray, np.ndarray]], cls_id: int, sep_id: int,
                  pad_id: int, use_casing: bool = True) -> dict[str, np.ndarray]:
    """[CLS] window [SEP] + padding to the longest in the batch (dynamic padding)."""
    width = max(len(ids) for ids, _ in pieces) + 2
    ids = np.full((len(pieces), width), pad_id, dtype=np.int64)
    types = np.zeros((len(pieces), width), dtype=np.int64)
    mask = np.zeros((len(pieces), width), dtype=np.int64)
    for i, (wid, cas) in enumerate(pieces):
        n = len(wid)
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = cls_id, wid, sep_id
        if use_casing:
            types[i, 1:n + 1] = cas
        mask[i, :n + 2] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
