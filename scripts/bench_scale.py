"""Driver memory and time at the end of a job, by corpus size (issue "Internet scale: the driver holds
shards, never records").

For each size, a synthetic *finished* output folder is written fast with pyarrow: parts of
``--docs-per-part`` documents (10 entities each), their stats files with the per-shard summaries the
job's ``finish`` writes (extract/job/shard_stats.py ``of_tables``), ids repeated across shards that the
duplicate pass has to settle, some error and skipped rows; plus plan.json and _job.json made by the
driver's own functions over a stub input file, so the real job command resumes it with nothing left
to run. Then, each in a fresh subprocess (time and peak RSS of that child, ``os.wait4``'s
ru_maxrss):

- floor: the end-of-job modules imported, nothing else;
- settle duplicates + run.json summary: the driver's two end-of-job calls alone
  (``duplicates.settle`` and ``summary.summarize``; the shards holding a later duplicate are
  rewritten here);
- ``extract run`` resuming it: the whole job command on the folder (plan reused, identity checked
  with the model's hashes, no shard pending, duplicates settled - nothing left to rewrite -,
  run.json written); its floor is higher: the command imports torch and transformers to check the
  model;
- ``extract report OUT``;
- with ``--legacy``: what the driver did before, from the whole tables (six docs columns and the
  in-memory duplicate rule, then the docs table and the entities' label and score columns).

Prints a markdown table. ``python scripts/bench_scale.py --sizes 100000,1000000,10000000``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]

from extract.core import schema  # noqa: E402
from extract.job import shard_stats  # noqa: E402

CONFIG = ROOT / "configs" / "extract.yaml"
MODEL = ROOT / "data" / "models" / "default"
ENTS_PER_DOC = 10
VOCAB = 5000  # distinct entity texts
DUP_EVERY = 10  # every 10th part (and the first) holds ids seen before


def overrides(src: Path, out: Path) -> list[str]:
    return ["--set", "runner=local", "--set", f"input.path=[{src}]", "--set", f"output.path={out}",
            "--set", "show_progress=false", "--set", f"model.path={MODEL}"]


def cli_sets(args: list[str]) -> list[str]:
    return [a for a in args if a != "--set"]


def write_part(task: tuple) -> int:
    """One finished shard: docs and entities parts and its stats file; the bytes written."""
    out, src, k, n_parts, per_part = task
    out = Path(out)
    rng = np.random.default_rng(k)
    shard = f"00000-{k:05d}"
    first = k * per_part
    ids = pa.array([f"doc-{i:010d}" for i in range(first, first + per_part)], pa.string())
    ids_np = np.array(ids.to_pylist(), dtype=object)
    if k == 0 or k % DUP_EVERY == DUP_EVERY - 1:  # 20 ids repeated from earlier rows (or the part before)
        at = rng.choice(np.arange(per_part // 2, per_part), 20, replace=False)
        back = max(0, first - per_part)
        ids_np[at] = [f"doc-{back + int(j):010d}" for j in rng.integers(0, per_part // 2, 20)]
    u = rng.random(per_part)
    status = np.where(u < 0.005, "error", np.where(u < 0.01, "skipped", np.where(u < 0.012, "empty", "ok")))
    error = np.where(status == "error", "malformed JSON: Expecting value at line 1",
                     np.where(status == "skipped", "1,234,567 characters is over input.max_chars=1000000; raise it",
                              None))
    ok = status == "ok"
    n_words = np.where(ok, rng.integers(50, 400, per_part), 0)
    n_ent = np.where(ok, ENTS_PER_DOC, 0)
    offsets = np.arange(per_part, dtype=np.int64) * 700 + first * 700
    docs = pa.table({"doc_id": pa.array(ids_np, pa.string()), "status": pa.array(status.astype(object), pa.string()),
                     "error": pa.array(error.astype(object), pa.string()), "n_chars": pa.array(n_words * 6, pa.int64()),
                     "n_words": pa.array(n_words, pa.int64()), "n_tokens": pa.array(n_words * 13 // 10, pa.int64()),
                     "n_entities": pa.array(n_ent, pa.int64()),
                     "source": pc.binary_join_element_wise(
                         pa.array([f"{src}@"] * per_part), pa.array(offsets).cast(pa.string()), ""),
                     "warning": pa.nulls(per_part, pa.string()), "shard": pa.array([shard] * per_part, pa.string()),
                     "index": pa.array(np.arange(per_part), pa.int64())}, schema=schema.DOCS)
    rows = np.repeat(np.flatnonzero(ok), ENTS_PER_DOC)
    m = len(rows)
    start = rng.integers(0, 2000, m)
    vocab = pa.array([f"Name{i}" for i in range(VOCAB)], pa.string())
    text = vocab.take(pa.array(np.minimum(rng.zipf(1.3, m) - 1, VOCAB - 1)))
    ents = pa.table({"doc_id": pa.array(ids_np[rows], pa.string()),
                     "label": pa.array(np.array(["PER", "LOC", "ORG"], dtype=object)[rng.integers(0, 3, m)],
                                       pa.string()),
                     "text": text, "start": pa.array(start, pa.int64()), "end": pa.array(start + 8, pa.int64()),
                     "score": pa.array(rng.beta(5, 1.2, m).astype(np.float32), pa.float32()),
                     "model": pa.array(["default:" + "ab" * 32] * m, pa.string())}, schema=schema.ENTITIES)
    pq.write_table(ents, out / "entities" / f"part-{shard}.parquet", compression="zstd")
    stats = {"shard": shard, "docs": per_part, "ok": int(ok.sum()), "words": int(n_words.sum()), "entities": m,
             "seconds": 60.0, "finished_at": 1.75e9 + 60 * k,
             shard_stats.KEY: shard_stats.of_tables(docs, ents)}
    (out / "stats" / f"part-{shard}.json").write_text(json.dumps(stats))
    pq.write_table(docs, out / "docs" / f"part-{shard}.parquet", compression="zstd")  # last, as the job does
    return sum(p.stat().st_size for p in (out / "entities" / f"part-{shard}.parquet",
                                          out / "docs" / f"part-{shard}.parquet", out / "stats" / f"part-{shard}.json"))


def make_output(base: Path, n_docs: int, per_part: int, workers: int) -> tuple[Path, Path, int]:
    """The finished output folder for ``n_docs`` documents (its plan.json and _job.json as the
    driver writes them) and its stub input file; (input, output, bytes)."""
    from extract.core.config import load
    from extract.job.entities import job_settings
    from extract.core.job_config import ExtractConfig
    from extract.core.types import Shard
    from extract.io.plan import input_stamps, save_plan
    from extract.job.identity import job_identity
    from extract.job.output import prepare

    if base.exists():
        shutil.rmtree(base)
    src, out = base / "input" / "corpus.jsonl", base / "out"
    src.parent.mkdir(parents=True)
    src.write_text(json.dumps({"id": "x", "title": "Bonn", "body": "Paris"}) + "\n")
    cfg = load(ExtractConfig, str(CONFIG), cli_sets(overrides(src, out)))
    n_parts = max(1, n_docs // per_part)
    st = os.stat(src)
    shards = [Shard(f"00000-{k:05d}", "jsonl", str(src), None, k * 700 * per_part, -1,
                    stamps=[[st.st_size, st.st_mtime_ns]])
              for k in range(n_parts)]
    settings = job_settings(cfg)  # the job's identity must match for the real command to resume
    prepare(str(out), job_identity(settings, input_stamps(shards), [MODEL]),
            ("entities", "docs", "_attempts", "stats"), False)
    save_plan(str(out), cfg.input, shards, {"files": 1, "shards": n_parts, "skipped_files": 0,
                                            "skipped_file_examples": [], "skipped_file_reasons": {}})
    with Pool(workers) as pool:
        written = sum(pool.imap(write_part, [(str(out), str(src), k, n_parts, per_part) for k in range(n_parts)]))
    return src, out, written


def measure(cmd: list[str], log: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one fresh child process."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, p.returncode


LEGACY = """
import sys
from extract.core import fs, schema
from extract.job.duplicates import later_duplicates
from extract.job.summary import summarize_tables, table_of
out = sys.argv[1]
docs = table_of(fs.join(out, "docs"), ["doc_id", "status", "shard", "index", "source", "error"], schema.DOCS)
n = later_duplicates(docs).num_rows
del docs
s = summarize_tables(out)
print(n, s["documents"], s["entities"])
"""

IMPORTS = "import extract.job.duplicates, extract.job.summary, extract.job.driver"

END_OF_JOB = """
import sys
from extract.job.duplicates import settle
from extract.job.summary import summarize
out = sys.argv[1]
n = settle(out, ("entities",))
s = summarize(out)
print(n, s["documents"], s["entities"])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,10000000", help="documents, comma-separated")
    ap.add_argument("--docs-per-part", type=int, default=100_000)
    ap.add_argument("--dir", default=str(ROOT / "runs" / "bench_scale"), help="where the outputs go")
    ap.add_argument("--workers", type=int, default=2, help="processes writing the synthetic parts")
    ap.add_argument("--legacy", action="store_true", help="also the table-based end of job (the driver before)")
    ap.add_argument("--legacy-max", type=int, default=1_000_000,
                    help="largest size the table-based row runs for (it needs ~0.8 GB per million documents)")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic outputs")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    log = base / "bench_scale.log"
    py = sys.executable
    rows = []
    entities: dict[int, int] = {}
    for n in sizes:
        t0 = time.perf_counter()
        src, out, written = make_output(base / f"n{n}", n, args.docs_per_part, args.workers)
        gen = time.perf_counter() - t0
        parts = len(list((out / "docs").glob("part-*.parquet")))
        print(f"{n:,} documents: {parts} parts, {written / 1e6:,.0f} MB written in {gen:.1f} s", flush=True)
        steps = [("floor: the modules imported", [py, "-c", IMPORTS]),
                 ("settle duplicates + run.json summary", [py, "-c", END_OF_JOB, str(out)]),
                 ("`extract run` resuming it (whole command)", [py, "-m", "extract", "run", "--config", str(CONFIG),
                                                                "--show", "0", *overrides(src, out)]),
                 ("`extract report`", [py, "-m", "extract", "report", str(out)])]
        if args.legacy and n <= args.legacy_max:
            steps.append(("before: tables in the driver", [py, "-c", LEGACY, str(out)]))
        for name, cmd in steps:
            sec, mb, rc = measure(cmd, log)
            extra = ""
            if name.startswith("`extract run`") and rc == 0:
                run = json.loads((out / "run.json").read_text())
                entities[n] = run["entities"]
                extra = (f"{run['documents']:,} docs, {run['entities']:,} entities, "
                         f"{run['input']['duplicate_ids']} duplicate ids")
            rows.append((n, parts, name, sec, mb, rc, extra))
            print(f"  {name}: {sec:.1f} s, peak {mb:.0f} MB, exit {rc} {extra}", flush=True)
        if not args.keep:
            shutil.rmtree(base / f"n{n}", ignore_errors=True)
    print("\n| documents | entities | parts | step | seconds | peak RSS MB | vs smallest size | exit |")
    print("|---|---|---|---|---|---|---|---|")
    first = {}
    for n, parts, name, sec, mb, rc, extra in rows:
        first.setdefault(name, mb)
        ents = f"{entities[n]:,}" if n in entities else "?"
        print(f"| {n:,} | {ents} | {parts} | {name} | {sec:.1f} | {mb:.0f} | {mb / first[name]:.2f}x | {rc} |")
    return 0 if all(r[5] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
