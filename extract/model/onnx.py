"""ONNX Runtime as the forward pass (``inference.engine: onnx``): export, check, load, run.

Only the model's forward pass changes engine: tokenizer, windows, casing ids, batching, window
merging, temperature and decoding are the torch path's own (extract/predict.py), fed the same
numpy arrays ``batch_tensors`` builds. On this project's 2 cores ONNX Runtime fp32 gave +14-17%
words/s with identical predictions (FACTS.md).

``model.onnx`` sits next to model.safetensors and is written by ``export_onnx`` (at release, or
``python -m extract export-onnx MODEL_DIR``): an fp32 graph (the safetensors may be fp16 on disk;
fp16 matmuls on CPU are slow), batch and sequence axes dynamic, casing ids a real graph input for
both families (BERT's token_type_ids; MPNet's casing pre-hook is traced into the graph). The
sha256 of the model.safetensors it was exported from is stored in its metadata_props, so a graph
older than the weights is refused instead of silently running other weights.

onnxruntime is imported only here, and only when used; onnx/onnxscript only for export.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
WEIGHTS_KEY = "nerbatch.weights_sha256"  # metadata_props: sha256 of the model.safetensors exported
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # as batch_tensors names them
OPSET = 18  # the dynamo exporter's own opset (>= 17: LayerNormalization is one op)
EXPORT_TOLERANCE = 1e-3  # max |logit diff| torch vs ONNX Runtime accepted right after export


class OnnxModelError(ValueError):
    """model.onnx is missing, unreadable or does not match the weights next to it."""


def export_command(model_dir: str | Path) -> str:
    return f"python -m extract export-onnx {model_dir}"


def weights_sha256(model_dir: Path) -> str:
    from extract.job.identity import file_sha256  # cached by (path, size, mtime): no re-read per check

    return file_sha256(Path(model_dir) / "model.safetensors")


# --- export ---------------------------------------------------------------------------------------

def _example_batch(loaded) -> dict[str, np.ndarray]:
    """Two windows of different lengths (padding, casing ids set): batch 1 or a constant length
    would let the exporter specialise the axes it should keep dynamic."""
    from extract.text.casing import NUM_CASING_IDS
    from extract.model.load import batch_tensors

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

    from extract.model.load import load

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

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _verify(path: Path, example: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """Refuse a graph that does not compute what torch does (an exporter bug is caught at release,
    not as slightly different entities in a job)."""
    got = run_logits(open_session(path, 1), example)
    diff = float(np.abs(got - expected).max())
    if not np.isfinite(diff) or diff > EXPORT_TOLERANCE:
        path.unlink(missing_ok=True)
        raise OnnxModelError(f"{path}: ONNX Runtime logits differ from torch by {diff:.2e} on the export check "
                             f"(expected <= {EXPORT_TOLERANCE}); the graph was removed. Report this with the "
                             "torch/onnxscript versions.")
    return diff


# --- check, load, run -------------------------------------------------------------------------------

def open_session(path: Path, threads: int, optimize: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)  # 0: ONNX Runtime's default (all cores)
    opts.inter_op_num_threads = 1  # one graph, run op after op: parallelism is inside the ops
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are noise per actor
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def check_onnx(model_dir: str | Path) -> Path:
    """MODEL_DIR/model.onnx, loadable and exported from MODEL_DIR's model.safetensors; an
    OnnxModelError naming what was expected, what was found and the export command otherwise."""
    model_dir = Path(model_dir)
    path = model_dir / ONNX_FILE
    fix = f"Export it with `{export_command(model_dir)}` (or set inference.engine: torch)."
    if not path.is_file():
        found = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
        raise OnnxModelError(f"inference.engine is onnx but {model_dir} has no {ONNX_FILE} (found: "
                             f"{', '.join(found) or 'nothing'}). {fix}")
    try:
        session = open_session(path, 1, optimize=False)  # reads the file, skips the graph rewrites
    except Exception as exc:  # noqa: BLE001 - any load failure means an unusable graph
        raise OnnxModelError(f"{path} does not load in ONNX Runtime ({type(exc).__name__}: {exc}). {fix}") from None
    stored = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
    actual = weights_sha256(model_dir)
    if stored != actual:
        was = f"weights sha256 {stored[:12]}..." if stored else f"no {WEIGHTS_KEY} metadata"
        raise OnnxModelError(f"{path} was not exported from the model.safetensors next to it (it records {was}, "
                             f"the weights are {actual[:12]}...): it is older than the weights or from another "
                             f"model. Re-export: `{export_command(model_dir)}`.")
    names = {i.name for i in session.get_inputs()}
    if not names <= set(INPUTS):
        raise OnnxModelError(f"{path} takes inputs {sorted(names)}; expected some of {list(INPUTS)}. "
                             f"Re-export: `{export_command(model_dir)}`.")
    return path


def load_onnx(path: str | Path, threads: int = 0):
    """A ``Loaded`` whose forward pass is an ONNX Runtime session: no torch model is built, the
    tokenizer, labels and ner_settings come from the same files as ``extract.model.load``'s."""
    from transformers import AutoConfig

    from extract.job.identity import model_id
    from extract.model.load import Loaded, check_model_dir, tokenizer_labels_settings

    p = check_model_dir(path)
    session = open_session(check_onnx(p), threads)
    tokenizer, labels, settings = tokenizer_labels_settings(p, AutoConfig.from_pretrained(str(p), trust_remote_code=False))
    return Loaded(None, tokenizer, labels, settings, "cpu", "fp32", model_id(p), engine="onnx", session=session)


def run_logits(session: Any, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(batch, width, n_labels) float32 logits for ``batch_tensors``' arrays. Feeds only the inputs
    the graph declares: an exporter may drop an input the model ignores."""
    feed = {i.name: arrays[i.name] for i in session.get_inputs()}
    return session.run(["logits"], feed)[0].astype(np.float32, copy=False)
