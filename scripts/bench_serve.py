"""Closed-loop load on `python -m extract serve` (in-process: embedded Ray, Serve on 127.0.0.1),
beside the in-process Extractor.pipe and the batch job (`python -m extract run`, runner local) on
the same texts, as a markdown table.

    python scripts/bench_serve.py [--model data/models/default] [--waits 0,2,5,10,20,50]
        [--batches 1,8,32] [--concurrency 1,8,32] [--requests 300] [--time-cap 15]

For each batch_wait_ms x max_batch_size the app is (re)deployed, then for each concurrency N client
threads each send one sentence a request over a kept-alive connection and send the next as soon as the
answer came (closed loop), until --requests were answered or --time-cap seconds passed. Sentences are
those of data/sample/reuters_sample.jsonl. Latency is per request at the client (p50/p95/p99);
words/s counts whitespace words of the answered sentences. The clients run on the same CPUs as the
replica, so on a small machine they cost the service some throughput.

Fault mode (issue 17: a replica killed under load is replaced; only requests in flight fail):

    python scripts/bench_serve.py --kill-replica-after 5 --replicas 2 --concurrency 8 --requests 600

deploys --replicas replicas (first --batches / --waits values), runs the closed loop with the first
--concurrency value, and --kill-replica-after seconds into it SIGKILLs one replica's actor process
(found by its process title, ray::ServeReplica:extract:Extraction, under this process). It then polls
serve.status() for the deployment's RUNNING replicas and keeps the load on until --requests were sent
and --after-recovery seconds passed since the replacement was RUNNING (or --fault-time-cap). The table
counts answers by status, the requests in flight at the kill, which of the failures were sent
before or after it, the time until the replacement was RUNNING, and the requests sent after that.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sentences(path: Path, limit: int = 2000) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        for s in re.split(r"(?<=[.!?])\s+", " ".join(str(d.get(k) or "") for k in ("title", "body"))):
            if 4 <= len(s.split()) <= 60:
                out.append(s)
    return out[:limit]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def load(port: int, texts: list[str], clients: int, requests: int, cap: float) -> dict:
    lat: list[float] = []
    words = [0]
    errors = [0]
    lock = threading.Lock()
    left = [requests]
    t_end = time.perf_counter() + cap

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = k
        while time.perf_counter() < t_end:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            text = texts[i % len(texts)]
            i += clients
            body = json.dumps({"texts": [text]})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/extract", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat.append(dt)
                    words[0] += len(text.split())
                else:
                    errors[0] += 1
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    return {"n": len(lat), "errors": errors[0], "rps": len(lat) / secs, "wps": words[0] / secs,
            "p50": pct(lat, 50) * 1000, "p95": pct(lat, 95) * 1000, "p99": pct(lat, 99) * 1000}


def in_process(cfg, texts: list[str], n: int, batch: int) -> dict:
    from extract.serve.engine import build_extractor

    ner = build_extractor(cfg)
    list(ner.pipe(texts[:16]))  # warm
    todo = texts[:n]
    t0 = time.perf_counter()
    list(ner.pipe(todo, batch_size=batch))
    secs = time.perf_counter() - t0
    one = []
    for t in texts[:50]:
        s = time.perf_counter()
        ner(t)
        one.append(time.perf_counter() - s)
    return {"rps": len(todo) / secs, "wps": sum(len(t.split()) for t in todo) / secs,
            "p50": pct(one, 50) * 1000, "p95": pct(one, 95) * 1000, "p99": pct(one, 99) * 1000}


def batch_job(model: str, texts: list[str], threads: int) -> dict:
    """The batch job on the same texts (`python -m extract run`, runner local, one process with
    ``threads`` torch threads): documents/s and words/s over run.json's wall_seconds (no start-up)."""
    import subprocess

    work = ROOT / "runs" / "bench_serve"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "texts.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    out = work / "job"  # written by this script alone: --overwrite is ours to use
    sets = [f"input.path=[{src}]", "input.text_columns=[text]", f"output.path={out}", "runner=local",
            f"model.path={model}", f"inference.threads={max(1, threads)}", "show_progress=false"]
    subprocess.run([sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"),
                    "--overwrite", "--show", "0", *[x for kv in sets for x in ("--set", kv)]],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    secs = json.loads((out / "run.json").read_text())["wall_seconds"]
    return {"rps": len(texts) / secs, "wps": sum(len(t.split()) for t in texts) / secs}


def ints(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="data/models/default")
    p.add_argument("--waits", default="0,2,5,10,20,50", help="batch_wait_ms values")
    p.add_argument("--batches", default="1,8,32", help="max_batch_size values")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests", type=int, default=300, help="requests per cell (at most)")
    p.add_argument("--time-cap", type=float, default=15.0, help="seconds per cell (at most)")
    p.add_argument("--threads", type=int, default=0, help="inference.threads (0: ceil(cpus_per_replica))")
    p.add_argument("--cpus-per-replica", type=float, default=1.0)
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--sample", default=str(ROOT / "data" / "sample" / "reuters_sample.jsonl"))
    p.add_argument("--kill-replica-after", type=float, default=None, metavar="S",
                   help="fault mode: SIGKILL one replica S seconds into the load (see above)")
    p.add_argument("--replicas", type=int, default=1, help="serve.num_replicas")
    p.add_argument("--after-recovery", type=float, default=5.0,
                   help="fault mode: seconds of load after the replacement replica is RUNNING")
    p.add_argument("--fault-time-cap", type=float, default=180.0, help="fault mode: seconds of load at most")
    a = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ray import serve

    from extract.core.config import load as load_cfg
    from extract.serve import app
    from extract.serve.config import ServeConfig

    texts = sentences(Path(a.sample))
    base = [f"model.path={a.model}", f"serve.port={a.port}", f"inference.threads={a.threads}",
            f"serve.cpus_per_replica={a.cpus_per_replica}", "serve.max_ongoing_requests=64",
            "serve.max_queued_requests=-1",
            f"serve.num_replicas={a.replicas}"]
    if a.kill_replica_after is not None:
        cfg = load_cfg(ServeConfig, ROOT / "configs" / "serve.yaml",
                       base + [f"serve.max_batch_size={int(ints(a.batches)[0])}",
                               f"serve.batch_wait_ms={ints(a.waits)[0]:g}"])
        return fault(a, cfg, texts)
    cfg0 = load_cfg(ServeConfig, ROOT / "configs" / "serve.yaml", base)
    rows = []
    ref = in_process(cfg0, texts, min(len(texts), 1000), 32)
    rows.append(f"| in-process Extractor.pipe(batch_size=32) | - | - | {ref['rps']:.1f} | {ref['wps']:,.0f} | "
                f"{ref['p50']:.1f} | {ref['p95']:.1f} | {ref['p99']:.1f} | (p: one text per call) |")
    job = batch_job(a.model, texts[:1000], a.threads or int(-(-a.cpus_per_replica // 1)))
    rows.append(f"| batch job (extract run, runner local) | - | - | {job['rps']:.1f} | {job['wps']:,.0f} | - | - | - | "
                "(texts/s, run.json wall) |")
    started = False
    for bs in ints(a.batches):
        for wait in ints(a.waits):
            cfg = load_cfg(ServeConfig, ROOT / "configs" / "serve.yaml",
                           base + [f"serve.max_batch_size={int(bs)}", f"serve.batch_wait_ms={wait:g}"])
            if not started:
                app.start(cfg)
                started = True
            else:
                serve.run(app.application(cfg), name=app.APP_NAME, route_prefix="/", blocking=False,
                          logging_config={"log_level": "WARNING"})  # as app.start: no access log a request
                time.sleep(2)  # the old replicas gone
            _ready(a.port)
            load(a.port, texts, 4, 20, 5)  # warm
            for c in ints(a.concurrency):
                r = load(a.port, texts, int(c), a.requests, a.time_cap)
                line = (f"| serve wait={wait:g}ms batch={int(bs)} | {int(c)} | {r['n']} | {r['rps']:.1f} | "
                        f"{r['wps']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} |")
                rows.append(line)
                print(line, file=sys.stderr, flush=True)
    app.stop()
    print("| setup | clients | requests | req/s | words/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


REPLICA_TITLE = "ray::ServeReplica:extract:Extraction"


def replica_pids() -> list[int]:
    """Pids of this process's Serve replica actors (embedded Ray: they are its descendants)."""
    import psutil  # ray/thirdparty_files, on sys.path once ray is imported

    pids = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if (proc.cmdline() or [""])[0].startswith(REPLICA_TITLE):
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return sorted(pids)


def running_replicas() -> int:
    """RUNNING replicas of the app's deployment, as serve.status() reports them."""
    from ray import serve

    try:
        dep = serve.status().applications["extract"].deployments["Extraction"]
    except KeyError:
        return 0
    return int(dep.replica_states.get("RUNNING", 0))


def fault(a, cfg, texts: list[str]) -> int:
    """Closed-loop load, one replica SIGKILLed after --kill-replica-after seconds; a markdown table."""
    import signal

    from extract.serve import app

    n_clients = int(ints(a.concurrency)[0])
    app.start(cfg)
    _ready(a.port)
    deadline = time.monotonic() + 300
    while running_replicas() < a.replicas or len(replica_pids()) < a.replicas:
        if time.monotonic() > deadline:
            raise RuntimeError("the replicas did not come up")
        time.sleep(0.2)
    load(a.port, texts, 4, 40, 10)  # warm: every replica answers (and has its model loaded)

    lock = threading.Lock()
    done: list[tuple[float, float, str]] = []  # (sent, answered, "200" | status | "conn: ...")
    pending: dict[int, float] = {}  # client -> when its request was sent
    sent = [0]
    stop = threading.Event()
    ev: dict[str, float] = {}
    failures: list[str] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        i = k
        while not stop.is_set():
            text = texts[i % len(texts)]
            i += n_clients
            body = json.dumps({"texts": [text]})
            with lock:
                t0 = time.perf_counter()
                pending[k] = t0
                sent[0] += 1
            try:
                conn.request("POST", "/v1/extract", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                raw = r.read()
                what = str(r.status)
                if r.status != 200 and len(failures) < 5:
                    failures.append(f"{r.status} {raw[:160]!r}")
            except (OSError, http.client.HTTPException) as exc:
                what = f"conn: {type(exc).__name__}"
                if len(failures) < 5:
                    failures.append(f"{what} {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
            with lock:
                pending.pop(k, None)
                done.append((t0, time.perf_counter(), what))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n_clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(a.kill_replica_after)
    victim = replica_pids()[0]
    with lock:
        ev["kill"] = time.perf_counter()
        in_flight = len(pending)
        os.kill(victim, signal.SIGKILL)
    while time.perf_counter() - t_start < a.fault_time_cap:
        running = running_replicas()
        now = time.perf_counter()
        if "down" not in ev and running < a.replicas:
            ev["down"] = now
        if "down" in ev and "up" not in ev and running >= a.replicas:
            ev["up"] = now
        if "up" in ev and now - ev["up"] >= a.after_recovery and sent[0] >= a.requests:
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(70)
    secs = time.perf_counter() - t_start
    new_pids = replica_pids()
    app.stop()

    kill, up = ev["kill"], ev.get("up")
    by: dict[str, int] = {}
    for _, _, what in done:
        by[what] = by.get(what, 0) + 1
    bad = [d for d in done if d[2] != "200"]
    bad_before = sum(1 for d in bad if d[0] < kill)
    bad_after = len(bad) - bad_before
    after = [d for d in done if up is not None and d[0] >= up]
    ok = by.get("200", 0)
    failed = ", ".join(f"{k}: {v}" for k, v in sorted(by.items()) if k != "200") or "0"
    rows = [
        ("setup", f"{a.replicas} replicas, {n_clients} closed-loop clients, replica pid {victim} SIGKILLed "
                  f"{kill - t_start:.1f} s into the load"),
        ("requests (each answered or failed)", f"{len(done)} in {secs:.1f} s"),
        ("answered 200", ok),
        ("failed, by status", failed),
        ("in flight at the kill (all replicas)", in_flight),
        ("failed, sent before the kill (so in flight at it)", bad_before),
        ("failed, sent after the kill", bad_after),
        ("serve.status() showed a replica missing after",
         f"{ev['down'] - kill:.2f} s" if "down" in ev else "never seen"),
        ("replacement RUNNING after the kill",
         f"{up - kill:.2f} s (model loaded: a replica is RUNNING once its __init__ returns)" if up
         else "not within the cap"),
        ("replica processes after", f"{', '.join(map(str, new_pids))}" + ("" if victim not in new_pids
                                                                          else f" ({victim} still alive?)")),
        ("sent after recovery: answered 200 / failed",
         f"{sum(1 for d in after if d[2] == '200')} / {sum(1 for d in after if d[2] != '200')}" if up else "-"),
    ]
    for f in failures:
        print("failure:", f, file=sys.stderr)
    print("| fault: one replica killed under load | |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    return 0


def _ready(port: int, timeout: float = 300) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the service did not become ready")


if __name__ == "__main__":
    sys.exit(main())
