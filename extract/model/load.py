"""Load a model directory for inference: ``load(...)`` picks the engine (torch here, ONNX Runtime
in extract/model/onnx.py); both give a ``Loaded`` (extract/model/loaded.py).

torch: the safetensors weights in the asked dtype on the asked device, in eval mode, with an
MPNet casing table re-attached (extract/model/casing_table.py).
"""
from __future__ import annotations

from pathlib import Path

from extract.model.casing_table import check_casing_input, expecting_casing_table
from extract.model.loaded import Loaded, check_model_dir, model_id, tokenizer_labels_settings
from extract.model.onnx import load_onnx


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
    if engine in ("onnx", "onnx-int8"):
        if device == "cuda" or dtype != "fp32":
            raise ValueError(f"inference.engine {engine} runs on the CPU with fp32 activations; found device "
                             f"{device!r}, dtype {dtype!r}.")
        return load_onnx(path, threads, engine)
    if engine != "torch":
        raise ValueError(f"inference.engine: expected 'torch', 'onnx' or 'onnx-int8', found {engine!r}.")
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
    tokenizer, labels, settings = tokenizer_labels_settings(p)
    check_casing_input(model, settings, p)
    return Loaded(model, tokenizer, labels, settings, device, torch_dtype, model_id(p))
