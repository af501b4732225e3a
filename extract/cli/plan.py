"""`python -m extract plan`: plan a job without running it (extract/io/plan.py). A user's first look
at a big corpus: how many files, bytes and shards, and the shard size chosen; plan.json is written
to the output (under the job's checks and lock), so the `run` that follows reuses it."""
from __future__ import annotations

import sys


def add(sub) -> None:
    sp = sub.add_parser("plan", help="plan a job (files, bytes, shards) and write OUT/plan.json; runs nothing")
    sp.add_argument("--config", default=None, help="YAML job config (configs/extract.yaml)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, e.g. --set input.path=corpus/*.jsonl")
    sp.add_argument("--overwrite", action="store_true", help="plan again even where a plan.json is saved")


def run(args) -> int:
    from extract.core.config import ConfigError, load
    from extract.core.job_config import ExtractConfig
    from extract.job.driver import lock_scope
    from extract.job.entities import plan_only

    try:
        with lock_scope():
            cfg = load(ExtractConfig, args.config, args.set)
            facts = plan_only(cfg, overwrite=args.overwrite)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(facts), flush=True)
    return 0


def summary(facts: dict) -> str:
    """The plan in a few lines: what the corpus is and how it was cut."""
    f, shards = facts["input"], facts["plan"]
    size = f.get("shard_bytes")
    setting = f.get("shard_bytes_setting")
    how = f"{size:,} bytes a JSON-lines shard" + (" (input.shard_bytes: auto)" if setting == "auto" else "")
    lines = [f"files:     {f['files']:,}" + (f" ({f['skipped_files']:,} skipped)" if f.get("skipped_files") else ""),
             f"bytes:     {f.get('bytes', 0):,}",
             f"shards:    {len(shards):,} ({facts['done']:,} already done)",
             f"shard size: {how}",
             f"planned in {f.get('planning_seconds', 0):.2f}s" + (f"; {f['plan']}" if f.get("plan") else ""),
             f"plan:      {facts['out']}/plan.json (python -m extract run with the same config reuses it)"]
    return "\n".join(lines)
