"""The HTTP API of `python -m extract serve`, without Ray: request validation, response bodies and
the service's own Prometheus metrics.

POST /v1/extract  {"texts": ["...", ...]}
  200 {"model": "<model id>", "results": [[{"label", "text", "start", "end", "score"}, ...], ...]}
      one list per text, in input order; offsets are characters of the text as sent.
  4xx {"error": "... expected ..., found ..."} for any bad request (413 for a body over the limit).
GET /healthz  200 {"status": "ok", "model": ...} once the model is loaded, 503 before.
GET /metrics  the replica's counters in the Prometheus text format.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from extract.text.sanitize import sanitize


class BadRequest(Exception):
    """A request the client must fix: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_texts: int = 64
    max_chars: int = 100_000
    max_body_bytes: int = 8_000_000


def _kind(value) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def check_length(content_length: str | None, limits: Limits) -> None:
    """413 from the Content-Length header alone, before the body is read."""
    if content_length is None:
        return
    try:
        n = int(content_length)
    except ValueError:
        raise BadRequest(400, "expected a whole number in the Content-Length header, "
                              f"found {content_length!r}") from None
    if n > limits.max_body_bytes:
        raise BadRequest(413, f"expected a body of at most {limits.max_body_bytes} bytes, found {n} bytes")


def parse_texts(body: bytes, limits: Limits) -> tuple[list[str], list[str | None]]:
    """The texts of a POST /v1/extract body, sanitised as the job's reader does (lone surrogates ->
    U+FFFD, one for one, so offsets index the text as sent), with each text's warning or None; a
    BadRequest for anything else."""
    if len(body) > limits.max_body_bytes:
        raise BadRequest(413, f"expected a body of at most {limits.max_body_bytes} bytes, found {len(body)} bytes")
    if not body.strip():
        raise BadRequest(400, 'expected a JSON body {"texts": ["...", ...]}, found an empty body')
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"expected a UTF-8 JSON body, found invalid UTF-8 at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        msg = getattr(exc, "msg", None) or type(exc).__name__
        raise BadRequest(400, f'expected a JSON body {{"texts": [...]}}, found invalid JSON{where}: {msg}') from None
    if not isinstance(data, dict):
        raise BadRequest(400, f'expected a JSON object {{"texts": [...]}}, found {_kind(data)}')
    unknown = sorted(k for k in data if k != "texts")
    if unknown:
        raise BadRequest(400, f'expected only the key "texts", found {", ".join(map(repr, unknown))}')
    if "texts" not in data:
        raise BadRequest(400, 'expected the key "texts" (a list of strings), found none')
    texts = data["texts"]
    if not isinstance(texts, list):
        raise BadRequest(400, f'expected "texts" to be a list of strings, found {_kind(texts)}')
    if not texts:
        raise BadRequest(400, 'expected at least one text in "texts", found an empty list')
    if len(texts) > limits.max_texts:
        raise BadRequest(400, f"expected at most {limits.max_texts} texts a request, found {len(texts)}; "
                              "split them over several requests")
    out, warnings = [], []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadRequest(400, f"expected texts[{i}] to be a string, found {_kind(t)}")
        if len(t) > limits.max_chars:
            raise BadRequest(400, f"expected texts[{i}] to have at most {limits.max_chars} characters, "
                                  f"found {len(t)}")
        clean, warning = sanitize(t)
        out.append(clean)
        warnings.append(warning)
    return out, warnings


def dumps(obj) -> bytes:
    """JSON as sent: ASCII escapes, so any text (the sanitised texts are valid UTF-8 anyway) is safe."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_body(message: str) -> bytes:
    return dumps({"error": message})


# ---------------------------------------------------------------------------------- metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.n += 1
        self.sum += value
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        tail = f"{{{labels}}}" if labels else ""
        return out + [f"{name}_sum{tail} {self.sum:.6f}", f"{name}_count{tail} {self.n}"]


class Metrics:
    """This replica's numbers (GET /metrics answers from one replica: with serve.num_replicas > 1,
    scrape Ray Serve's own metrics for the whole app, see /tmp/readme_serve.md). Requests the proxy
    refused (503 on a full queue) never reach a replica, so they are not counted here."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.texts = 0
        self.entities = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.queue_wait = _Histogram(LATENCY_BUCKETS)
        self.batch_size = _Histogram(BATCH_BUCKETS)
        self.forward = _Histogram(LATENCY_BUCKETS)

    def request(self, path: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
            if path == "/v1/extract":
                self.latency.observe(seconds)

    def batch(self, waits: list[float], seconds: float, n_entities: int) -> None:
        with self.lock:
            self.batch_size.observe(len(waits))
            for w in waits:
                self.queue_wait.observe(w)
            self.forward.observe(seconds)
            self.texts += len(waits)
            self.entities += n_entities

    def text(self) -> str:
        with self.lock:
            out = ["# HELP extract_serve_requests_total Requests answered by this replica, by path and status.",
                   "# TYPE extract_serve_requests_total counter"]
            out += [f'extract_serve_requests_total{{path="{p}",code="{s}"}} {n}'
                    for (p, s), n in sorted(self.requests.items())]
            out += ["# HELP extract_serve_texts_total Texts run through the model.",
                    "# TYPE extract_serve_texts_total counter", f"extract_serve_texts_total {self.texts}",
                    "# HELP extract_serve_entities_total Entities returned.",
                    "# TYPE extract_serve_entities_total counter", f"extract_serve_entities_total {self.entities}"]
            for name, h, what in (
                    ("extract_serve_request_seconds", self.latency,
                     "POST /v1/extract latency in the replica (seconds)."),
                    ("extract_serve_queue_wait_seconds", self.queue_wait,
                     "Time a text waited for its batch (seconds)."),
                    ("extract_serve_batch_size", self.batch_size, "Texts per model batch."),
                    ("extract_serve_batch_seconds", self.forward, "Seconds per batch (windows, forward, decoding).")):
                out += [f"# HELP {name} {what}", f"# TYPE {name} histogram"] + h.lines(name)
            return "\n".join(out) + "\n"
