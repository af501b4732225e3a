"""The Ray Serve deployment of `python -m extract serve` (the one module of extract.serve that
imports ray; tests/test_architecture.py ONLY_IN).

One replica loads the model once (extract/serve/engine.py: the batch job's stages through
extract.api.Extractor) on its model thread, and its __init__ waits for that, so Serve routes to a
replica (a replacement for a dead one included) only once its model is in; a load that failed
leaves the replica up answering 503 with the error. Texts, not requests, are the unit of
batching: a request's texts each enter ``extract_batch`` (Ray Serve's ``@serve.batch``,
max_batch_size and batch_wait_timeout_s set from the config at start), so a long request fills
several batches and short requests share one. The batch runs on the model thread, so the event
loop keeps reading requests meanwhile.

Overload is Ray Serve's: each replica runs at most serve.max_ongoing_requests requests and the
proxy queues up to serve.max_queued_requests more; beyond that the proxy answers 503 with
``Retry-After: serve.retry_after_s`` (BackpressureConfig). On shutdown (SIGTERM in the CLI:
serve.shutdown) a replica finishes its in-flight requests (up to serve.drain_seconds) and its
``__del__`` writes the served log's last part.
"""
from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from extract.core.config import to_dict
from extract.serve.config import ServeConfig
from extract.serve.protocol import BadRequest, Limits, Metrics, check_length, dumps, error_body, parse_texts

JSON = "application/json"
ROUTES = {"/v1/extract": "POST", "/healthz": "GET", "/metrics": "GET"}
APP_NAME = "extract"


class Extraction:
    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        s = cfg.serve
        self.limits = Limits(s.max_texts, s.max_chars, s.max_body_bytes)
        self.metrics = Metrics()
        self.ner = None
        self.model_id = ""
        self.load_error: str | None = None
        self.log = None
        self._ticker = None
        self.extract_batch.set_max_batch_size(s.max_batch_size)
        self.extract_batch.set_batch_wait_timeout_s(s.batch_wait_ms / 1000.0)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="extract-model")  # loads, then runs every batch
        # Wait for the load: Serve counts a replica RUNNING (and routes to it) once __init__ returns, so
        # a replacement for a dead replica would otherwise answer 503 "loading" to its share of the
        # traffic until its model is in (measured: scripts/bench_serve.py --kill-replica-after).
        # A failed load still returns: the replica answers 503 with the load error.
        self.pool.submit(self._load).result()

    # -- the model thread -----------------------------------------------------------------------
    def _load(self) -> None:
        try:
            from extract.serve.engine import build_extractor, check_model

            path, model_id = check_model(self.cfg)
            ner = build_extractor(self.cfg)
            lg = self.cfg.serve.log
            if lg.path:
                from extract.serve.log import ServeLog

                info = {"config": {"model": to_dict(self.cfg.model), "inference": to_dict(self.cfg.inference),
                                   "funnel": to_dict(self.cfg.funnel)},
                        "model": {"path": path, "id": model_id},
                        "serve": {"log_text": lg.text, "started_at": round(time.time(), 3)}}
                self.log = ServeLog(lg.path, lg.text, lg.rotate_mb, lg.rotate_seconds, model_id, info)
            self.model_id = model_id
            self.ner = ner
        except Exception as exc:  # noqa: BLE001 - shown by /healthz (and the CLI)
            self.load_error = f"{type(exc).__name__}: {exc}"

    def _predict(self, items: list[tuple]) -> tuple[list[list[dict]], float]:
        t0 = time.perf_counter()
        texts = [it[2] for it in items]
        found = [[{"label": e.label, "text": e.text, "start": e.start, "end": e.end, "score": float(e.score)}
                  for e in ents] for ents in self.ner.pipe(texts, batch_size=len(texts))]
        seconds = time.perf_counter() - t0
        if self.log is not None:
            self.log.add([it[:4] for it in items], found, seconds)
            self.log.maybe_flush()
        return found, seconds

    # -- batching -------------------------------------------------------------------------------
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def extract_batch(self, items: list[tuple]) -> list[list[dict]]:
        """Items: (request id, position, sanitised text, warning, enqueued at)."""
        start = time.perf_counter()
        found, seconds = await asyncio.get_running_loop().run_in_executor(self.pool, self._predict, items)
        self.metrics.batch([start - it[4] for it in items], seconds, sum(map(len, found)))
        return found

    async def _tick(self) -> None:
        """Writes a due part of the served log while no batch runs (rotation by time)."""
        period = min(1.0, self.cfg.serve.log.rotate_seconds / 4)
        while True:
            await asyncio.sleep(period)
            if self.log is not None and self.log.due():
                await asyncio.get_running_loop().run_in_executor(self.pool, self.log.maybe_flush)

    # -- HTTP -----------------------------------------------------------------------------------
    async def __call__(self, request: Request) -> Response:
        t0 = time.perf_counter()
        path = request.url.path.rstrip("/") or "/"
        if self._ticker is None and self.cfg.serve.log.path:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        headers: dict[str, str] = {}
        try:
            status, body, ctype, headers = await self._route(request, path)
        except BadRequest as exc:
            status, body, ctype = exc.status, error_body(exc.message), JSON
        except Exception as exc:  # noqa: BLE001 - a fault of the service, not of the request
            status, body, ctype = 500, error_body(f"internal error: {type(exc).__name__}: {exc}"), JSON
        self.metrics.request(path if path in ROUTES else "other", status, time.perf_counter() - t0)
        return Response(body, status_code=status, media_type=ctype, headers=headers)

    def _loading(self) -> tuple[int, bytes, str, dict]:
        if self.load_error:
            return 503, error_body(f"the model failed to load: {self.load_error}"), JSON, {}
        retry = str(max(1, math.ceil(self.cfg.serve.retry_after_s)))
        return 503, dumps({"status": "loading", "error": "expected a loaded model, found it still loading; "
                                                         "retry shortly"}), JSON, {"Retry-After": retry}

    async def _route(self, request: Request, path: str) -> tuple[int, bytes, str, dict]:
        method = request.method.upper()
        want = ROUTES.get(path)
        if want is None:
            raise BadRequest(404, f"expected one of {', '.join(f'{m} {p}' for p, m in ROUTES.items())}, "
                                  f"found {method} {path}")
        if method != want and not (want == "GET" and method == "HEAD"):
            return 405, error_body(f"expected {want} {path}, found {method}"), JSON, {"Allow": want}
        if path == "/metrics":
            return 200, self.metrics.text().encode(), "text/plain; version=0.0.4", {}
        if self.ner is None:
            return self._loading()
        if path == "/healthz":
            return 200, dumps({"status": "ok", "model": self.model_id}), JSON, {}
        check_length(request.headers.get("content-length"), self.limits)
        body = await self._body(request)
        texts, warnings = parse_texts(body, self.limits)
        rid = uuid.uuid4().hex[:16]
        now = time.perf_counter()
        results = await asyncio.gather(*[self.extract_batch((rid, i, t, w, now))
                                         for i, (t, w) in enumerate(zip(texts, warnings))])
        return 200, dumps({"model": self.model_id, "results": results}), JSON, {}

    async def _body(self, request: Request) -> bytes:
        """The body, read no further than the byte limit (a chunked body has no Content-Length)."""
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > self.limits.max_body_bytes:
                raise BadRequest(413, f"expected a body of at most {self.limits.max_body_bytes} bytes, found more")
            chunks.append(chunk)
        return b"".join(chunks)

    def __del__(self):
        log = getattr(self, "log", None)
        if log is not None:
            try:
                log.flush()
            except Exception:  # noqa: BLE001 - shutting down: nothing to answer
                pass


