"""`python -m extract serve`: the model behind HTTP on Ray Serve (extract/serve/app.py).

Starts Ray (embedded local unless ray.address), the app, waits until GET /healthz answers 200 and
serves until SIGTERM or SIGINT: then in-flight requests finish (serve.drain_seconds at most), the
served log's last part is written, and it exits 0.

Start-up errors (a bad config, no model at model.path, a port already taken) are checked before Ray
starts: one line on stderr and exit 2. A failure once Ray runs: one line and exit 1.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from extract.core.signals import on_stop_signals


def add(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("serve", help="serve the model over HTTP (Ray Serve): POST /v1/extract, GET /healthz")
    r.add_argument("--config", default=None, help="YAML serve config (configs/serve.yaml)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set serve.port=8080")
    r.add_argument("--ready-timeout", type=float, default=600.0,
                   help="seconds to wait for the model to load before giving up (exit 1)")
    return r


def run(args) -> int:
    from extract.core.config import ConfigError, load
    from extract.serve.config import ServeConfig

    try:
        cfg = load(ServeConfig, args.config, args.set)
        from extract.serve.engine import check_model

        check_model(cfg)  # a bad model folder or label: one line before Ray starts
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: model.path: {exc}", file=sys.stderr)
        return 2
    if not cfg.ray.address:  # embedded Ray: Serve's proxy listens here (on a cluster: on its nodes)
        try:
            check_port(cfg.serve.host, cfg.serve.port)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()
    got: list[str] = []

    def on_signal(signum, _frame):
        got.append(signal.Signals(signum).name)
        stop.set()

    on_stop_signals(on_signal)
    from extract.serve import app

    try:
        app.start(cfg)
        url = f"http://{'127.0.0.1' if cfg.serve.host in ('0.0.0.0', '::') else cfg.serve.host}:{cfg.serve.port}"
        error = wait_ready(url, args.ready_timeout, stop)
        if error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 1
        if not stop.is_set():
            print(f"serving {cfg.model.path} on {url}: POST {url}/v1/extract, GET {url}/healthz, GET {url}/metrics "
                  f"(SIGTERM or Ctrl-C stops it)", flush=True)
        stop.wait()
        print(f"stopping on {got[0] if got else 'request'}: finishing in-flight requests "
              f"(up to {cfg.serve.drain_seconds:g}s)", file=sys.stderr, flush=True)
        return 0
    except Exception as exc:  # noqa: BLE001 - e.g. the port is taken: one clear line
        if os.environ.get("NERBATCH_DEBUG"):
            raise
        print(f"error: the service failed: {type(exc).__name__}: {exc} (NERBATCH_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
    finally:
        on_stop_signals(signal.SIG_IGN)  # a second signal must not cut the drain short
        app.stop()


def check_port(host: str, port: int) -> None:
    """Raises OSError (one line naming host:port and the fix) when the service could not listen there.

    Binds a plain socket and releases it at once, so a taken port fails in a fraction of a second
    instead of after Ray and Serve's proxy started (exit 1 and pages of Ray tracebacks). SO_REUSEADDR
    as the proxy sets it: a port a previous run left in TIME_WAIT passes, as it would there."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(f"serve.host: expected an address of this machine to listen on (e.g. 127.0.0.1 or "
                      f"0.0.0.0), found {host!r} ({exc.strerror}).") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"serve.port: port {port} on {host} is already in use (another process listens "
                              f"there); stop it or pick a free one, e.g. --set serve.port={port % 65535 + 1}."
                              ) from None
            raise OSError(f"serve.host/serve.port: cannot listen on {host}:{port}: {exc.strerror}.") from None


def wait_ready(url: str, timeout: float, stop: threading.Event) -> str | None:
    """None once GET /healthz answers 200; the reason when the model failed or time ran out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                if r.status == 200:
                    return None
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            if "failed to load" in str(body.get("error", "")):
                return body["error"]
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        stop.wait(0.25)
    return None if stop.is_set() else f"the service was not ready after {timeout:g}s ({last})"
