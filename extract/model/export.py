"""Export a model directory's weights to ``model.onnx`` (torch's dynamo exporter), checked
against torch before it is kept; run by ``python -m extract export-onnx MODEL_DIR`` and at release.

An fp32 graph (the safetensors may be fp16 on disk; fp16 matmuls on CPU are slow), batch and
sequence axes dynamic, casing ids a real graph input for both families (BERT's token_type_ids;
MPNet's casing pre-hook is traced into the graph). The sha256 of the model.safetensors it was
exported from goes into its metadata_props, which extract/model/onnx.py's ``check_onnx`` compares
with the weights next to it. ``export_int8`` quantises that graph into model.int8.onnx
(inference.engine: onnx-int8), checked against torch the same way with a tolerance for int8.
onnx/onnxscript are needed here only.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from extract.core.fs import write_local_atomic
from extract.model.batch import batch_tensors
from extract.model.load import load
from extract.model.onnx import (INPUTS, INT8_FILE, ONNX_FILE, WEIGHTS_KEY, OnnxModelError, check_onnx, open_session,
                                quantize_int8, run_logits, weights_sha256)
from extract.text.casing import NUM_CASING_IDS

OPSET = 18  # the dynamo exporter's own opset (>= 17: LayerNormalization is one op)
EXPORT_TOLERANCE = 1e-3  # max |logit diff| torch vs ONNX Runtime accepted right after export
# int8: max |logit diff| over the largest |logit| accepted (the real student: docs/benchmarks/extract.md; a broken
# quantisation gives differences of the order of the logits themselves)
INT8_TOLERANCE = 0.15


def _example_batch(loaded) -> dict[str, np.ndarray]:
    """Two windows of different lengths (padding, casing ids set): batch 1 or a constant length
    would let the exporter specialise the axes it should keep dynamic."""
    rng = np.random.default_rng(0)
    tok = loaded.tokenizer
    vocab = len(tok)
    pieces = [(rng.integers(5, vocab, n), rng.integers(0, NUM_CASING_IDS, n)) for n in (11, 6)]
    return batch_tensors(pieces, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id,
                         bool(loaded.settings.get("casing", True)))


def _logits_module(model):
    """The model as a function of the three arrays, returning logits alone (a plain graph output).
    Calling the HF model inside keeps its forward pre-hooks (MPNet's casing table) in the trace."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    return Logits(model).eval()


def export_onnx(model_dir: str | Path, dest: str | Path | None = None, opset: int = OPSET,
                threads: int = 0) -> dict:
    """Write ``dest`` (default MODEL_DIR/model.onnx) from the model dir's weights, in fp32, then run
    it once beside torch; facts: path, sha256 of the weights, max |logit diff| of that check."""
    import torch

    # One warning line per torchvision op it cannot register (torchvision is not installed): noise.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    model_dir = Path(model_dir)
    dest = Path(dest) if dest else model_dir / ONNX_FILE
    sha = weights_sha256(model_dir)  # of the file about to be read, before it is read
    loaded = load(model_dir, "cpu", "fp32", threads)  # fp16 safetensors come back upcast to fp32
    module = _logits_module(loaded.model)
    example = _example_batch(loaded)
    args = tuple(torch.from_numpy(example[k]) for k in INPUTS)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns that it renames axes it already names itself: noise on every export.
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
        warnings.filterwarnings("ignore", category=FutureWarning)
        program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, verbose=False,
                                    input_names=list(INPUTS), output_names=["logits"],
                                    dynamic_shapes={k: {0: batch, 1: seq} for k in INPUTS})
        expected = module(*args).numpy()
    proto = program.model_proto
    _set_metadata(proto, {WEIGHTS_KEY: sha, "nerbatch.torch": torch.__version__})
    _save_atomic(proto, dest)
    diff = _verify(dest, example, expected)
    return {"path": str(dest), "weights_sha256": sha, "opset": opset, "max_abs_logit_diff": diff}


def export_int8(model_dir: str | Path, threads: int = 0) -> dict:
    """MODEL_DIR/model.int8.onnx from MODEL_DIR/model.onnx (exported first if missing or stale):
    ONNX Runtime dynamic quantisation, int8 per-channel weights of the MatMuls. Checked against
    torch on the export batch; facts as ``export_onnx``'s, with the relative difference."""
    import onnx
    import torch

    model_dir = Path(model_dir)
    try:
        src = check_onnx(model_dir)
    except OnnxModelError:
        src = Path(export_onnx(model_dir, threads=threads)["path"])
    dest = model_dir / INT8_FILE
    sha = weights_sha256(model_dir)
    tmp = dest.with_name(f".{dest.name}.quant.tmp")
    try:
        quantize_int8(src, tmp)
        proto = onnx.load_model(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    _set_metadata(proto, {WEIGHTS_KEY: sha, "nerbatch.torch": torch.__version__, "nerbatch.quantized": "dynamic-int8"})
    _save_atomic(proto, dest)
    loaded = load(model_dir, "cpu", "fp32", threads)
    example = _example_batch(loaded)
    with torch.no_grad():
        expected = _logits_module(loaded.model)(*(torch.from_numpy(example[k]) for k in INPUTS)).numpy()
    diff = _verify(dest, example, expected, INT8_TOLERANCE * max(1.0, float(np.abs(expected).max())))
    return {"path": str(dest), "weights_sha256": sha, "max_abs_logit_diff": diff,
            "relative_diff": diff / max(1.0, float(np.abs(expected).max()))}


def _set_metadata(proto, props: dict[str, str]) -> None:
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _save_atomic(proto, dest: Path) -> None:
    """One self-contained file (no external .data: the models here are far under protobuf's 2 GB),
    written under a temp name and renamed, so a reader never sees half a graph."""
    import onnx

    write_local_atomic(str(dest), lambda tmp: onnx.save_model(proto, tmp, save_as_external_data=False))


def _verify(path: Path, example: dict[str, np.ndarray], expected: np.ndarray,
            tolerance: float = EXPORT_TOLERANCE) -> float:
    """Refuse a graph that does not compute what torch does (an exporter bug is caught at release,
    not as slightly different entities in a job)."""
    got = run_logits(open_session(path, 1), example)
    diff = float(np.abs(got - expected).max())
    if not np.isfinite(diff) or diff > tolerance:
        path.unlink(missing_ok=True)
        raise OnnxModelError(f"{path}: ONNX Runtime logits differ from torch by {diff:.2e} on the export check "
                             f"(expected <= {tolerance:.2e}); the graph was removed. Report this with the "
                             "torch/onnxscript versions.")
    return diff
