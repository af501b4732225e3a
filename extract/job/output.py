"""The output folder: refuse dangerous paths, mark it as this job's, and on --overwrite delete only
what a job wrote there.

A job folder holds ``_job.json`` (the marker, with the job's identity), ``run.json``, and the
subfolders of parts. ``--overwrite`` removes a folder only when it carries the marker and holds
nothing else: a folder with foreign files, or the working directory, home, the filesystem root,
the project root or any folder above them, is refused before anything is touched.

The folder is a local path or a URI (``s3://``, ``gs://``, ``hdfs://``; ``file://`` counts as
local), read and written through extract/core/fs.py. A URI skips the local checks above, but a bucket
(or filesystem) root is refused. Object stores have no folders: a "folder" there is a key prefix,
and one whose files were all deleted can linger as an empty marker, so there a folder with no
files below it counts as empty.

One writer per folder: ``lock`` takes ``_lock.json`` (pid, host, start time) before anything is
written and the job lets it go at its end, on an error or a signal too. Locally the lock file is
created with O_CREAT|O_EXCL, so of two jobs started together exactly one gets it; the other is
refused (exit 2) naming the holder. A lock left by a process of this host that no longer runs is
taken over, with a note. Object stores have no create-if-absent through pyarrow: there the job
checks, writes its lock, waits a moment and reads it back, and goes ahead only if it is still its
own (two jobs starting within that moment: the later write wins, the other backs off); a lock held
by another host is never taken over, since whether that process lives cannot be told from here.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import pyarrow.fs as pafs

from extract.core import fs, listing
from extract.core.config import ConfigError

MARKER = "_job.json"
LOCK = "_lock.json"  # one writer per folder (``lock``); gone after the job ends
TOP_FILES = {MARKER, "run.json", "plan.json", LOCK, f".{MARKER}.tmp", ".run.json.tmp", ".plan.json.tmp"}
# Temporaries of the files above, whoever wrote them (extract/core/fs.py names them per writer).
TOP_TEMP = re.compile(r"^\.(?:_job|run|plan|_lock)\.json(?:\.[\w-]+)*\.tmp$")
PART = re.compile(r"^(part-[\w.-]+\.parquet|[\w.-]+\.json|\.[\w.-]+\.tmp)$")  # parts, attempt notes, temps
SPILL, SPILL_DIRS = "_dups", ("keys", "later")  # = extract.job.duplicates.RAY_SPILL and its folders
PIECES = "_pieces"  # staged pieces of shards in flight (extract/job/stages.py): <shard>-<chars>/p*
PIECE_DIR = re.compile(r"^[\w.-]+-\d+$")
PIECE_FILE = re.compile(r"^p\d{6}\.(?:data\.parquet|docs\.parquet|json)$|^\.[\w.-]+\.tmp$")
SPILL_FILE = re.compile(r"^[\w.-]+\.arrow(?:\.[\w-]+\.tmp)?$|^\.[\w.-]+\.tmp$")
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


def _is_lock(name: str) -> bool:
    """The lock file, or a temporary of it (a job writing or taking over the lock)."""
    return name == LOCK or (name.startswith(f".{LOCK}.") and name.endswith(".tmp"))


def _is_empty(out: str) -> bool:
    """Nothing there, or an empty folder; on a remote store, a "folder" with no files below it.
    The job's own lock (``lock``, taken before this is asked) does not count."""
    if not fs.is_local(out):
        return not listing.has_files(out, ignore=lambda i, path: _is_lock(i.base_name) and fs.parent(i.path) == path)
    path = fs.resolve(out)[1]
    if not os.path.lexists(path):
        return True
    if not os.path.isdir(path):
        raise ConfigError(f"output.path {out} is a file, not a folder. Choose a new folder.")
    with os.scandir(path) as it:
        return all(_is_lock(e.name) and e.is_file() for e in it)


