"""The user's cache folder for this project, and the sha256 cache kept in it.

``cache_root()`` is ``$XDG_CACHE_HOME/nerbatch`` (``~/.cache/nerbatch`` when XDG_CACHE_HOME is
unset or empty), read at each call. Under it: ``sha256.json`` (``file_sha256``'s cache) and
``models/`` (remote model folders copied by extract/model/files.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from extract.core.fs import write_local_atomic

SHA256_CACHE = "sha256.json"
SHA256_CACHE_ENTRIES = 1000  # the newest entries kept


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nerbatch"


def file_sha256(path: Path) -> str:
    """Full sha256 of a file, cached by (resolved path, size, mtime): hashing weights costs a read
    of the whole file, so a check or a job start after the first reads none."""
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
        return json.loads((cache_root() / SHA256_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    text = json.dumps(dict(list(cache.items())[-SHA256_CACHE_ENTRIES:]))
    try:
        write_local_atomic(str(cache_root() / SHA256_CACHE), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    except OSError:
        pass  # a read-only home only costs a re-hash next time
