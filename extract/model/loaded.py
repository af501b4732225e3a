"""What every engine shares about a model directory: the ``Loaded`` record, the directory checks,
the one reader of labels, ``ner_settings`` and the tokenizer, and the model's id.

The model is a plain Hugging Face ``*ForTokenClassification`` that takes casing ids as
``token_type_ids`` (extract/model/casing_table.py). Everything the batch job needs to use it the
way it was trained (max length, stride, BIO repair rule, casing input) sits in config.json under
``ner_settings``. Reading labels and settings takes config.json alone (no transformers, no
weights), so the CPU stages of a job never load a model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extract.core.cache import file_sha256

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
    engine: str = "torch"  # "onnx"/"onnx-int8": ``session`` (ONNX Runtime) runs the forward pass, ``model`` is None
    session: Any = None


def check_model_dir(path: str | Path) -> Path:
    """Fail early, with a fix, if ``path`` is not a usable local model directory."""
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
    check_no_remote_code(p)
    check_weights(p / "model.safetensors")
    return p


def check_no_remote_code(path: Path) -> None:
    """Refuse a model folder whose config asks for code from outside transformers (``auto_map``,
    ``trust_remote_code``, or a ``model_type`` transformers does not know): such a folder would
    run its own Python, or fail only on a worker with a hub URL made of the local path."""
    cfg = read_config(path)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path / 'config.json'}: expected a JSON object, found {type(cfg).__name__}.")
    if cfg.get("auto_map") or cfg.get("trust_remote_code"):
        key = "auto_map" if cfg.get("auto_map") else "trust_remote_code"
        raise ValueError(f"{path / 'config.json'} asks for remote code ({key}); nerbatch never runs code from a "
                         "model folder. Use a model of a transformers architecture (e.g. bert, mpnet) saved "
                         "without custom code.")
    kind = cfg.get("model_type")
    if not known_model_type(kind):
        raise ValueError(f"{path / 'config.json'}: model_type {kind!r} is not an architecture transformers knows "
                         "(it would need remote code); expected one such as 'bert' or 'mpnet'.")


def known_model_type(kind: Any) -> bool:
    """``kind`` is a model_type transformers itself implements. Asked of transformers' generated
    table first (auto_mappings: no torch import, ~60 MB less in a driver that only plans), then of
    the full one, which adds a few hand-written types and costs the torch import."""
    try:
        from transformers.models.auto.auto_mappings import CONFIG_MAPPING_NAMES as light
    except ImportError:  # a transformers without the generated table
        light = {}
    if kind in light:
        return True
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return kind in CONFIG_MAPPING_NAMES


def check_weights(file: Path) -> None:
    """The safetensors file is whole: its header parses and every tensor's bytes lie inside the
    file (a truncated or corrupt file fails here, with one line, not as a SafetensorError later)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 2 <= n <= min(size - 8, 100 << 20):
                raise ValueError(f"header length {n:,} does not fit a file of {size:,} bytes")
            header = json.loads(f.read(n))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{file} is not a readable safetensors file ({exc}); re-save the model with "
                         "save_pretrained(..., safe_serialization=True).") from None
    if 8 + n + max(ends, default=0) != size:
        raise ValueError(f"{file} is truncated or corrupt: its header describes {8 + n + max(ends, default=0):,} "
                         f"bytes, the file has {size:,}; re-save or copy the model again.")


def model_id(model_dir: Path) -> str:
    """The `model` column: the folder name and the weights' full sha256."""
    return f"{model_dir.resolve().name}@sha256:{file_sha256(model_dir / 'model.safetensors')}"


def read_config(path: Path) -> dict:
    """config.json of a model directory as a dict; ValueError (with a fix) when it does not parse."""
    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path) / 'config.json'} is not readable JSON ({exc}); re-save the model with "
                         "save_pretrained.") from None


