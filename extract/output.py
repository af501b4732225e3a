"""The output folder: refuse dangerous paths, mark it as this job's, and on --overwrite delete only
what a job wrote there.

A job folder holds ``_job.json`` (the marker, with the job's identity), ``run.json``, and the
subfolders of parts. ``--overwrite`` removes a folder only when it carries the marker and holds
nothing else: a folder with foreign files, or the working directory, home, the filesystem root,
the project root or any folder above them, is refused before anything is touched.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from extract.config import ConfigError

MARKER = "_job.json"
TOP_FILES = {MARKER, "run.json", f".{MARKER}.tmp", ".run.json.tmp"}
PART = re.compile(r"^(part-[\w.-]+\.parquet|[\w.-]+\.json|\.[\w.-]+\.tmp)$")  # parts, attempt notes, temps
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def check_output_path(raw: str) -> Path:
    """The output folder, or a ConfigError when writing or deleting there could hurt the user."""
    if not raw.strip():
        raise ConfigError("output.path is empty. Set it to a new folder, e.g. --set output.path=output/run1.")
    out = Path(raw).expanduser().resolve()
    protected = {Path("/"), Path.home().resolve(), Path.cwd().resolve(), PROJECT_ROOT}
    for p in protected:
        if out == p or out in p.parents:
            raise ConfigError(f"output.path {raw!r} is {out}, which is or contains {p}: the job only writes into "
                              "a folder of its own. Choose a new folder, e.g. output/run1.")
    return out


def check_not_inputs(out: Path, inputs: list[str]) -> None:
    """Writing (or overwriting) where the input lives would mix outputs into the corpus."""
    for f in inputs:
        if out in Path(f).resolve().parents:
            raise ConfigError(f"output.path {out} contains the input file {f}. Choose an output folder outside "
                              "the input.")


def job_entries(out: Path, subfolders: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """(files this job writes, anything else) in ``out``."""
    ours, foreign = [], []
    for entry in sorted(out.iterdir()):
        if entry.is_file() and entry.name in TOP_FILES:
            ours.append(entry)
        elif entry.is_dir() and not entry.is_symlink() and entry.name in subfolders:
            for sub in sorted(entry.iterdir()):
                (ours if sub.is_file() and PART.match(sub.name) else foreign).append(sub)
        else:
            foreign.append(entry)
    return ours, foreign


def overwrite(out: Path, subfolders: tuple[str, ...]) -> None:
    """Delete a previous job's files; refuse, touching nothing, unless every file is the job's."""
    if not out.exists():
        return
    if not (out / MARKER).is_file():
        raise ConfigError(f"--overwrite: {out} holds no {MARKER}, so it is not a folder this job wrote; nothing "
                          "was deleted. Choose another output.path, or empty it yourself.")
    ours, foreign = job_entries(out, subfolders)
    if foreign:
        names = ", ".join(str(p.relative_to(out)) for p in foreign[:5])
        raise ConfigError(f"--overwrite: {out} holds {len(foreign)} file(s) this job did not write ({names}); "
                          "nothing was deleted. Move them away or choose another output.path.")
    for path in ours:
        if path.name != MARKER:
            path.unlink()
    for sub in subfolders:
        if (out / sub).is_dir():
            (out / sub).rmdir()
    (out / MARKER).unlink()


def prepare(out: Path, identity: dict, subfolders: tuple[str, ...], overwrite_first: bool) -> None:
    """Make ``out`` this job's folder: new, empty, or holding this same job (resume)."""
    from extract.identity import differences

    if overwrite_first:
        overwrite(out, subfolders)
    marker = out / MARKER
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text(encoding="utf-8")).get("identity", {})
        except ValueError:
            saved = {}
        diff = differences(saved, identity)
        if diff:
            raise ConfigError(f"output.path {out} holds results of a different job: {'; '.join(diff)}. Resuming "
                              "would mix them. Pass --overwrite to start fresh, or choose another output.path.")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"output.path {out} exists and is not the output of this job (no {MARKER}). "
                          "Choose a new or empty folder.")
    for sub in subfolders:
        (out / sub).mkdir(parents=True, exist_ok=True)
        for tmp in (out / sub).glob(".*.tmp"):
            tmp.unlink()  # left by a run that was killed mid-write
    tmp = out / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"identity": identity}, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, marker)
