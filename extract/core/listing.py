"""Listing through extract/core/fs.py's filesystems: every file below a folder, a glob, or a
folder's own entries; local paths and URIs alike.

- Folders are listed in os.walk order (a folder's files by name, then its subfolders by name);
  local folders by os.walk itself (symlinked subfolders are not descended into).
- Globs (``*``, ``?``, ``[...]``, ``**``) match as glob.glob(recursive=True) does, sorted by uri;
  a glob in a bucket or host name is refused.
- Object stores have no folders: a deleted file can leave an empty "folder/" marker behind, which
  ``has_files`` tells from a folder with files.
"""
from __future__ import annotations

import errno
import os
import posixpath
import re
from stat import S_ISREG

import pyarrow.fs as pafs

from extract.core.fs import LOCAL, resolve, split

__all__ = ["GLOB_CHARS", "glob_regex", "list_files", "has_files", "listdir"]

GLOB_CHARS = "*?["


def _has_glob(uri: str) -> bool:
    return any(ch in uri for ch in GLOB_CHARS)


def _walk_key(rel: str) -> tuple:
    """Sort key giving os.walk's order with sorted dirnames and filenames: a folder's own files
    first, then each subfolder in name order."""
    parts = rel.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def _component_regex(comp: str) -> str:
    """One path component of a glob (no "/") as a regex: * and ? never cross "/", [...] as in
    fnmatch ([!...] negates); like glob.glob, a wildcard does not match a leading "."."""
    out = [] if comp.startswith(".") else [r"(?!\.)"]
    i, n = 0, len(comp)
    while i < n:
        c = comp[i]
        i += 1
        if c == "*":
            while i < n and comp[i] == "*":
                i += 1
            out.append(r"[^/]*")
        elif c == "?":
            out.append(r"[^/]")
        elif c == "[":
            j = i
            if j < n and comp[j] == "!":
                j += 1
            if j < n and comp[j] == "]":
                j += 1
            while j < n and comp[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(r"\[")
                continue
            body = comp[i:j].replace("\\", "\\\\")
            i = j + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"(?!/)[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern:
    """A relative glob pattern ("a/*.json", "**/x?.txt") as a regex over relative "/" paths.
    ``**`` as a whole component matches zero or more folders (all files below when it is last)."""
    comps = pattern.split("/")
    parts: list[str] = []
    for k, comp in enumerate(comps):
        last = k == len(comps) - 1
        if comp == "**":
            parts.append(r"(?:(?!\.)[^/]+/)*" + (r"(?!\.)[^/]+" if last else ""))
        else:
            parts.append(_component_regex(comp) + ("" if last else "/"))
    return re.compile("".join(parts), re.S)


def _rel(base: str, path: str) -> str:
    base = base.rstrip("/")
    return path[len(base) + 1:] if path.startswith(base + "/") else path.lstrip("/")


def list_files(spec: str, what: str = "path", literal: bool = False) -> list[tuple[str, int]]:
    """``[(uri, size)]`` for a file, a folder (every file below it, in os.walk order: a folder's
    files by name, then its subfolders by name) or a glob (``*``, ``?``, ``[...]``, ``**``; sorted
    by uri, as sorted(glob.glob(spec, recursive=True)) gives them). Returned uris keep the spec's
    form (scheme, or a relative local path). A glob that matches nothing gives []; a plain path
    that is neither a file nor a folder raises FileNotFoundError naming ``what``. ``literal``: the
    spec names a file or folder as written, "*?[" included (a folder called "runs[1]")."""
    spec = os.fspath(spec)
    if not literal and _has_glob(spec):
        return _glob(spec, what)
    fs, path = resolve(spec)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [(spec, int(info.size))]
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(errno.ENOENT, f"{what} {spec} matched no file: expected a file, a folder or a "
                                              "glob, and nothing exists there")
    prefix = spec if spec.endswith("/") else spec + "/"
    if fs is LOCAL:
        return [(prefix + rel, n) for rel, n in _walk_local(path)]
    found = [(_rel(path, i.path), int(i.size)) for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
             if i.type == pafs.FileType.File]
    found.sort(key=lambda e: _walk_key(e[0]))
    return [(prefix + rel, n) for rel, n in found]


def _walk_local(path: str) -> list[tuple[str, int]]:
    """os.walk itself (pyarrow's recursive listing would descend into symlinked folders, which
    os.walk does not): regular files (symlinks to them included), relative "/" paths and sizes."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # a broken symlink
                continue
            if S_ISREG(st.st_mode):
                out.append((os.path.relpath(full, path).replace(os.sep, "/"), st.st_size))
    return out


def _glob(spec: str, what: str) -> list[tuple[str, int]]:
    scheme, authority, path = split(spec)
    if scheme and _has_glob(authority):
        raise ValueError(f"{what} {spec}: a glob in the bucket or host name is not supported; put it in the path")
    first = min(spec.index(c) for c in GLOB_CHARS if c in spec)
    slash = spec.rfind("/", 0, first)
    base = spec[: slash + 1]  # "" for a relative local glob such as "*.jsonl"
    pattern = spec[len(base):]
    regex = glob_regex(pattern)
    fs, root = resolve(base or ".")
    # Only "a/b*" patterns need more than the base folder's own entries (FileSelector has no depth limit).
    sel = pafs.FileSelector(root, recursive="/" in pattern or "**" in pattern, allow_not_found=True)
    try:
        infos = fs.get_file_info(sel)
    except NotADirectoryError:
        return []
    out = []
    for i in infos:
        if i.type != pafs.FileType.File:
            continue
        rel = _rel(root, i.path)
        if regex.fullmatch(rel):
            out.append((base + rel, int(i.size)))
    out.sort()
    return out


def has_files(uri: str, ignore=None) -> bool:
    """Whether any file lies below ``uri`` (False for nothing there), leaving out those for which
    ``ignore(info, folder_path)`` is true. On an object store a "folder" whose files were all
    deleted may still be listed through an empty marker: it holds no files."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        return True
    if info.type != pafs.FileType.Directory:
        return False
    sel = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return any(i.type == pafs.FileType.File and not (ignore and ignore(i, path)) for i in fs.get_file_info(sel))


def listdir(uri: str) -> list[str]:
    """Names (files and folders) directly in a folder, sorted."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(errno.ENOENT, f"expected a folder at {uri}, found nothing there")
    if info.type == pafs.FileType.File:
        raise NotADirectoryError(errno.ENOTDIR, f"expected a folder at {uri}, found a file")
    return sorted(posixpath.basename(i.path.rstrip("/")) for i in fs.get_file_info(pafs.FileSelector(path)))
