"""`python -m extract review`: pick documents for Label Studio (extract/monitor/review.py)."""
from __future__ import annotations

import sys


def add(sub) -> None:
    v = sub.add_parser("review", help="write Label Studio tasks for documents worth a human look")
    v.add_argument("out", help="the output folder of `python -m extract run`")
    v.add_argument("--n", type=int, default=200, help="how many documents")
    v.add_argument("--strategy", choices=["lowest-confidence", "disagreement", "random"], default="lowest-confidence")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--teacher", action="append", default=[], metavar="MODEL_DIR",
                   help="model dir(s) for --strategy disagreement (repeat for several)")
    v.add_argument("--pool", type=int, default=2000, help="disagreement: teacher relabels at most this many documents")
    v.add_argument("--out", dest="dest", default=None,
                   help="tasks JSON (default review_<strategy>.json); the labeling config goes next to it as .xml")



def run(args) -> int:
    from extract.monitor.review import ReviewError, review

    try:
        facts = review(args.out, args.n, args.strategy, args.seed, args.teacher, args.dest, args.pool)
    except (ReviewError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{facts['picked']} of {facts['candidates']} candidate documents ({facts['strategy']}), "
          f"{facts['entities']} pre-annotated entities -> {facts['tasks']}; labeling config -> {facts['config']}")
    return 0
