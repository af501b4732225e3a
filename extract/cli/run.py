"""`python -m extract run`: the batch job on a corpus (extract/job/entities.py)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("run", help="extract PER/LOC/ORG from a corpus into Parquet")
    r.add_argument("--config", default=None, help="YAML job config (configs/extract.yaml)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set input.path=corpus/*.jsonl")
    r.add_argument("--overwrite", action="store_true", help="delete the output folder first")
    r.add_argument("--show", type=int, default=5, help="print this many extracted entities")
    return r


def run(args) -> int:
    from extract.core.config import ConfigError, load
    from extract.core.job_config import ExtractConfig

    try:
        cfg = load(ExtractConfig, args.config, args.set)
        from extract.job.entities import run as run_job

        report = run_job(cfg, overwrite=args.overwrite)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. the model failed to load on a worker: one clear line
        if os.environ.get("NERBATCH_DEBUG"):
            raise
        print(f"error: the job failed: {type(exc).__name__}: {exc}\n(finished shards are kept: rerun the same "
              "command to resume; NERBATCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    print_summary(report, Path(cfg.output.path), args.show)
    return 0 if report["complete"] else 1



def print_summary(report: dict, out: Path, show: int) -> None:
    st = report["by_status"]
    run = report["this_run"]
    print(f"documents: {report['documents']:,} ({', '.join(f'{k} {v:,}' for k, v in st.items())})")
    print(f"entities:  {report['entities']:,} ({', '.join(f'{k} {v:,}' for k, v in report['by_label'].items())})")
    if run["documents"]:
        print(f"this run:  {run['documents']:,} documents in {run['seconds']:.1f}s: "
              f"{run['documents_per_second']:,.1f} documents/s, {run['words_per_second']:,.0f} words/s")
    print(f"output:    {out}/entities/*.parquet, {out}/docs/*.parquet, {out}/run.json")
    if show:
        import pyarrow.dataset as pads

        parts = sorted((out / "entities").glob("part-*.parquet"))
        if parts:
            t = pads.dataset([str(x) for x in parts]).head(show, columns=["doc_id", "label", "text", "start", "end", "score"])
            for row in t.to_pylist():
                print(f"  {row['doc_id']}\t{row['label']}\t{row['text']!r}\t[{row['start']}:{row['end']}]\t{row['score']:.3f}")

