"""Entries of a local folder or glob that are not regular files (FIFOs, sockets, dangling
symlinks, symlinked folders): found by a cheap second scan, never opened, never silent. Under a
text name they are listed (the text reader gives each an error row); anything else is counted in
input.skipped_files with its reason."""
from __future__ import annotations

import os
import stat

from extract.core import fs


# skipped with the reason even under a text name (a symlink loop is not a path the job can resolve)
NEVER_LISTED = ("symlink to a folder, not followed", "unreadable folder", "unreadable symlink")


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder"), (stat.S_ISREG, "regular file")):
        if test(mode):
            return name
    return f"file of mode {mode:o}"


def not_regular(path: str) -> str | None:
    """Why a local path is not a readable regular file (None when it is one, or does not exist at
    all), from stat calls only: nothing is opened, so a FIFO never blocks."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if not os.path.islink(path):
            return None  # gone, or unreadable: opening it says why
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(exc, FileNotFoundError):
            return f"dangling symlink: its target {target!r} does not exist"
        return f"unreadable symlink (to {target!r}): {exc.strerror or type(exc).__name__}"
    if stat.S_ISREG(st.st_mode):
        return None
    link = " (through a symlink)" if os.path.islink(path) else ""
    return f"not a regular file: {file_kind(st.st_mode)}{link}"


def _why_skipped(entry: os.DirEntry) -> str | None:
    """"dir" for a subfolder to walk, None for a regular file (or a symlink to one), else the reason
    (short, for the counts in run.json) an entry of a local folder is not read as a file."""
    try:
        if entry.is_symlink():
            try:
                st = os.stat(entry.path)
            except FileNotFoundError:
                return "dangling symlink"
            except OSError:
                return "unreadable symlink"
            if stat.S_ISREG(st.st_mode):
                return None
            if stat.S_ISDIR(st.st_mode):
                return "symlink to a folder, not followed"
            return f"not a regular file: {file_kind(st.st_mode)}"
        if entry.is_dir(follow_symlinks=False):
            return "dir"
        if entry.is_file(follow_symlinks=False):
            return None
        return f"not a regular file: {file_kind(entry.stat(follow_symlinks=False).st_mode)}"
    except OSError:
        return "cannot stat"


def odd_in_folder(spec: str) -> list[tuple[str, str]]:
    """``(uri, reason)`` of every entry below a local folder that its listing (regular files, by
    os.walk) leaves out: FIFOs, sockets, devices, dangling symlinks, symlinked folders (os.walk does
    not follow them), subfolders that cannot be listed. One scandir per folder; only symlinks and
    entries of an unusual type are stat-ed."""
    _, folder = fs.resolve(spec)
    prefix = spec if spec.endswith("/") else spec + "/"
    out: list[tuple[str, str]] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(folder, rel_dir)) as it:
                entries = list(it)
        except OSError:
            out.append((prefix + rel_dir if rel_dir else spec, "unreadable folder"))
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            why = _why_skipped(entry)
            if why == "dir":
                pending.append(rel)
            elif why is not None:
                out.append((prefix + rel, why))
    out.sort(key=lambda e: _walk_order(e[0][len(prefix):]))
    return out


def odd_in_glob(spec: str, found: list[str]) -> list[tuple[str, str]]:
    """``(uri, reason)`` of a plain local glob's matches (glob.glob's, which the listing follows)
    that are neither listed regular files nor folders: FIFOs, sockets, devices, dangling symlinks."""
    if fs.split(spec)[0]:
        return []
    import glob

    listed = set(found)
    out = []
    for path in sorted(glob.glob(spec, recursive=True)):
        if path in listed or os.path.isdir(path):
            continue
        why = _why_path_skipped(path)
        if why:
            out.append((path, why))
    return out


def _why_path_skipped(path: str) -> str | None:
    """The short reason a glob's match is not read as a file; None for a regular file or a folder."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone since it was matched
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            return "dangling symlink"
        except OSError:
            return "unreadable symlink"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"not a regular file: {file_kind(mode)}"


def _walk_order(rel: str) -> tuple:
    """os.walk's order with sorted names (the listing's): a folder's own entries, then each subfolder."""
    parts = rel.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def with_odd_entries(found: list[str], odd: list[tuple[str, str]], folder: str | None):
    """The listed files (reason None) and the odd entries in one listing order: os.walk order
    below ``folder``, else (a glob) sorted by uri."""
    import heapq

    if not odd:
        return [(full, None) for full in found]
    if folder is None:
        def key(e):
            return e[0]
    else:
        cut = len(folder if folder.endswith("/") else folder + "/")

        def key(e):
            return _walk_order(e[0][cut:])
    return list(heapq.merge([(full, None) for full in found], odd, key=key))
