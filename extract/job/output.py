"""The output folder: refuse dangerous paths, mark it as this job's, and on --overwrite delete only
what a job wrote there.

A job folder holds ``_job.json`` (the marker, with the job's identity), ``run.json``, and the
subfolders of parts. ``--overwrite`` removes a folder only when it carries the marker and holds
nothing else: a folder with foreign files, or the working directory, home, the filesystem root,
the project root or any folder above them, is refused before anything is touched.

The folder is a local path or a URI (``s3://``, ``gs://``, ``hdfs://``; ``file://`` counts as
local), read and written through extract/fs.py. A URI skips the local checks above, but a bucket
(or filesystem) root is refused. Object stores have no folders: a "folder" there is a key prefix,
and one whose files were all deleted can linger as an empty marker, so there a folder with no
files below it counts as empty.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Union

import pyarrow.fs as pafs

from extract.core import fs, listing
from extract.core.config import ConfigError

MARKER = "_job.json"
TOP_FILES = {MARKER, "run.json", "plan.json", f".{MARKER}.tmp", ".run.json.tmp", ".plan.json.tmp"}
PART = re.compile(r"^(part-[\w.-]+\.parquet|[\w.-]+\.json|\.[\w.-]+\.tmp)$")  # parts, attempt notes, temps
PROJECT_ROOT = Path(__file__).resolve().parents[2]

Out = Union[Path, str]  # a local folder (Path) or a URI (str)


def check_output_path(raw: str) -> Out:
    """The output folder, or a ConfigError when writing or deleting there could hurt the user: a
    resolved ``Path`` for a local folder (a ``file://`` URI included), the URI (without a trailing
    "/") for any other store."""
    if not raw.strip():
        raise ConfigError("output.path is empty. Set it to a new folder, e.g. --set output.path=output/run1.")
    scheme, authority, path = fs.split(raw)
    if scheme not in ("", "file"):
        if not authority:
            raise ConfigError(f"output.path {raw!r}: expected {scheme}://<bucket or host>/<folder>, e.g. "
                              f"{scheme}://my-bucket/ner/run1.")
        if not path.strip("/"):
            raise ConfigError(f"output.path {raw!r} is the root of {scheme}://{authority}: the job only writes into "
                              f"a folder of its own. Choose a folder in it, e.g. {scheme}://{authority}/ner/run1.")
        return raw.rstrip("/")
    try:
        local = fs.resolve(raw)[1] if scheme else os.path.expanduser(raw)
    except ValueError as exc:
        raise ConfigError(f"output.path: {exc}") from None
    out = Path(local).resolve()
    protected = {Path("/"), Path.home().resolve(), Path.cwd().resolve(), PROJECT_ROOT}
    for p in protected:
        if out == p or out in p.parents:
            raise ConfigError(f"output.path {raw!r} is {out}, which is or contains {p}: the job only writes into "
                              "a folder of its own. Choose a new folder, e.g. output/run1.")
    return out


def _parts(uri: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(store, bucket or host, path components) of a remote URI; None for a local one."""
    scheme, authority, path = fs.split(uri)
    if scheme in ("", "file"):
        return None
    store = "gs" if scheme == "gcs" else scheme
    return store, authority, tuple(p for p in path.split("/") if p)


def check_not_inputs(out: Out, inputs: list[str]) -> None:
    """Writing (or overwriting) where the input lives would mix outputs into the corpus."""
    remote_out = _parts(str(out))
    for f in inputs:
        remote_in = _parts(f)
        if remote_out is None and remote_in is None:
            inside = Path(out) in Path(fs.resolve(f)[1]).resolve().parents
        elif remote_out is not None and remote_in is not None:
            n = len(remote_out[2])
            inside = remote_in[:2] == remote_out[:2] and len(remote_in[2]) > n and remote_in[2][:n] == remote_out[2]
        else:
            inside = False
        if inside:
            raise ConfigError(f"output.path {out} contains the input file {f}. Choose an output folder outside "
                              "the input.")