def labels_settings(path: Path) -> tuple[list[str], dict]:
    """The label names in id order and ``ner_settings`` over the defaults, from config.json alone.
    Labels as transformers reads them: ``id2label`` ("0", "1", ...), or LABEL_i for a config
    without one (``num_labels``, 2 by default)."""
    cfg = read_config(path)
    id2label = cfg.get("id2label")
    if id2label is None:
        labels = [f"LABEL_{i}" for i in range(int(cfg.get("num_labels", 2)))]
    else:
        labels = [id2label[str(i)] for i in range(len(id2label))]
    return labels, {**DEFAULT_SETTINGS, **(cfg.get("ner_settings") or {})}


def load_tokenizer(path: Path) -> Any:
    """The model directory's fast tokenizer (character offsets need one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{path}: a fast tokenizer (tokenizer.json) is required for character offsets.")
    return tokenizer


def load_light_tokenizer(path: Path) -> Any:
    """tokenizer.json through the `tokenizers` library alone: what the read/tokenise workers use.
    transformers' AutoTokenizer costs ~5 CPU-s to import and build (torch with it), this 0.09, and
    each CPU-stage worker paid it before its first shard. ``same_tokens`` checks, where the model
    loads, that the two agree for the folder. No truncation or padding: whole documents."""
    tokenizer = check_tokenizer(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


# Cased and lowercase words, accents and ligatures, CJK, a special token written in the text, an
# e-mail, numbers, odd spaces and an emoji: where a tokenizer's settings outside tokenizer.json
# would show (a lowercasing, accent-stripping or added-token difference).
PROBE = ("Dr. \u00c9mile O'Neill-Smith (ACME Corp.) flew from S\u00e3o Paulo to K\u00f6ln and \u6771\u4eac "
         "on 3.5% fuel; [CLS] mail: a.b@c.org \ufb01nal na\u00efve CAF\u00c9 \t tab\u00a0nbsp \U0001f642 \u2026 end")


def same_tokens(tokenizer: Any, light: Any, path: Path) -> None:
    """The model's transformers tokenizer and tokenizer.json alone give the same wordpieces,
    offsets and words on ``PROBE``, or a clear error (the CPU stages would mis-tokenise)."""
    import numpy as np

    from extract.text.windows import encode

    a, b = encode(PROBE, tokenizer), encode(PROBE, light)
    for field in ("ids", "starts", "ends", "word_ids"):
        if not np.array_equal(getattr(a, field), getattr(b, field)):
            raise ValueError(
                f"{path}: tokenizer.json alone tokenizes differently from transformers' tokenizer for this "
                f"folder ({field} differ on a probe text); the read/tokenise workers load tokenizer.json alone. "
                "Save the tokenizer again with tokenizer.save_pretrained(folder) so tokenizer.json holds all "
                "of its settings.")


def tokenizer_labels_settings(path: Path) -> tuple[Any, list[str], dict]:
    """What every engine reads beside the weights: the fast tokenizer, the label names in id order
    and ``ner_settings`` over the defaults."""
    return (load_tokenizer(path), *labels_settings(path))


def check_tokenizer(path: Path) -> Any:
    """tokenizer.json must parse (with the light `tokenizers` library: no torch in the driver);
    returns it as loaded."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise ValueError(f"{path} has no tokenizer.json: a fast tokenizer is needed for character offsets; "
                         "save it with tokenizer.save_pretrained(...).")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 - any parse error means an unusable tokenizer
        raise ValueError(f"{file} does not load ({type(exc).__name__}: {exc}).") from None


def model_labels(path: Path) -> list[str]:
    """Entity types the model can produce, read from config.json; also checks that the weights'
    safetensors header reads, so a broken model fails before any work (ValueError, with a fix)."""
    id2label = read_config(path).get("id2label") or {}
    try:
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="np") as f:
            f.keys()
    except Exception as exc:  # noqa: BLE001 - any header problem means unusable weights
        raise ValueError(f"{path / 'model.safetensors'} is not a readable safetensors file ({exc}).") from None
    from extract.text.labels import entity_types

    types = entity_types(id2label.values())
    if not types:
        raise ValueError(f"{path / 'config.json'} has no BIO labels in id2label (found {list(id2label.values())}); "
                         "expected tags like B-PER, I-PER.")
    return types

