"""The one check of a model and the labels asked of it: the batch job (extract/job/entities.py),
the service (extract/serve/engine.py) and Extractor's users call it before any work."""
from __future__ import annotations

from pathlib import Path

from extract.model.loaded import check_model_dir, check_tokenizer, model_labels


def check_model(path: str, labels=(), engine: str = "torch", where: str = "model.labels") -> Path:
    """The one check of a model and the labels asked of it (the job, the service, Extractor): the
    local model directory (a URI is copied once into the local cache), readable (config.json,
    tokenizer, safetensors header), able to produce ``labels`` (LabelsError naming ``where``), with
    a model.onnx / model.int8.onnx matching its weights for an ONNX engine. FileNotFoundError or
    ValueError saying the fix otherwise."""
    from extract.model.files import local_model_dir
    from extract.text.labels import check_types

    model_dir = check_model_dir(local_model_dir(str(path)))
    types = model_labels(model_dir)
    check_tokenizer(model_dir)
    if engine != "torch":
        from extract.model.onnx import check_onnx

        check_onnx(model_dir, engine)
    check_types(labels, [f"B-{t}" for t in types], where, str(model_dir))
    return model_dir
