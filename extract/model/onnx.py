"""ONNX Runtime as the forward pass (``inference.engine: onnx``): check, load, run ``model.onnx``.

Only the model's forward pass changes engine: tokenizer, windows, casing ids, batching, window
merging, temperature and decoding are the torch path's own (extract/model/predict.py), fed the
same numpy arrays ``batch_tensors`` builds (extract/model/batch.py). fp32 ONNX Runtime gives the
same entities as torch fp32 but was slower on CPU (docs/benchmarks/extract.md, measured by
scripts/onnx_check.py), so torch stays the default engine.

``model.onnx`` sits next to model.safetensors and is written by extract/model/export.py (at
release, or ``python -m extract export-onnx MODEL_DIR``); ``inference.engine: onnx-int8`` runs
``model.int8.onnx`` beside it (``export-onnx --int8``: ONNX Runtime dynamic quantisation, int8
per-channel weights of the MatMuls, activations quantised per batch; embeddings stay fp32). The
sha256 of the model.safetensors it was exported from is stored in its metadata_props, so a graph
older than the weights is refused instead of silently running other weights.

onnxruntime is imported only here, and only when used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from extract.core.cache import file_sha256
from extract.model.loaded import Loaded, check_model_dir, model_id, tokenizer_labels_settings

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
FILES = {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}  # inference.engine -> the graph it runs
WEIGHTS_KEY = "nerbatch.weights_sha256"  # metadata_props: sha256 of the model.safetensors exported
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # as batch_tensors names them


class OnnxModelError(ValueError):
    """model.onnx is missing, unreadable or does not match the weights next to it."""


def export_command(model_dir: str | Path, engine: str = "onnx") -> str:
    return f"python -m extract export-onnx {model_dir}" + (" --int8" if engine == "onnx-int8" else "")


def weights_sha256(model_dir: Path) -> str:
    return file_sha256(Path(model_dir) / "model.safetensors")  # cached by (path, size, mtime): no re-read per check


def quantize_int8(src: Path, dest: Path) -> None:
    """ONNX Runtime dynamic quantisation of ``src`` into ``dest``: int8 per-channel MatMul weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dest), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"])


def open_session(path: Path, threads: int, optimize: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)  # 0: ONNX Runtime's default (all cores)
    opts.inter_op_num_threads = 1  # one graph, run op after op: parallelism is inside the ops
    opts.log_severity_level = 3  # warnings about unused initialisers etc. are noise per actor
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def check_onnx(model_dir: str | Path, engine: str = "onnx") -> Path:
    """MODEL_DIR/model.onnx (engine onnx-int8: model.int8.onnx), loadable and exported from MODEL_DIR's
    model.safetensors; an OnnxModelError naming what was expected, what was found and the export
    command otherwise."""
    model_dir = Path(model_dir)
    name = FILES[engine]
    path = model_dir / name
    command = export_command(model_dir, engine)
    fix = f"Export it with `{command}` (or set inference.engine: torch)."
    if not path.is_file():
        found = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
        raise OnnxModelError(f"inference.engine is {engine} but {model_dir} has no {name} (found: "
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
                             f"model. Re-export: `{command}`.")
    names = {i.name for i in session.get_inputs()}
    if not names <= set(INPUTS):
        raise OnnxModelError(f"{path} takes inputs {sorted(names)}; expected some of {list(INPUTS)}. "
                             f"Re-export: `{command}`.")
    return path


def load_onnx(path: str | Path, threads: int = 0, engine: str = "onnx") -> Loaded:
    """A ``Loaded`` whose forward pass is an ONNX Runtime session (engine onnx or onnx-int8): no
    torch model is built, the tokenizer, labels and ner_settings come from the same reader as the
    torch engine's."""
    p = check_model_dir(path)
    session = open_session(check_onnx(p, engine), threads)
    tokenizer, labels, settings = tokenizer_labels_settings(p)
    return Loaded(None, tokenizer, labels, settings, "cpu", "fp32", model_id(p), engine=engine, session=session)


def run_logits(session: Any, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(batch, width, n_labels) float32 logits for ``batch_tensors``' arrays. Feeds only the inputs
    the graph declares: an exporter may drop an input the model ignores."""
    feed = {i.name: arrays[i.name] for i in session.get_inputs()}
    return session.run(["logits"], feed)[0].astype(np.float32, copy=False)
