"""What makes two runs the same job, so a resume never mixes outputs of different settings.

The identity is a flat mapping of named parts: every setting that changes outputs (by its dotted
config name), the input files (names, sizes, modification times; local paths or URIs), and per
model its config.json, tokenizer files and weights by full content hash (``file_sha256``: cached
per (path, size, mtime) in the user's cache folder, extract/core/cache.py).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from extract.core.cache import file_sha256
from extract.model.files import TOKENIZER_FILES

# The tokenizer files a job's identity hashes: the first four of the one list, in its order, as the
# identity always has. The job runs the fast tokenizer, tokenizer.json (with tokenizer_config.json
# and special_tokens_map.json); the files after them only feed slow tokenizers. Hashing more of
# them would change the identity of existing output folders that hold them: they would not resume.
HASHED_TOKENIZER_FILES = TOKENIZER_FILES[:4]


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
        tok = [(n, file_sha256(m / n)) for n in HASHED_TOKENIZER_FILES if (m / n).is_file()]
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
