"""Worker memory against shard size, and time to the first finished shard against input size.

Memory: a JSON-lines corpus of Reuters-21578 records (title + body, repeated under new ids) of
SIZE MB is run as ONE shard (input.shard_bytes above its size) through `python -m extract run`;
the peak RSS of the job's processes is sampled every 0.2 s until the shard's docs part exists (or
--timeout). Runner local: the one process (driver = worker). Runner ray: each Ray worker process
(the stage actors), the largest reported. ``--rev`` runs another commit's code (a git worktree)
for a before/after table.

First shard: a corpus of N records with the default input.shard_bytes (auto), runner local; the
seconds from start to the first docs part, and the process's peak RSS by then.

    python scripts/bench_memory.py memory --sizes 1,4,16,64 --runner local
    python scripts/bench_memory.py memory --sizes 1,4,16 --runner local --rev 15cd8f8
    python scripts/bench_memory.py first-shard --records 30000,3000000
    python scripts/bench_memory.py planning-files --files 120000   # planning a folder of small .txt files

Each run adds its rows (with command, machine, date) to runs/bench_memory.json, prints them and
rewrites docs/benchmarks/memory.md from all rows kept there. Corpora are written under
runs/bench_memory/ (not in git).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REUTERS = "../shared/data/corpus/reuters21578"
WORK = Path("runs/bench_memory")


def corpus(path: Path, size_mb: float = 0, records: int = 0) -> Path:
    """Reuters records repeated under new ids until SIZE MB or N records (made once, reused)."""
    if path.is_file():
        return path
    base = []
    for f in sorted(glob.glob(f"{REUTERS}/*.jsonl")):
        for line in open(f, encoding="utf-8"):
            o = json.loads(line)
            if o.get("body"):
                base.append({"title": o.get("title") or "", "body": o["body"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = written = 0
    with open(tmp, "w", encoding="utf-8") as out:
        while (size_mb and written < size_mb * 1e6) or (records and n < records):
            line = json.dumps({"id": f"r{n}", **base[n % len(base)]}) + "\n"
            out.write(line)
            written += len(line.encode())
            n += 1
    tmp.rename(path)
    return path


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(k) for k in kids]
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:80]
    except OSError:
        return ""


def watch(argv: list[str], cwd: str, out: Path, timeout: float, ray: bool) -> dict:
    """Run the job; sample RSS until the first docs part exists; stop it there."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    driver_peak, worker_peak, worker_title, done_at = 0.0, 0.0, "", None
    while proc.poll() is None and time.time() - t0 < timeout:
        pids = descendants(proc.pid)
        driver_peak = max(driver_peak, rss_mb(proc.pid))
        for p in pids[1:]:
            name = title(p)
            if ray and "ray::" in name and rss_mb(p) > worker_peak:
                worker_peak, worker_title = rss_mb(p), name
        if list(out.glob("docs/part-*.parquet")):
            done_at = time.time() - t0
            break
        time.sleep(0.2)
    if done_at is None and list(out.glob("docs/part-*.parquet")):  # it finished between two samples
        done_at = time.time() - t0
    pieces = len(list(out.glob("_pieces/*/p*.docs.parquet")))
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
    proc.wait()
    return {"driver_peak_mb": round(driver_peak), "worker_peak_mb": round(worker_peak) if ray else round(driver_peak),
            "worker": worker_title if ray else "the job's process",
            "first_shard_s": round(done_at, 1) if done_at else None,
            "stopped_at_s": None if done_at else round(time.time() - t0, 1), "pieces_staged_when_stopped": pieces,
            "stderr_tail": "" if done_at else err}


def checkout(rev: str) -> str:
    path = Path(tempfile.gettempdir()) / f"nerbatch-{rev}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True)
        (path / "data/models/default").mkdir(parents=True, exist_ok=True)
    return str(path)


def job_argv(cwd: str, data: Path, out: Path, runner: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "extract", "run", "--config", "configs/extract.yaml",
            "--set", f"input.path={data.resolve()}", "--set", "input.text_columns=[title, body]",
            "--set", f"output.path={out}", "--set", f"runner={runner}", "--set", "show_progress=false",
            "--set", f"model.path={Path('data/models/default').resolve()}", *extra]


