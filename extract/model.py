"""Load a token-classification model directory and run it on windows of wordpieces.

The model is a plain Hugging Face ``*ForTokenClassification`` whose token-type embedding was
widened to carry casing ids; everything the batch job needs to use it the way it was trained
(max length, stride, BIO repair rule) sits in config.json under ``ner_settings``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from extract.casing import NUM_CASING_IDS

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


def load(path: str | Path, device: str = "cpu", dtype: str = "fp32", threads: int = 0) -> Loaded:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    p = check_model_dir(path)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars per actor drown the job's own progress
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    model = AutoModelForTokenClassification.from_pretrained(
        str(p), use_safetensors=True, trust_remote_code=False, dtype=torch_dtype)
    model.to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(p), trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{p}: a fast tokenizer (tokenizer.json) is required for character offsets.")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    settings = {**DEFAULT_SETTINGS, **(getattr(model.config, "ner_settings", None) or {})}
    from extract.identity import model_id

    return Loaded(model, tokenizer, labels, settings, device, torch_dtype, model_id(p))


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
