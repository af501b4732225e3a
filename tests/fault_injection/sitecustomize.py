"""Test-only fault injection for processes the tests start (CLI subprocesses and their Ray workers).

Put this folder on ``PYTHONPATH`` and set ``NERBATCH_TEST_KILL_ON`` to a marker string (see
``tests.helpers.kill_on_env``): Python imports this ``sitecustomize`` at start-up, and it patches
``extract.job.stages.Processor._predict_isolated`` as soon as that module is imported, so that a
process about to predict a record whose text holds the marker dies at once with exit code 137 (a
stand-in for a record that runs a worker out of memory). The fault handling of both runners
(extract/job/attempts.py, Ray's actor restarts) is then exercised for real, and the product code
carries no test hook. Embedded Ray workers inherit the driver's environment, so they get it too.

Without ``NERBATCH_TEST_KILL_ON`` nothing is patched. Any other ``sitecustomize`` further along
``sys.path`` (a distribution's) still runs.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

ENV = "NERBATCH_TEST_KILL_ON"
TARGET = "extract.job.stages"
EXIT_CODE = 137  # what a SIGKILL (the OOM killer) looks like to the parent
PATCHED = "_nerbatch_kill_on_marker"  # set on the wrapper, so a test can see the patch is in


def patch(stages, marker: str) -> None:
    """Wrap ``Processor._predict_isolated``: the step that predicts the records ``todo`` of a shard
    (all at once, or one by one when the shard has killed a worker before)."""
    real = stages.Processor._predict_isolated
    if getattr(real, PATCHED, False):
        return

    def _predict_isolated(self, payload, todo):
        if any(marker in (payload.records[i].text or "") for i in todo):
            os._exit(EXIT_CODE)
        return real(self, payload, todo)

    setattr(_predict_isolated, PATCHED, True)
    _predict_isolated.__wrapped__ = real
    stages.Processor._predict_isolated = _predict_isolated


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then patches the module it executed."""

    def __init__(self, loader, marker: str):
        self._loader, self._marker = loader, marker

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        patch(module, self._marker)

    def __getattr__(self, name):  # get_source, get_filename, ... for tracebacks and inspect
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, marker: str):
        self._marker = marker

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, self._marker)
                return spec
        return None


def _install() -> None:
    marker = os.environ.get(ENV)
    if not marker:
        return
    if TARGET in sys.modules:
        patch(sys.modules[TARGET], marker)
    else:
        sys.meta_path.insert(0, _Finder(marker))


def _chain() -> None:
    """Run the next ``sitecustomize`` on ``sys.path``, the one this module shadows, if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec(__name__, rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_install()
_chain()
