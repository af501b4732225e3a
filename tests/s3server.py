"""A local S3 for tests: moto's standalone server on 127.0.0.1 (never another host).

Use it from a test module with ``from tests.s3server import moto_endpoint, s3_bucket  # noqa: F401``:

- ``moto_endpoint`` (session): starts ``python -m moto.server -H 127.0.0.1 -p <free port>`` once,
  waits until it answers, yields ``http://127.0.0.1:<port>`` and stops the server by its pid at the
  end. Skipped, with the reason, when moto[server] is not installed.
- ``s3_bucket`` (per test): points the S3 environment at that server (fake credentials,
  ``AWS_REGION``, ``AWS_ENDPOINT_URL``; everything that could reach a real account is unset) for the
  duration of the test, creates a fresh bucket and yields ``s3://<bucket>``.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

HOST = "127.0.0.1"
MOTO_PIN = "moto[server]==5.2.5"  # as in pyproject.toml's `test` extra
START_TIMEOUT_S = 30.0
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata endpoint
    "AWS_CONFIG_FILE": os.devnull,  # ignore the developer's ~/.aws
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_NO_SIGN_REQUEST", "AWS_ROLE_ARN",
         "AWS_WEB_IDENTITY_TOKEN_FILE")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _answers(endpoint: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
    try:
        with opener.open(endpoint + "/", timeout=2) as resp:
            return resp.status < 500
    except OSError:
        return False


def _start(log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    endpoint = f"http://{HOST}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _answers(endpoint):
            return proc, endpoint
        time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"moto server on {endpoint} did not answer within {START_TIMEOUT_S:.0f}s "
                       f"(exit code {proc.returncode}); its log: {log}\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to this pid only
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    missing = [m for m in ("moto", "flask", "werkzeug") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"S3 tests need moto's server ({', '.join(missing)} not installed): pip install '{MOTO_PIN}'")
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    errors = []
    for _ in range(3):  # a free port can be taken between probing and binding
        try:
            proc, endpoint = _start(log)
            break
        except RuntimeError as exc:
            errors.append(str(exc))
    else:
        raise RuntimeError("could not start moto's S3 server:\n" + "\n".join(errors))
    try:
        yield endpoint
    finally:
        _stop(proc)


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch) -> Iterator[str]:
    import pyarrow.fs as pafs

    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("NO_PROXY", HOST)
    monkeypatch.setenv("no_proxy", HOST)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    admin = pafs.S3FileSystem(access_key=ENV["AWS_ACCESS_KEY_ID"], secret_key=ENV["AWS_SECRET_ACCESS_KEY"],
                              endpoint_override=moto_endpoint.split("://", 1)[1], scheme="http",
                              region=ENV["AWS_REGION"], allow_bucket_creation=True)
    admin.create_dir(bucket)
    yield f"s3://{bucket}"
