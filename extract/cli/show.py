"""`python -m extract show`: OUT/show.html, documents with their entities (extract/monitor/show.py)."""
from __future__ import annotations

import sys


def add(sub) -> None:
    sp = sub.add_parser("show", help="write OUT/show.html: documents with their entities highlighted (displaCy)")
    sp.add_argument("out", help="the job's output folder (local path or URI)")
    pick = sp.add_mutually_exclusive_group()
    pick.add_argument("--ids", nargs="+", default=None, metavar="ID", help="these documents")
    pick.add_argument("--sample", type=int, default=None, metavar="N", help="N random ok documents (default 5)")
    sp.add_argument("--seed", type=int, default=0, help="random seed for --sample")
    sp.add_argument("--out", dest="html_out", default=None, help="where to write the page (default OUT/show.html)")


def run(args) -> int:
    from extract.core.config import ConfigError
    from extract.monitor import show

    try:
        return show.main(args.out, args.ids, args.sample, args.seed, args.html_out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