def _scan(uri: str) -> list[tuple[str, str]]:
    """``(name, kind)`` of the entries directly in a folder, sorted by name; kind is "file" (a
    symlink to a file included), "dir" (never a symlink: the job does not follow links out of its
    folder) or "other"."""
    fsys, path = fs.resolve(uri)
    out = []
    if isinstance(fsys, pafs.LocalFileSystem):
        with os.scandir(path) as it:
            for e in it:
                kind = "file" if e.is_file() else ("dir" if e.is_dir() and not e.is_symlink() else "other")
                out.append((e.name, kind))
    else:
        for info in fsys.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
            kind = {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(info.type, "other")
            out.append((info.base_name, kind))
    return sorted(out)


def _is_empty(out: str) -> bool:
    """Nothing there, or an empty folder; on a remote store, a "folder" with no files below it."""
    if not fs.is_local(out):
        return not listing.has_files(out)
    path = fs.resolve(out)[1]
    if not os.path.lexists(path):
        return True
    if not os.path.isdir(path):
        raise ConfigError(f"output.path {out} is a file, not a folder. Choose a new folder.")
    with os.scandir(path) as it:
        return next(it, None) is None


def job_entries(out: Out, subfolders: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(files this job writes, anything else) in ``out``, as paths or URIs."""
    out = str(out)
    ours, foreign = [], []
    for name, kind in _scan(out):
        entry = fs.join(out, name)
        if kind == "file" and name in TOP_FILES:
            ours.append(entry)
        elif kind == "dir" and name in subfolders:
            for sub, sub_kind in _scan(entry):
                (ours if sub_kind == "file" and PART.match(sub) else foreign).append(fs.join(entry, sub))
        else:
            foreign.append(entry)
    return ours, foreign


def _relative(path: str, out: str) -> str:
    base = out.rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def overwrite(out: Out, subfolders: tuple[str, ...]) -> None:
    """Delete a previous job's files; refuse, touching nothing, unless every file is the job's."""
    out = str(out)
    local = fs.is_local(out)
    if (not fs.exists(out)) if local else _is_empty(out):
        return
    marker = fs.join(out, MARKER)
    if not fs.is_file(marker):
        raise ConfigError(f"--overwrite: {out} holds no {MARKER}, so it is not a folder this job wrote; nothing "
                          "was deleted. Choose another output.path, or empty it yourself.")
    ours, foreign = job_entries(out, subfolders)
    if foreign:
        names = ", ".join(_relative(p, out) for p in foreign[:5])
        raise ConfigError(f"--overwrite: {out} holds {len(foreign)} file(s) this job did not write ({names}); "
                          "nothing was deleted. Move them away or choose another output.path.")
    for path in ours:
        if fs.basename(path) != MARKER:
            fs.delete(path, missing_ok=True)
    if local:
        for sub in subfolders:
            folder = fs.resolve(fs.join(out, sub))[1]
            if os.path.isdir(folder):
                os.rmdir(folder)
    fs.delete(marker)


def prepare(out: Out, identity: dict, subfolders: tuple[str, ...], overwrite_first: bool) -> None:
    """Make ``out`` this job's folder: new, empty, or holding this same job (resume)."""
    from extract.job.identity import differences

    out = str(out)
    if overwrite_first:
        overwrite(out, subfolders)
    marker = fs.join(out, MARKER)
    if fs.is_file(marker):
        try:
            saved = json.loads(fs.read_text(marker)).get("identity", {})
        except ValueError:
            saved = {}
        diff = differences(saved, identity)
        if diff:
            raise ConfigError(f"output.path {out} holds results of a different job: {'; '.join(diff)}. Resuming "
                              "would mix them. Pass --overwrite to start fresh, or choose another output.path.")
    elif not _is_empty(out):
        raise ConfigError(f"output.path {out} exists and is not the output of this job (no {MARKER}). "
                          "Choose a new or empty folder.")
    for sub in subfolders:
        folder = fs.join(out, sub)
        fs.makedirs(folder)
        if fs.is_object_store(folder):
            continue  # an upload is atomic there: no temporary files
        for name in listing.listdir(folder):
            if name.startswith(".") and name.endswith(".tmp"):
                fs.delete(fs.join(folder, name), missing_ok=True)  # left by a run that was killed mid-write
    fs.write_bytes_atomic(marker, json.dumps({"identity": identity}, indent=2, sort_keys=True).encode("utf-8"))
