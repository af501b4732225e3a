"""scripts/gpu_check.sh --cpu-rehearsal: the GPU check's steps on this CPU, in a copy of the
repository without .venv, with PYTHON naming an interpreter that has the dependencies (the repo
goes on PYTHONPATH, nothing installed), so that only the GPU is left to chance."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_cpu_rehearsal_runs_every_step_in_a_bare_copy(tmp_path):
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    clone = tmp_path / "repo"
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not rel.startswith((".venv/", "runs/")):
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    assert not (clone / ".venv").exists()
    noray = tmp_path / "noray" / "ray"  # the GPU machine has no ray: shadow it
    noray.mkdir(parents=True)
    (noray / "__init__.py").write_text("raise ImportError('no ray on this machine')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHON=sys.executable, OUT=str(tmp_path / "out"), PYTHONPATH=str(noray.parent))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu-rehearsal", "120"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"project {clone / 'extract'}" in out  # the copy's code ran, not an installed one
    job = json.loads((tmp_path / "out" / "job.json").read_text())["job"]
    assert job["documents"] == 120 and job["by_status"]["error"] == 0 and job["job_words_per_second"] > 0
    roof = json.loads((tmp_path / "out" / "roofline.json").read_text())["roofline"]
    assert roof["device"] == "cpu" and roof["wordpieces_per_second"] > 0
    assert "== 1. gpu tests" in out and "missing: ray" in out
    assert "ray is not installed here: the Ray part is skipped" in out