def application(cfg: ServeConfig):
    from ray.serve.config import BackpressureConfig

    s = cfg.serve
    deployment = serve.deployment(
        Extraction, name="Extraction", num_replicas=s.num_replicas,
        max_ongoing_requests=s.max_ongoing_requests, max_queued_requests=s.max_queued_requests,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=s.retry_after_s or None),
        ray_actor_options={"num_cpus": s.cpus_per_replica, "num_gpus": s.gpus_per_replica},
        graceful_shutdown_timeout_s=s.drain_seconds, graceful_shutdown_wait_loop_s=0.5)
    return deployment.bind(cfg)


def start(cfg: ServeConfig) -> None:
    """Ray (embedded local unless ray.address), Serve's HTTP proxy on serve.host:serve.port, and the
    app. Ray's own SIGTERM/SIGINT handlers are replaced by the caller's again afterwards."""
    import logging

    import ray

    from extract.core.signals import kept_handlers

    kwargs = {"ignore_reinit_error": True, "logging_level": logging.WARNING}
    with kept_handlers():
        if cfg.ray.address:
            ray.init(address=cfg.ray.address, **kwargs)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # an embedded single-user cluster
            ray.init(address="local", include_dashboard=False, num_cpus=cfg.ray.num_cpus or None, **kwargs)
    serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port},
                logging_config={"log_level": "WARNING"})
    serve.run(application(cfg), name=APP_NAME, route_prefix="/", blocking=False,
              logging_config={"log_level": "WARNING"})


def stop() -> None:
    """Drain and stop: serve.shutdown() lets each replica finish its in-flight requests (up to
    serve.drain_seconds) and runs its __del__ (the log's last part); then Ray."""
    import ray

    try:
        try:
            # First the app alone: its replicas finish what they hold while the proxy still carries
            # the answers back (serve.shutdown() alone stops the proxy at once: measured, Ray 2.60).
            serve.delete(APP_NAME, _blocking=True)
        finally:
            serve.shutdown()
    finally:
        ray.shutdown()