def job_entries(out: Out, subfolders: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(files this job writes, anything else) in ``out``, as paths or URIs."""
    out = str(out)
    ours, foreign = [], []
    for name, kind in _scan(out):
        entry = fs.join(out, name)
        if kind == "file" and (name in TOP_FILES or TOP_TEMP.match(name)):
            ours.append(entry)
        elif kind == "dir" and name in subfolders:
            for sub, sub_kind in _scan(entry):
                (ours if sub_kind == "file" and PART.match(sub) else foreign).append(fs.join(entry, sub))
        elif kind == "dir" and name == SPILL:
            _spill_entries(entry, ours, foreign)
        elif kind == "dir" and name == PIECES:
            _piece_entries(entry, ours, foreign)
        else:
            foreign.append(entry)
    return ours, foreign


def _piece_entries(folder: str, ours: list[str], foreign: list[str]) -> None:
    """OUT/_pieces (pieces of shards a stopped job had not assembled yet): <shard>-<chars>/p* files."""
    for sub, kind in _scan(folder):
        entry = fs.join(folder, sub)
        if kind == "dir" and PIECE_DIR.match(sub):
            for f, f_kind in _scan(entry):
                (ours if f_kind == "file" and PIECE_FILE.match(f) else foreign).append(fs.join(entry, f))
        else:
            foreign.append(entry)


def _spill_entries(folder: str, ours: list[str], foreign: list[str]) -> None:
    """OUT/_dups (the Ray duplicate pass's spill, left by a job stopped while settling): its .arrow
    files in keys/ and later/ are the job's."""
    for sub, kind in _scan(folder):
        entry = fs.join(folder, sub)
        if kind == "dir" and sub in SPILL_DIRS:
            for f, f_kind in _scan(entry):
                (ours if f_kind == "file" and SPILL_FILE.match(f) else foreign).append(fs.join(entry, f))
        else:
            foreign.append(entry)


def _relative(path: str, out: str) -> str:
    base = out.rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def overwrite(out: Out, subfolders: tuple[str, ...], fresh: bool = False) -> None:
    """Delete a previous job's files; refuse, touching nothing, unless every file is the job's.
    ``fresh``: the folder did not exist before this job's lock made it (nothing to delete). The
    lock itself is left alone: it is this job's."""
    out = str(out)
    local = fs.is_local(out)
    if fresh or ((not fs.exists(out)) if local else _is_empty(out)):
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
        if fs.basename(path) != MARKER and fs.basename(path) != LOCK:
            fs.delete(path, missing_ok=True)
    if local:
        pieces = fs.resolve(fs.join(out, PIECES))[1]
        staged = [f"{PIECES}/{d}" for d in (os.listdir(pieces) if os.path.isdir(pieces) else [])]
        for sub in (*subfolders, *(f"{SPILL}/{d}" for d in SPILL_DIRS), SPILL, *staged, PIECES):  # emptied above
            folder = fs.resolve(fs.join(out, sub))[1]
            if os.path.isdir(folder):
                os.rmdir(folder)
    fs.delete(marker)


def prepare(out: Out, identity: dict, subfolders: tuple[str, ...], overwrite_first: bool,
            fresh: bool = False) -> None:
    """Make ``out`` this job's folder: new, empty, or holding this same job (resume). Call it
    holding the folder's lock (``lock``); ``fresh``: the lock made the folder."""
    from extract.job.identity import differences

    out = str(out)
    if overwrite_first:
        overwrite(out, subfolders, fresh)
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


# ------------------------------------------------------------------------------- one writer

LOCK_SETTLE_S = 1.0  # object stores: how long a fresh lock must stay ours before the job goes ahead


@dataclass
class Lock:
    """This job's hold on an output folder (``lock``); ``release`` lets it go (idempotent)."""

    path: str
    holder: dict
    created_folder: bool = False  # the folder did not exist before the lock made it
    took_over: dict | None = None  # the stale lock this one replaced, if any
    released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        _HELD.discard(self.path)
        try:
            if _read_lock(self.path, retries=0).get("token") == self.holder["token"]:
                fs.delete(self.path, missing_ok=True)
        except (OSError, ValueError):
            pass  # gone already, or not readable: nothing of ours to remove


_HELD: set[str] = set()  # lock files this process holds (a second job in one process is refused too)


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {holder.get('since', '?')}")


def _read_lock(path: str, retries: int = 20) -> dict:
    """The lock's holder; a lock being written this instant (empty or half there) is read again
    for up to a second. ValueError when it stays unreadable, FileNotFoundError when it is gone."""
    for attempt in range(retries + 1):
        try:
            data = json.loads(fs.read_text(path))
            if isinstance(data, dict) and "pid" in data:
                return data
        except ValueError:
            pass
        if attempt < retries:
            time.sleep(0.05)
    raise ValueError(f"{path} is not a readable lock")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, exited but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _stale(holder: dict, path: str) -> bool:
    """A lock of a process on this host that no longer runs (or a leftover of an earlier process
    that had this process's pid); never one held in this process or on another host."""
    if holder.get("host") != socket.gethostname() or path in _HELD:
        return False
    pid = int(holder.get("pid", 0) or 0)
    return pid == os.getpid() or not _pid_alive(pid)


def _create_local(path: str, holder: dict) -> bool:
    """Create the lock file only if none exists (O_CREAT|O_EXCL): whether this call made it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, json.dumps(holder, indent=2).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _take_over_local(path: str, stale: dict) -> bool:
    """Move a stale lock aside, making sure it is the one judged stale (another job may have taken
    it over and written its own in between); whether it was moved."""
    aside = fs.join(fs.parent(path), f".{LOCK}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    local_path, local_aside = fs.resolve(path)[1], fs.resolve(aside)[1]
    try:
        os.rename(local_path, local_aside)
    except FileNotFoundError:
        return False  # someone else moved it first
    try:
        with open(local_aside, encoding="utf-8") as f:
            moved = json.loads(f.read())
    except (OSError, ValueError):
        moved = {}
    if moved.get("token") != stale.get("token"):
        try:
            os.link(local_aside, local_path)  # a live lock after all: put it back unless one is there again
        except OSError:
            pass
        os.unlink(local_aside)
        return False
    os.unlink(local_aside)
    return True


def lock(out: Out) -> Lock:
    """Take ``out``'s lock for this process (making the folder if need be), or raise ConfigError
    naming the job that holds it. A stale lock (see ``_stale``) is taken over with a note on stderr."""
    out = str(out)
    path = fs.join(out, LOCK)
    local = fs.is_local(out)
    created = not fs.exists(out) if local else False
    fs.makedirs(out)
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "token": uuid.uuid4().hex,
              "command": " ".join(sys.argv)[:500]}
    took_over = None
    for _ in range(10):
        if local and _create_local(fs.resolve(path)[1], holder):
            break
        if not local and not fs.exists(path):
            fs.write_bytes_atomic(path, json.dumps(holder, indent=2).encode("utf-8"))
            time.sleep(LOCK_SETTLE_S)  # a job that checked at the same moment writes within it
            try:
                if _read_lock(path).get("token") == holder["token"]:
                    break
            except (FileNotFoundError, ValueError):
                continue
        try:
            current = _read_lock(path)
        except FileNotFoundError:
            continue  # released in between: try again
        except ValueError:
            raise ConfigError(f"output.path {out} is locked by {path}, which cannot be read. If no job writes "
                              f"there any more, delete {path} and run again.") from None
        if not _stale(current, path):
            raise ConfigError(f"output.path {out} is in use by another job ({_describe(current)}): one writer per "
                              f"folder. Wait for it to end, or choose another output.path (if that job is gone, "
                              f"delete {path}).")
        if local and not _take_over_local(path, current):
            continue
        if not local:
            fs.delete(path, missing_ok=True)
        took_over = current
        print(f"note: output.path {out}: took over the lock of a job that is no longer running "
              f"({_describe(current)})", file=sys.stderr, flush=True)
    else:
        raise ConfigError(f"output.path {out}: could not take {path} (other jobs keep taking it). Run again.")
    _HELD.add(path)
    return Lock(path, holder, created, took_over)
