"""The code's docstrings and comments stay true to the tree: every repository path they name exists.

tests/docs/test_paths.py's rule for the Markdown docs (its helpers), applied to the docstrings
(module, class, function) and the comments of every .py file under extract/, training/, scripts/
and tests/. String literals are code, not prose, and are not read. One difference: a path counts
only when its first part is an entry at the top of this repository (``extract/job/stages.py``,
``configs/extract.yaml``, ``data/sample``, ``tests/tiny.py``, ``docs/benchmarks/``), not for a file
suffix alone: code names example files and other projects' files that are no repository paths.

Exempt as in the docs: ``../shared/...``, ``runs/`` and ``output/`` (what jobs and training write),
placeholders (a part in capitals, ``*``, ``< >`` or braces), the files scripts generate and git
ignores (test_paths.GENERATED); and PENDING below. A ``path::name`` must define ``name``.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

from tests.docs.test_paths import EXEMPT_ROOTS, GENERATED, ROOT, candidates, defines, is_placeholder, top_entries

FOLDERS = ("extract", "training", "scripts", "tests")
# Paths the code writes at run time that are not in git yet. Delete an entry once its path is in git.
PENDING: dict[str, str] = {}  # path -> why it is not in git yet (a step running now writes it)


def prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring of a module's source."""
    found = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.append((first.lineno, first.value.value))
    return sorted(found)


def exempt(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return (path.startswith("../shared") or parts[0] in EXEMPT_ROOTS or any(map(is_placeholder, parts))
            or path.rstrip("/") in GENERATED or path.rstrip("/") in PENDING)


def problems(rel: str, source: str, root: Path = ROOT, tops: set[str] | None = None) -> list[str]:
    tops = top_entries() if tops is None else tops
    bad = []
    for line, text in prose(source):
        for path, name in candidates(text, tops):
            if path.startswith("../") and not path.startswith("../shared"):
                bad.append(f"{rel}:{line}: {path} points outside the repository")
            elif path.startswith("../") or path.split("/")[0] not in tops or exempt(path):
                continue
            elif not (root / path).exists():
                bad.append(f"{rel}:{line}: {path} does not exist")
            elif name and not defines(root / path, name):
                bad.append(f"{rel}:{line}: {path} defines no {name}")
    return bad


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_repository_path_named_in_code_exists(folder):
    bad = [p for f in sorted((ROOT / folder).rglob("*.py"))
           for p in problems(f.relative_to(ROOT).as_posix(), f.read_text(encoding="utf-8"))]
    assert not bad, "paths named in docstrings and comments that are not in the repository:\n  " + "\n  ".join(bad)


def test_pending_paths_are_still_missing():
    """A PENDING path that is in the tree now needs no exemption: delete its entry."""
    there = [p for p in PENDING if (ROOT / p).exists()]
    assert not there, f"in the repository now, delete from PENDING: {there}"


def test_the_rule_reads_docstrings_and_comments_only(tmp_path):
    (tmp_path / "extract" / "job").mkdir(parents=True)
    (tmp_path / "extract" / "job" / "stages.py").write_text("def run():\n    pass\n")
    source = ('"""See extract/job/stages.py::run and extract/fs.py; sub/a.txt is an example."""\n'
              'X = "extract/not_prose.py"  # but extract/gone.py, runs/x/best, OUT/docs, ../shared/docs/FACTS.md\n'
              'def f():\n    """extract/job/stages.py::nope, ../elsewhere/x.py"""\n')
    got = problems("m.py", source, tmp_path, {"extract", "runs"})
    assert got == ["m.py:1: extract/fs.py does not exist", "m.py:2: extract/gone.py does not exist",
                   "m.py:4: extract/job/stages.py defines no nope",
                   "m.py:4: ../elsewhere/x.py points outside the repository"]
