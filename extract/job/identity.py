"""What makes two runs the same job, so a resume never mixes outputs of different settings.

The identity is a flat mapping of named parts: every setting that changes outputs (by its dotted
config name), the input files (names, sizes, modification times; local paths or URIs), and per
model its config.json, tokenizer files and weights by full content hash. Hashing weights costs a read of the file, so
the hash is cached per (path, size, mtime) in the user's cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nerbatch" / "sha256.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def file_sha256(path: Path) -> str:
    """Full sha256 of a file, cached by (resolved path, size, mtime)."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache = _read_cache()
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    cache[key] = digest
    _write_cache(cache)
    return digest


def _read_cache() -> dict:
    try:
        return json.loads(CACHE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    try:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_name(f".{CACHE.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(list(cache.items())[-1000:])), encoding="utf-8")
        os.replace(tmp, CACHE)
    except OSError:
        pass  # a read-only home only costs a re-hash next time


def model_id(model_dir: Path) -> str:
    """The `model` column: the folder name and the weights' full sha256."""
    return f"{model_dir.resolve().name}@sha256:{file_sha256(model_dir / 'model.safetensors')}"


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def job_identity(settings: dict[str, Any], stamps: Iterable[tuple], model_dirs: Iterable[Path]) -> dict:
    """``settings``: {"input": {...}, "model": {...}, ...} of the parts that change outputs;
    ``stamps``: (file, size, mtime) of every input file as the plan saw them (no new stat)."""
    ident: dict[str, Any] = {}
    for name, value in settings.items():
        ident.update(_flat(name, value))
    ident["input files (names, sizes, modification times)"] = _digest(sorted({tuple(x) for x in stamps}))
    for i, m in enumerate(model_dirs):
        tag = f"model {i + 1} " if i else "model "
        ident[f"{tag}config.json"] = _digest((m / "config.json").read_text(encoding="utf-8"))
        tok = [(n, file_sha256(m / n)) for n in TOKENIZER_FILES if (m / n).is_file()]
        ident[f"{tag}tokenizer files"] = _digest(tok)
        ident[f"{tag}weights (sha256)"] = file_sha256(m / "model.safetensors")
    return json.loads(json.dumps(ident, default=str))  # as it will read back from _job.json


# Settings added after a release, with the value every job written before them used: an older
# output folder lacks the key and still resumes when the setting keeps that value.
ADDED_LATER = {"inference.engine": "torch"}


def differences(saved: dict, now: dict) -> list[str]:
    """One phrase per part that differs, naming it (e.g. "inference.dtype was 'fp32', now 'bf16'")."""
    out = []
    saved = {**{k: v for k, v in ADDED_LATER.items() if k in now}, **saved}
    for key in sorted(set(saved) | set(now)):
        if saved.get(key) != now.get(key):
            if key in saved and key in now:
                out.append(f"{key} was {saved[key]!r}, now {now[key]!r}")
            else:
                out.append(f"{key} {'is new' if key in now else 'is gone'}")
    return out
