"""`python -m extract serve`: the real service (the CLI in a subprocess, embedded local Ray, Ray
Serve's HTTP proxy on 127.0.0.1) answers as the batch job's Extractor does, refuses bad input with a
4xx JSON error, sheds overload with 503 + Retry-After, and drains on SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from extract.core.config import ConfigError, load
from extract.serve.config import ServeConfig

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["John Smith of Germany said in New York.", "", "Reuters \ud83d in Bonn " * 30, "北京 and é in Paris.",
         "the bank of new york said reuters"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overrides(model: Path, port: int, *extra: str) -> list[str]:
    out = [f"model.path={model}", f"serve.port={port}", "model.labels=[PER, LOC, ORG, MISC]", "inference.threads=1",
           "ray.num_cpus=2", *extra]
    return [a for kv in out for a in ("--set", kv)]


class Server:
    def __init__(self, model: Path, *extra: str, timeout: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "extract", "serve", "--config", str(ROOT / "configs" / "serve.yaml"),
             *overrides(model, self.port, *extra)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("serving") or self.proc.poll() is not None:
                break
        if not line.startswith("serving"):
            self.stop()
            raise RuntimeError(f"the service did not start: {line!r}\n{self.proc.stderr.read()[-3000:]}")

    def stop(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def call(url: str, path: str, body: bytes | None = None, method: str | None = None, headers=None):
    """(status, headers, parsed JSON or text) of one request, 4xx/5xx included."""
    req = urllib.request.Request(url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, raw = r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode("utf-8", "replace")


def post(url: str, obj) -> tuple[int, dict, object]:
    return call(url, "/v1/extract", json.dumps(obj).encode(), headers={"Content-Type": "application/json"})


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("served")
    srv = Server(tiny_model_dir, "serve.max_texts=8", "serve.max_chars=2000", "serve.max_body_bytes=20000",
                 "serve.batch_wait_ms=5", "serve.max_batch_size=4", f"serve.log.path={log}",
                 "serve.log.rotate_seconds=1")
    srv.log = log
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    from extract.serve.engine import build_extractor

    cfg = load(ServeConfig, ROOT / "configs" / "serve.yaml", [a for a in overrides(tiny_model_dir, 1) if a != "--set"])
    return build_extractor(cfg, threads=1)


def as_tuples(found):
    return [(e["label"], e["text"], e["start"], e["end"], round(e["score"], 5)) for e in found]


def test_healthz_and_metrics(server):
    status, _, body = call(server.url, "/healthz")
    assert status == 200 and body["status"] == "ok" and body["model"].startswith("model@sha256:")
    status, hdrs, text = call(server.url, "/metrics")
    assert status == 200 and "extract_serve_requests_total" in text and "extract_serve_batch_size_bucket" in text


def test_entities_equal_the_extractor(server, reference):
    status, _, body = post(server.url, {"texts": TEXTS})
    assert status == 200, body
    want = [[(e.label, e.text, e.start, e.end, round(e.score, 5)) for e in found] for found in reference.pipe(TEXTS)]
    assert [as_tuples(r) for r in body["results"]] == want
    assert any(want) and body["model"] == reference.loaded.model_id
    for text, found in zip(TEXTS, body["results"]):
        clean = text.replace("\ud83d", "\ufffd")  # a lone surrogate: U+FFFD as in the job, offsets unmoved
        assert all(clean[e["start"]:e["end"]] == e["text"] for e in found)


def test_concurrent_requests_keep_their_own_order(server, reference):
    texts = [f"John Smith {i} said in New York and Germany." + " Bonn" * i for i in range(24)]
    want = {t: as_tuples([e.as_dict() for e in found]) for t, found in zip(texts, reference.pipe(texts))}
    got: dict[int, list] = {}

    def one(k: int) -> None:
        mine = texts[k % 8::8][:3][::-1 if k % 2 else 1]
        got[k] = (mine, post(server.url, {"texts": mine}))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for mine, (status, _, body) in got.values():
        assert status == 200
        assert [as_tuples(r) for r in body["results"]] == [want[t] for t in mine]


BAD = {
    "invalid JSON": (b'{"texts": [', 400, "invalid JSON"),
    "empty body": (b"", 400, "empty body"),
    "not an object": (b'["a"]', 400, "found a list"),
    "no texts key": (b'{"text": ["a"]}', 400, "only the key"),
    "texts not a list": (b'{"texts": "a"}', 400, "found a string"),
    "non-string item": (b'{"texts": ["a", 3]}', 400, "texts[1] to be a string, found a number"),
    "null item": (b'{"texts": [null]}', 400, "found null"),
    "empty list": (b'{"texts": []}', 400, "empty list"),
    "too many texts": (json.dumps({"texts": ["a"] * 9}).encode(), 400, "at most 8 texts"),
    "text too long": (json.dumps({"texts": ["a" * 2001]}).encode(), 400, "at most 2000 characters, found 2001"),
    "body too large": (json.dumps({"texts": ["a " * 6000] * 2}).encode(), 413, "at most 20000 bytes"),
    "invalid UTF-8": (b'{"texts": ["\xff"]}', 400, "invalid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_requests_answer_4xx_json(server, name):
    body, code, words = BAD[name]
    status, _, got = call(server.url, "/v1/extract", body, method="POST")
    assert status == code and isinstance(got, dict), got
    assert "expected" in got["error"] and "found" in got["error"] and words in got["error"], got


def test_wrong_route_and_method(server):
    status, _, got = call(server.url, "/nope")
    assert status == 404 and "expected" in got["error"]
    status, hdrs, got = call(server.url, "/v1/extract")
    assert status == 405 and "expected POST" in got["error"] and hdrs.get("allow") == "POST"


def test_config_is_validated():
    with pytest.raises(ConfigError, match="serve.max_batch_size: expected >= 1, found 0"):
        load(ServeConfig, None, ["serve.max_batch_size=0"])
    with pytest.raises(ConfigError, match="Did you mean 'batch_wait_ms'"):
        load(ServeConfig, None, ["serve.batch_wait=3"])
    with pytest.raises(ConfigError, match="serve.log.text: expected one of 'full', 'hash'"):
        load(ServeConfig, None, ["serve.log.text=plain"])
    cfg = load(ServeConfig, ROOT / "configs" / "serve.yaml")
    assert cfg.serve.port == 8000 and cfg.serve.host == "127.0.0.1" and cfg.ray.address == ""


def test_cli_refuses_a_bad_model_before_starting(tmp_path):
    out = subprocess.run([sys.executable, "-m", "extract", "serve", "--set", f"model.path={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: model.path")


def test_sigterm_drains_in_flight_requests_and_exits_0(server):
    """Last on the shared server: a request in flight when SIGTERM arrives is answered; the exit is 0;
    the served log's last part is written on the way out."""
    texts = ["John Smith said in New York. " * 60] * 8
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", post(server.url, {"texts": texts})))
    t.start()
    time.sleep(0.3)
    assert server.stop() == 0
    t.join(30)
    assert got["r"][0] == 200 and len(got["r"][2]["results"]) == 8
    import pyarrow.dataset as pads

    from extract.core import schema

    docs = pads.dataset(str(server.log / "docs"), schema=schema.DOCS).to_table()
    assert docs.num_rows >= len(TEXTS) + 8  # every text served above, the drained request's included


@pytest.mark.slow
def test_overload_answers_503_with_retry_after(tiny_model_dir):
    # One request at a time, none queued; a 1.5 s batch linger keeps the first one in the replica.
    srv = Server(tiny_model_dir, "serve.max_ongoing_requests=1", "serve.max_queued_requests=1",
                 "serve.batch_wait_ms=1500", "serve.max_batch_size=64", "serve.retry_after_s=2")
    try:
        results = []

        def one() -> None:
            results.append(post(srv.url, {"texts": ["John Smith said in New York."]}))

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        codes = sorted(r[0] for r in results)
        assert 200 in codes and 503 in codes, codes
        shed = [r for r in results if r[0] == 503]
        assert all(r[1].get("retry-after") == "2" for r in shed), shed
    finally:
        assert srv.stop() == 0