def memory(args) -> list[dict]:
    cwd = checkout(args.rev) if args.rev else os.getcwd()
    rows = []
    for size in [float(s) for s in args.sizes.split(",")]:
        data = corpus(WORK / f"reuters-{size:g}mb.jsonl", size_mb=size)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            out = Path(tmp) / "out"
            extra = ["--set", f"input.shard_bytes={int(size * 1e6) + 10_000_000}"]
            r = watch(job_argv(cwd, data, out, args.runner, extra), cwd, out, args.timeout, args.runner == "ray")
        rows.append({"what": "memory", "rev": args.rev or "working tree", "runner": args.runner, "shard_mb": size, **r})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def first_shard(args) -> list[dict]:
    rows = []
    for n in [int(x) for x in args.records.split(",")]:
        data = corpus(WORK / f"reuters-{n}.jsonl", records=n)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            out = Path(tmp) / "out"
            r = watch(job_argv(os.getcwd(), data, out, "local", []), os.getcwd(), out, args.timeout, False)
        rows.append({"what": "first shard", "rev": "working tree", "runner": "local", "records": n,
                     "bytes": data.stat().st_size, **r})
        print(json.dumps(rows[-1]), flush=True)
    return rows


PLAN_CHILD = """
import resource, sys, time
from extract.core.job_config import InputConfig
from extract.io.plan import plan, probe_columns
if sys.argv[2] == "plan":
    t0 = time.time()
    shards, facts = plan(InputConfig(path=(sys.argv[1],), text_columns=("text",)))
    probe_columns(shards, InputConfig(path=(sys.argv[1],), text_columns=("text",)))
    print(facts["files"], facts["shards"], round(time.time() - t0, 2))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def planning_files(args) -> list[dict]:
    """Plan a folder of N small .txt files in a fresh process; peak RSS against the imports alone."""
    folder = WORK / f"txt-{args.files}"
    if not folder.is_dir():
        tmp = folder.with_name(folder.name + ".tmp")
        for i in range(args.files):
            sub = tmp / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{i}.txt").write_text(f"John Smith visited Bonn on day {i}.\n")
        tmp.rename(folder)
    out = {}
    for what in ("floor", "plan"):
        r = subprocess.run([sys.executable, "-c", PLAN_CHILD, str(folder), what], capture_output=True, text=True,
                           check=True)
        out[what] = r.stdout.split()
    files, shards, seconds, peak = out["plan"]
    row = {"what": "planning a folder", "rev": "working tree", "runner": "-", "records": int(files),
           "worker_peak_mb": int(peak), "driver_peak_mb": int(peak), "first_shard_s": None,
           "stopped_at_s": None, "pieces_staged_when_stopped": 0, "plan_seconds": float(seconds),
           "shards": int(shards), "floor_mb": int(out["floor"][0])}
    print(json.dumps(row), flush=True)
    return [row]


def table(rows: list[dict]) -> str:
    lines = ["| what | code | runner | shard MB / records | peak RSS, worker (MB) | peak RSS, driver (MB) "
             "| first shard (s) | command | machine, date |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        size = f"{r['shard_mb']:g} MB" if "shard_mb" in r else f"{r['records']:,}"
        if "plan_seconds" in r:
            first = f"planned in {r['plan_seconds']} s, {r['shards']} shards; imports alone {r['floor_mb']} MB"
        elif r["first_shard_s"] is not None:
            first = f"{r['first_shard_s']}"
        else:
            first = f"not done in {r['stopped_at_s']} s ({r['pieces_staged_when_stopped']} pieces staged)"
        lines.append(f"| {r['what']} | {r['rev']} | {r['runner']} | {size} | {r['worker_peak_mb']:,} | "
                     f"{r['driver_peak_mb']:,} | {first} | `{r.get('command', '')}` | {r.get('machine', '')}, "
                     f"{r.get('date', '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--sizes", default="1,4,16,64")
    m.add_argument("--runner", default="local", choices=["local", "ray"])
    m.add_argument("--rev", default="", help="a git commit to measure instead of the working tree")
    m.add_argument("--timeout", type=float, default=600)
    f = sub.add_parser("first-shard")
    f.add_argument("--records", default="30000,3000000")
    f.add_argument("--timeout", type=float, default=600)
    pf = sub.add_parser("planning-files")
    pf.add_argument("--files", type=int, default=120_000)
    args = ap.parse_args()
    rows = {"memory": memory, "first-shard": first_shard, "planning-files": planning_files}[args.cmd](args)
    store = Path("runs/bench_memory.json")
    saved = json.loads(store.read_text()) if store.is_file() else []
    command = "python scripts/bench_memory.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    saved += [{**r, "command": command, "machine": machine, "date": time.strftime("%Y-%m-%d")} for r in rows]
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(saved, indent=2))
    print(table(saved[-len(rows):]))
    Path("docs/benchmarks/memory.md").write_text(
        "# Worker memory and time to the first shard\n\nWritten by `scripts/bench_memory.py` (its docstring says "
        "what each row measures). A worker's peak RSS includes the model and every import.\n\n" + table(saved) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
