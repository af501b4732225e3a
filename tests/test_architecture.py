"""The import structure of extract/ and training/, read from the source with ``ast`` (nothing is
imported): no import cycles, the layers of extract, and the few modules allowed to import ray and
onnxruntime.

Every import counts, wherever it sits (module level, inside functions or classes, under ``try`` or
``if TYPE_CHECKING``), as does ``importlib.import_module("<constant>")``. Relative imports are
resolved; ``from extract.core import fs`` is an edge to the module ``extract.core.fs`` when that is a
module, else to the package ``extract.core``. Each rule is its own test, and a failure lists the
offending edges as ``file:line: importer -> imported`` (for cycles: one shortest cycle per strongly
connected component, with every import along it). The rule functions take a plain list of edges, and
test_the_rules_catch_a_broken_synthetic_graph checks that each one fires when its rule is broken.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Iterable

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("extract", "training")

# What extract/text may not import (it is pure text processing: numpy is fine).
TEXT_FORBIDDEN = ("torch", "transformers", "ray", "pyarrow")
# Third-party packages that only these modules may import ("ray": the batch job's runner and the
# HTTP service's Ray Serve deployment, extract/serve/app.py; each is the whole of Ray in its front end).
RAY_RUNNER = ("extract.job.runner_ray", "extract.job.ray_session", "extract.job.ray_settle",
              "extract.job.ray_visibility")  # the Ray runner, split by concern
ONLY_IN = {"ray": (*RAY_RUNNER, "extract.serve.app"), "onnxruntime": ("extract.model.onnx",)}


@dataclasses.dataclass(frozen=True)
class Edge:
    src: str  # importing module, e.g. "extract.job.stages"
    dst: str  # imported module: an internal module's name, or the full dotted name of an external one
    file: str  # path relative to the repository root
    line: int
    internal: bool  # dst is a module of PACKAGES

    @property
    def top(self) -> str:
        return self.dst.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.src} -> {self.dst}"


# -- reading the graph ------------------------------------------------------------------------

def module_files(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py under the given top-level packages."""
    mods = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _longest_known(name: str, known: set[str]) -> str | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return None


def _target(name: str, known: set[str], internal_tops: set[str]) -> tuple[str, bool]:
    if name.split(".")[0] in internal_tops:
        return _longest_known(name, known) or name, True
    return name, False


def _imported_names(tree: ast.AST, module: str, is_package: bool, known: set[str]):
    """(line, imported module name) for every import in the tree, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, is_package, node.level, node.module) if node.level
                    else node.module or "")
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
                yield node.lineno, sub if alias.name != "*" and sub in known else base
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> list[Edge]:
    packages = tuple(packages)
    files = module_files(root, packages)
    known = set(files)
    edges = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root).as_posix()
        for line, name in _imported_names(tree, module, path.name == "__init__.py", known):
            dst, internal = _target(name, known, set(packages))
            if dst and dst != module:
                edges.append(Edge(module, dst, rel, line, internal))
    return sorted(set(edges), key=lambda e: (e.file, e.line, e.dst))


# -- the rules: each returns the offending edges (for cycles: one cycle per tangle) ------------

def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _graph(edges: Iterable[Edge], node_of) -> dict[str, dict[str, list[Edge]]]:
    graph: dict[str, dict[str, list[Edge]]] = {}
    for e in edges:
        a, b = node_of(e.src), node_of(e.dst)
        if a is not None and b is not None and a != b:
            graph.setdefault(a, {}).setdefault(b, []).append(e)
    return graph


def _components(graph: dict[str, dict[str, list[Edge]]]) -> list[list[str]]:
    """Strongly connected components (Tarjan) with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def find_cycles(edges: Iterable[Edge], node_of=lambda m: m) -> list[list[list[Edge]]]:
    """One shortest cycle per strongly connected component of the graph of ``node_of(module)``:
    each cycle a list of hops, each hop the edges (file:line) that make it. [] when acyclic."""
    graph = _graph(edges, node_of)
    cycles = []
    for comp in _components(graph):
        start, inside = comp[0], set(comp)
        came: dict[str, str] = {}
        todo = [start]
        while start not in came:  # breadth first from start until it is reached again
            nxt = []
            for v in todo:
                for w in sorted(graph.get(v, {})):
                    if w in inside and w not in came:
                        came[w] = v
                        nxt.append(w)
            todo = nxt
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(came[path[-1]])
        path.reverse()
        cycles.append([graph[a][b] for a, b in zip(path, path[1:])])
    return cycles


