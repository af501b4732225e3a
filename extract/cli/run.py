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
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C outside the job's own handlers (start-up, the summary): no traceback
        print("stopped by SIGINT: finished shards are kept; rerun the same command to resume.", file=sys.stderr)
        return 130


def _run(args) -> int:
    from extract.core.config import ConfigError, load
    from extract.core.job_config import ExtractConfig
    from extract.job.driver import Interrupted, lock_scope, signals

    try:
        # SIGTERM/SIGINT stop the job cleanly (Interrupted); the output lock lasts until run.json is written.
        with signals(), lock_scope():
            cfg = load(ExtractConfig, args.config, args.set)
            from extract.job.entities import run as run_job

            report = run_job(cfg, overwrite=args.overwrite)
    except Interrupted as exc:
        print(interrupted_line(exc), file=sys.stderr, flush=True)
        return exc.exit_code
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


def interrupted_line(exc) -> str:
    """The one line for a job a signal stopped: what is kept and how to go on."""
    done = f"{exc.done} of {exc.total} shards are done and kept" if exc.total is not None else \
        "finished shards are kept"
    return f"stopped by {exc.name}: {done}; rerun the same command to resume."


def print_summary(report: dict, out: Path, show: int) -> None:
    st = report["by_status"]
    run = report["this_run"]
    print(f"documents: {report['documents']:,} ({', '.join(f'{k} {v:,}' for k, v in st.items())})")
    print(f"entities:  {report['entities']:,} ({', '.join(f'{k} {v:,}' for k, v in report['by_label'].items())})")
    if run["documents"]:
        print(f"this run:  {run['documents']:,} documents in {run['seconds']:.1f}s: "
              f"{run['documents_per_second']:,.1f} documents/s, {run['words_per_second']:,.0f} words/s")
    print(f"output:    {out}/entities/*.parquet, {out}/docs/*.parquet, {out}/run.json")
    if run.get("ray_logs"):
        print(f"ray logs:  {run['ray_logs']} (Ray's own log files; NERBATCH_RAY_LOG=info also prints its INFO "
              "lines here)")
    if show:
        import pyarrow.dataset as pads

        parts = sorted((out / "entities").glob("part-*.parquet"))
        if parts:
            t = pads.dataset([str(x) for x in parts]).head(show, columns=["doc_id", "label", "text", "start", "end",
                                                                            "score"])
            for row in t.to_pylist():
                print(f"  {row['doc_id']}\t{row['label']}\t{row['text']!r}\t[{row['start']}:{row['end']}]\t"
                      f"{row['score']:.3f}")

