"""`python -m extract report`: OUT/report.html and report.json (extract/monitor/run_report.py)."""
from __future__ import annotations

import sys


def add(sub) -> None:
    rp = sub.add_parser("report", help="write OUT/report.html (+ report.json): counts, confidence, throughput, drift")
    rp.add_argument("out", help="the job's output folder (local path or URI)")
    rp.add_argument("--reference", default=None, help="another output folder to measure drift against "
                    "(default: the model's dev data)")
    rp.add_argument("--out", dest="html_out", default=None, help="where to write the page (default OUT/report.html); "
                    "the numbers go beside it as .json")


def run(args) -> int:
    from extract.core.config import ConfigError
    from extract.monitor import run_report

    try:
        return run_report.main(args.out, args.reference, args.html_out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
