"""Model directories given as URIs (``s3://``, ``gs://``, ``hdfs://``): listed where they are,
copied once into a local cache folder, loaded from there.

``local_model_dir(path)`` is the one entry point: a local path comes back as it is (a ``file://``
URI as the path it names); a remote folder is checked (config.json and model.safetensors must be
there) and the files a model needs are copied to ``<cache root>/models/<sha256 of the URI>/<folder
name>/`` (extract/core/cache.py: ``$XDG_CACHE_HOME/nerbatch``, ``~/.cache/nerbatch`` by default;
the folder keeps its name, so the ``model`` column reads as it would for a local copy). Only
config.json, model.safetensors, the tokenizer files, any ``casing*.safetensors`` and metrics.json
(the dev scores run.json compares against) are copied: never pickled weights, never code.

Each call lists the remote folder once (one request) and copies only files whose size or time
changed since the last copy, so a model updated in place is picked up and an unchanged one costs
no download. Copies are streamed to a temporary name and renamed, under a lock file, so several
workers on one node starting at once download once and never see half a file.
"""
from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
from pathlib import Path

import pyarrow.fs as pafs

from extract.core import cache, fs

REQUIRED = ("config.json", "model.safetensors")
# Every file a tokenizer may be saved as (copied with a remote model). The first four, in this order,
# are the ones a job's identity hashes (extract/job/identity.py): keep them first and in order.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "added_tokens.json", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model")
EXTRA_FILES = ("metrics.json",)
EXTRA_PATTERNS = ("casing*.safetensors",)
MANIFEST = ".nerbatch-source.json"


def is_remote(path: str | os.PathLike) -> bool:
    return not fs.is_local(os.fspath(path))


def wanted(name: str) -> bool:
    """Whether a model folder's file is one the job copies."""
    return (name in REQUIRED or name in TOKENIZER_FILES or name in EXTRA_FILES
            or any(fnmatch.fnmatchcase(name, p) for p in EXTRA_PATTERNS))


def remote_files(uri: str) -> dict[str, list]:
    """``{name: [size, mtime_ns]}`` of the files directly in a remote model folder (one listing);
    the checks extract/model/loaded.py's ``check_model_dir`` makes of a local folder, by listing:
    FileNotFoundError (with a fix) when it is missing or lacks config.json / model.safetensors;
    ValueError when the store cannot be read (credentials, network, a malformed URI)."""
    uri = uri.rstrip("/")
    try:
        fsys, path = fs.resolve(uri)
        infos = fsys.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        infos = []
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot list the model directory {uri}: {type(exc).__name__}: {exc}") from None
    files = {i.base_name: [int(i.size), int(i.mtime_ns) if i.mtime_ns is not None else None]
             for i in infos if i.type == pafs.FileType.File}
    if not infos:
        raise FileNotFoundError(
            errno.ENOENT, f"Model directory not found: {uri}. Expected a folder with config.json and "
            "model.safetensors (e.g. one written by `python -m training finetune`, copied there whole).")
    missing = [f for f in REQUIRED if f not in files]
    if missing:
        raise FileNotFoundError(
            errno.ENOENT, f"{uri} is not a model directory: missing {', '.join(missing)}. Only safetensors "
            "weights are loaded (no pickle); save with `save_pretrained(..., safe_serialization=True)`.")
    return files


def cache_dir(uri: str) -> Path:
    uri = uri.rstrip("/")
    return cache.cache_root() / "models" / hashlib.sha256(uri.encode("utf-8")).hexdigest()[:32] / fs.basename(uri)


def local_model_dir(path: str | os.PathLike) -> Path:
    """A local folder holding the model: ``path`` itself when it is local, else the cached copy of
    the remote folder (brought up to date first). Raises FileNotFoundError / ValueError with a fix
    when the remote folder is not a usable model directory or cannot be read."""
    path = os.fspath(path)
    scheme = fs.split(path)[0]
    if scheme == "":
        return Path(path)
    if scheme == "file":
        return Path(fs.resolve(path)[1])
    uri = path.rstrip("/")
    files = {n: stamp for n, stamp in remote_files(uri).items() if wanted(n)}
    folder = cache_dir(uri)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / ".lock"):
        _sync(uri, files, folder)
    return folder


def _sync(uri: str, files: dict[str, list], folder: Path) -> None:
    manifest = folder / MANIFEST
    try:
        have = json.loads(manifest.read_text(encoding="utf-8"))
        have = have.get("files", {}) if have.get("uri") == uri else {}
    except (OSError, ValueError):
        have = {}
    for name, stamp in sorted(files.items()):
        local = folder / name
        if have.get(name) == stamp and local.is_file() and local.stat().st_size == stamp[0]:
            continue
        try:
            fs.download(fs.join(uri, name), str(local))
        except OSError as exc:
            raise ValueError(f"cannot copy {fs.join(uri, name)} to {local}: {type(exc).__name__}: {exc}") from None
    for entry in folder.iterdir():  # a file gone from the remote folder (a casing table) goes here too
        if entry.is_file() and entry.name != MANIFEST and not entry.name.startswith(".") and entry.name not in files:
            entry.unlink()
    text = json.dumps({"uri": uri, "files": files}, sort_keys=True)
    fs.write_local_atomic(str(manifest), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class _locked:
    """An exclusive lock file for the duration of a with-block (POSIX flock; a no-op elsewhere)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> "_locked":
        try:
            import fcntl
        except ImportError:  # not POSIX: atomic renames still keep each file whole
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
