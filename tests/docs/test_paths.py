"""The docs stay true to the tree: every repository path that README.md and docs/ name exists.

What counts as a repository path (read from the Markdown source, code spans and prose alike):

- a word with a slash whose first part is an entry at the top of this repository (``extract/job/``,
  ``configs/extract.yaml``, ``.ci/run``), or whose last part has a file suffix (``foo/bar.py``), so
  a misspelt first folder is caught too;
- ``path::name`` (a test): the file exists and defines ``name`` (``*`` globs the name);
- a Markdown link target: from README.md relative to the repository, from a page under docs/
  relative to that page (``mkdocs build --strict`` checks those as well).

Exempt, by rule:

- ``../shared/...`` (the shared data and design notes beside the checkout, not in this repository),
  ``runs/`` and ``output/`` (what jobs and training write), ``site/`` (the built docs);
- placeholders and user-chosen examples: a part in capitals (``OUT/docs/``, ``MODEL_DIR/model.onnx``),
  in angle brackets (``<output>/best``), with a glob or brace (``corpus/*.jsonl.gz``, ``part-*.parquet``),
  and the example names in EXAMPLES (what a reader types for their own corpus or output);
- URIs (``s3://bucket/...``, ``http://...``), absolute paths (``/tmp``) and ``~/...``;
- GENERATED: files this repository's scripts write and git ignores (scripts/setup.sh's ONNX graphs);
- PENDING: paths that a step running now writes and that are committed when it ends. Delete an entry
  once its path is in git.
"""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

EXEMPT_ROOTS = ("runs", "output", "site", ".venv")
# Names a reader replaces with their own (the examples in README.md and docs/).
EXAMPLES = ("out", "corpus", "bucket", "my")
GENERATED = {
    "data/models/default/model.onnx": "scripts/setup.sh exports it from the safetensors (ignored by git)",
    "data/models/default/model.int8.onnx": "scripts/setup.sh quantises model.onnx (ignored by git)",
    "scripts/gpu_wheels": "scripts/gpu_wheels.sh downloads the wheels (ignored by git)",
}
PENDING: dict[str, str] = {}  # path -> why it is not in git yet (a step running now writes it)
SUFFIXES = {".py", ".sh", ".yaml", ".yml", ".toml", ".md", ".json", ".jsonl", ".txt", ".parquet", ".onnx",
            ".safetensors", ".html", ".cfg", ".ini", ".csv", ".gz"}

LINK = re.compile(r"\]\(([^)\s]+)\)")
# A run of path characters holding a slash, not glued to a URI scheme, a drive, a home or another path.
PATHISH = re.compile(r"(?<![\w.:/~@$-])((?:\.\./)*[\w.<>*{}-]+(?:/[\w.<>*{}@+-]*)+)(?:::([\w*]+))?")


def top_entries() -> set[str]:
    return {p.name for p in ROOT.iterdir()}


def is_placeholder(part: str) -> bool:
    """A part the reader fills in: <output>, a glob or brace, or a name in capitals without a suffix
    (OUT, MODEL_DIR; README.md and LICENSE.md are real files)."""
    return any(c in part for c in "<>*{}") or bool(re.fullmatch(r"[A-Z][A-Z0-9_]+", part))


def exempt(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    if path.startswith("../") or not parts:
        return True  # ../shared and other places beside the checkout
    return (parts[0] in EXEMPT_ROOTS or parts[0] in EXAMPLES or any(map(is_placeholder, parts))
            or path.rstrip("/") in GENERATED or path.rstrip("/") in PENDING)


def candidates(text: str, tops: set[str]) -> list[tuple[str, str | None]]:
    """(repository path, test name or None) for every path the text names outside link targets."""
    text = LINK.sub("]()", text)
    found = []
    for m in PATHISH.finditer(text):
        path, name = m.group(1).rstrip(".,;:"), m.group(2)
        parts = [p for p in path.split("/") if p]
        if not parts or path.startswith("../"):
            if path.startswith("../") and not path.startswith("../shared"):
                found.append((path, name))  # outside the checkout and not the shared folder: a mistake
            continue
        if parts[0] in tops or Path(parts[-1]).suffix in SUFFIXES:
            found.append((path, name))
    return found


def links(doc: Path, text: str) -> list[Path]:
    out = []
    for target in LINK.findall(text):
        target = target.split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # an anchor on the same page, or a URL
        out.append((doc.parent / target).resolve())
    return out


def defines(file: Path, name: str) -> bool:
    names = re.findall(r"^\s*(?:async\s+)?def\s+(\w+)", file.read_text(encoding="utf-8"), re.M)
    return any(fnmatch.fnmatchcase(n, name) for n in names)


def problems(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    rel = doc.relative_to(ROOT).as_posix()
    bad = []
    for path, name in candidates(text, top_entries()):
        if path.startswith("../") and not path.startswith("../shared"):
            bad.append(f"{rel}: {path} points outside the repository")
        elif exempt(path):
            continue
        elif not (ROOT / path).exists():
            bad.append(f"{rel}: {path} does not exist")
        elif name and not defines(ROOT / path, name):
            bad.append(f"{rel}: {path} defines no {name}")
    for target in links(doc, text):
        try:
            inside = target.relative_to(ROOT).as_posix()
        except ValueError:
            bad.append(f"{rel}: link to {target} leaves the repository")
            continue
        if not exempt(inside) and not target.exists():
            bad.append(f"{rel}: link target {inside} does not exist")
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_named_exists(doc):
    bad = problems(doc)
    assert not bad, "paths named in the docs that are not in the repository:\n  " + "\n  ".join(bad)


def test_every_page_is_in_the_nav():
    """mkdocs.yml's nav lists every page under docs/ (mkdocs build --strict fails on one left out too)."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = (set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.M))
              | set(re.findall(r"^\s*-\s*([\w/.-]+\.md)\s*$", nav, re.M)))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"nav entries with no page: {sorted(listed - pages)}"


def test_the_rules_catch_what_they_should():
    tops = {"extract", "configs", "scripts", "docs", "README.md"}
    text = ("`extract/job/stages.py` and extrat/job/x.py, configs/extract.yaml; not words/s, PER/LOC/ORG, "
            "bf16/fp16, s3://bucket/out, http://127.0.0.1:8265/x, ~/.cache/nerbatch, /tmp/x; "
            "`tests/test_x.py::test_y_*` [a](docs/jobs.md)")
    got = candidates(text, tops | {"tests"})
    assert got == [("extract/job/stages.py", None), ("extrat/job/x.py", None), ("configs/extract.yaml", None),
                   ("tests/test_x.py", "test_y_*")]
    for path in ("runs/x/best", "output/sample", "OUT/docs/part-*.parquet", "MODEL_DIR/model.onnx",
                 "<output>/best", "corpus/*.jsonl.gz", "out/news", "../shared/data/conll2003/valid.txt"):
        assert exempt(path), path
    for path in ("extract/job/stages.py", "data/models/default", "docs/jobs.md", "data/sample/LICENSE.md"):
        assert not exempt(path), path