def subpackage_of(module: str, subpackages: Iterable[str]) -> str | None:
    """extract.<sub>.* -> extract.<sub>. A top-level module of extract (the front ends extract.api,
    extract.__main__, and extract's __init__) is a node of its own, so a subpackage importing a
    front end that imports it is a cycle too. Modules outside extract: None (not in this graph)."""
    sub = next((s for s in subpackages if _within(module, s)), None)
    return sub or (module if _within(module, "extract") else None)


def extract_subpackages(root: Path = ROOT) -> list[str]:
    return sorted(f"extract.{p.parent.name}" for p in (root / "extract").glob("*/__init__.py"))


def core_violations(edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in edges if _within(e.src, "extract.core") and e.internal and not _within(e.dst, "extract.core")]


def text_violations(edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in edges if _within(e.src, "extract.text")
            and ((e.internal and not (_within(e.dst, "extract.core") or _within(e.dst, "extract.text")))
                 or (not e.internal and e.top in TEXT_FORBIDDEN))]


def job_violations(edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in edges if _within(e.src, "extract.job") and e.internal
            and (_within(e.dst, "extract.monitor") or _within(e.dst, "extract.cli"))]


def training_violations(edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in edges if _within(e.src, "extract") and e.internal and _within(e.dst, "training")]


def only_in_violations(edges: Iterable[Edge], package: str, allowed: str | tuple[str, ...]) -> tuple[list[Edge], bool]:
    """The edges importing ``package`` from anywhere but ``allowed`` (one module or several), and
    whether every allowed module does."""
    allowed = (allowed,) if isinstance(allowed, str) else tuple(allowed)
    hits = [e for e in edges if not e.internal and e.top == package]
    return [e for e in hits if e.src not in allowed], all(any(e.src == a for e in hits) for a in allowed)


# -- the tests on the real code ---------------------------------------------------------------

@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph()


def _fail(title: str, bad: list[Edge]) -> None:
    pytest.fail(title + ":\n  " + "\n  ".join(map(str, bad)), pytrace=False)


def _fail_cycles(title: str, cycles: list[list[list[Edge]]], node_of=lambda m: m) -> None:
    lines = []
    for hops in cycles:
        lines.append(" -> ".join([node_of(hops[0][0].src)] + [node_of(hop[0].dst) for hop in hops]))
        lines += [f"    {e}" for hop in hops for e in hop]
    pytest.fail(f"{title} ({len(cycles)}; one cycle each):\n  " + "\n  ".join(lines), pytrace=False)


def test_the_graph_is_read(edges):
    mods = module_files(ROOT)
    assert {"extract.job.stages", "extract.core.fs", "training.label"} <= set(mods)
    # from extract.core import fs
    assert any(e.src == "extract.job.stages" and e.dst == "extract.core.fs" for e in edges)
    assert any(e.src == "extract.job.runner_ray" and e.dst == "ray" for e in edges)  # a function-level import


def test_no_import_cycle_between_modules(edges):
    cycles = find_cycles(e for e in edges if e.internal)
    if cycles:
        _fail_cycles("import cycles between modules", cycles)


def test_no_import_cycle_between_the_subpackages_of_extract(edges):
    subs = extract_subpackages()
    node_of = lambda m: subpackage_of(m, subs)  # noqa: E731
    cycles = find_cycles((e for e in edges if e.internal), node_of)
    if cycles:
        _fail_cycles("import cycles between the subpackages of extract", cycles, node_of)


def test_core_imports_nothing_else_of_extract(edges):
    if bad := core_violations(edges):
        _fail("extract.core imports other parts of the project", bad)


def test_text_imports_only_core_and_text_and_no_heavy_libraries(edges):
    if bad := text_violations(edges):
        _fail(f"extract.text imports beyond extract.core/extract.text, or one of {', '.join(TEXT_FORBIDDEN)}", bad)


def test_job_never_imports_monitor_or_cli(edges):
    if bad := job_violations(edges):
        _fail("extract.job imports extract.monitor or extract.cli", bad)


def test_extract_never_imports_training(edges):
    if bad := training_violations(edges):
        _fail("extract imports training", bad)


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_library_is_imported_in_exactly_one_module(edges, package):
    allowed = ONLY_IN[package]
    bad, there = only_in_violations(edges, package, allowed)
    if bad:
        _fail(f"{package} is imported outside {allowed}", bad)
    assert there, f"{allowed} no longer imports {package}: update ONLY_IN in this test"


# -- the rules fail when broken: a synthetic graph --------------------------------------------

def _e(src: str, dst: str, line: int = 1) -> Edge:
    internal = dst.split(".")[0] in PACKAGES
    return Edge(src, dst, src.replace(".", "/") + ".py", line, internal)


