"""`python -m extract serve` refuses what cannot start before Ray starts: a port already taken, a
bad config, no model at model.path each end in one line on stderr and exit 2 (extract/cli/serve.py).

The CLI runs for real in a subprocess, with a stand-in ``ray`` package first on its PYTHONPATH that
fails on import: a start-up error that reached Ray would show as that failure, not as exit 2."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def no_ray(tmp_path_factory) -> Path:
    """A folder holding a ``ray`` package whose import fails: put first on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("no_ray")
    (folder / "ray").mkdir()
    (folder / "ray" / "__init__.py").write_text(
        'raise RuntimeError("ray was imported: the start-up check let the service start")\n')
    return folder


def serve(no_ray: Path, *overrides: str) -> subprocess.CompletedProcess:
    path = [str(no_ray), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path),
           "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    argv = [sys.executable, "-m", "extract", "serve", "--config", str(ROOT / "configs" / "serve.yaml")]
    argv += [a for kv in overrides for a in ("--set", kv)]
    # a start-up error is found in seconds; Ray and Serve's proxy take far longer on a small machine
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    return lines[0]


def test_a_port_in_use_is_one_line_and_exit_2(tiny_model_dir, no_ray):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = serve(no_ray, f"model.path={tiny_model_dir}", "serve.host=127.0.0.1", f"serve.port={port}",
                    "model.labels=[PER, LOC, ORG]")
    line = one_error_line(out)
    assert f"port {port}" in line and "already in use" in line and "serve.port" in line


@pytest.mark.parametrize("overrides, expected", [
    (("serve.max_batch_size=0",), "serve.max_batch_size"),
    (("serve.bogus=1",), "serve.bogus"),
])
def test_a_bad_config_is_one_line_and_exit_2(tiny_model_dir, no_ray, overrides, expected):
    line = one_error_line(serve(no_ray, f"model.path={tiny_model_dir}", *overrides))
    assert expected in line


def test_a_missing_model_folder_is_one_line_and_exit_2(tmp_path, no_ray):
    line = one_error_line(serve(no_ray, f"model.path={tmp_path / 'nowhere'}"))
    assert line.startswith("error: model.path") and "nowhere" in line