def test_the_rules_catch_a_broken_synthetic_graph():
    clean = [_e("extract.job.stages", "extract.core.fs"), _e("extract.job.stages", "extract.text.sanitize"),
             _e("extract.text.windows", "numpy"), _e("extract.text.windows", "extract.core.types"),
             _e("extract.monitor.show", "extract.job.summary"), _e("extract.cli.run", "extract.monitor.show"),
             _e("extract.api", "extract.job.driver"), _e("extract.job.runner_ray", "ray.data"),
             _e("extract.model.onnx", "onnxruntime"), _e("training.label", "extract.job.stages")]
    subs = ["extract.cli", "extract.core", "extract.job", "extract.model", "extract.monitor", "extract.text"]
    layers = lambda m: subpackage_of(m, subs)  # noqa: E731
    assert find_cycles(clean) == [] and find_cycles(clean, layers) == []
    assert core_violations(clean) == text_violations(clean) == job_violations(clean) == []
    assert training_violations(clean) == []
    assert only_in_violations(clean, "ray", "extract.job.runner_ray") == ([], True)

    cycle = [_e("extract.model.load", "extract.model.onnx", 3), _e("extract.model.onnx", "extract.model.load", 9)]
    other = [_e("extract.monitor.quality", "extract.monitor.run_report"),
             _e("extract.monitor.run_report", "extract.monitor.quality", 5),
             _e("extract.monitor.run_report", "extract.monitor.quality", 7)]
    assert find_cycles(clean + cycle + other) == [[[cycle[0]], [cycle[1]]],  # one per component, every edge
                                                  [[other[0]], other[1:]]]
    layered = [_e("extract.core.fs", "extract.job.summary")]  # core -> job -> core
    assert find_cycles(clean + layered) == []  # no module cycle...
    assert find_cycles(clean + layered, layers) == [[layered, [clean[0]]]]  # ...but a layer cycle
    up = [_e("extract.job.driver", "extract.api")]  # below a front end, importing it
    assert find_cycles(clean + up, layers) == [[[clean[6]], up]]
    three = [_e("a.x", "a.y"), _e("a.y", "a.z"), _e("a.z", "a.x"), _e("a.y", "a.w")]
    assert find_cycles(three) == [[[three[0]], [three[1]], [three[2]]]]
    assert core_violations(clean + layered) == layered
    bad_text = [_e("extract.text.windows", "torch.nn"), _e("extract.text.labels", "extract.model.load"),
                _e("extract.text.casing", "pyarrow")]
    assert text_violations(clean + bad_text) == bad_text
    bad_job = [_e("extract.job.driver", "extract.monitor.run_report"), _e("extract.job.x", "extract.cli")]
    assert job_violations(clean + bad_job) == bad_job
    bad_training = [_e("extract.monitor.quality", "training.corrections")]
    assert training_violations(clean + bad_training) == bad_training
    stray = [_e("extract.job.driver", "ray"), _e("training.label", "ray.util")]
    assert only_in_violations(clean + stray, "ray", "extract.job.runner_ray") == (stray, True)
    assert only_in_violations(clean, "onnxruntime", "extract.job.runner_ray")[1] is False


def test_imports_are_resolved_from_source(tmp_path):
    pkg = tmp_path / "extract"
    for d in ("core", "job"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .job import runner\n")
    (pkg / "core" / "fs.py").write_text("import os\n")
    (pkg / "job" / "runner.py").write_text(
        "from ..core import fs\n"
        "from . import other as o\n"
        "from extract.core.fs import join\n"
        "def f():\n"
        "    import ray.data\n"
        "    import importlib\n"
        "    importlib.import_module('onnxruntime')\n"
        "    from .. import core\n")
    (pkg / "job" / "other.py").write_text("from extract.job.runner import f\nimport extract.core.fs as fs\n")
    got = {(e.src, e.dst, e.line, e.internal) for e in import_graph(tmp_path, ["extract"])}
    assert got == {
        ("extract", "extract.job.runner", 1, True),  # from .job import runner: the module
        ("extract.core.fs", "os", 1, False),
        ("extract.job.runner", "extract.core.fs", 1, True),
        ("extract.job.runner", "extract.job.other", 2, True),
        ("extract.job.runner", "extract.core.fs", 3, True),
        ("extract.job.runner", "ray.data", 5, False),
        ("extract.job.runner", "importlib", 6, False),
        ("extract.job.runner", "onnxruntime", 7, False),
        ("extract.job.runner", "extract.core", 8, True),
        ("extract.job.other", "extract.job.runner", 1, True),
        ("extract.job.other", "extract.core.fs", 2, True),
    }
    (cycle,) = find_cycles(e for e in import_graph(tmp_path, ["extract"]) if e.internal)
    assert [[(e.src, e.dst, e.line) for e in hop] for hop in cycle] == [
        [("extract.job.other", "extract.job.runner", 1)], [("extract.job.runner", "extract.job.other", 2)]]
