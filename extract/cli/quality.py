"""`python -m extract quality`: precision/recall on reviewed samples (extract/monitor/quality.py)."""
from __future__ import annotations

import sys


def add(sub) -> None:
    q = sub.add_parser("quality", help="precision/recall per label (Wilson 95%% intervals) from a Label Studio export")
    q.add_argument("out", help="the job's output folder")
    q.add_argument("--export", required=True, help="Label Studio JSON export of the review tasks")
    q.add_argument("--history", default=None, help="JSON lines file to append to (default: quality_history.jsonl "
                   "in OUT's parent folder)")
    q.add_argument("--predicted", choices=["job", "export"], default="job",
                   help="predicted spans from OUT's entities table by doc_id (default; the task's predictions when "
                   "OUT lacks the doc_id) or from the tasks' predictions")
    q.add_argument("--strategy", choices=["lowest-confidence", "disagreement", "random"], default=None,
                   help="how the reviewed documents were picked (default: inferred from the tasks, else unknown)")
    q.add_argument("--labels", default=None, metavar="PER,LOC,...",
                   help="entity types an annotated span may have; others are dropped and counted (default: the "
                   "run's model.labels from run.json, else PER,LOC,ORG,MISC)")



def run(args) -> int:
    from extract.monitor import quality
    from extract.monitor.review import ReviewError

    try:
        labels = None
        if args.labels is not None:
            labels = list(dict.fromkeys(x.strip() for x in args.labels.split(",") if x.strip()))
            if not labels:
                raise quality.QualityError("--labels: expected entity types like PER,LOC,ORG,MISC, "
                                           f"found {args.labels!r}")
        return quality.main(args.out, args.export, args.history, args.predicted, args.strategy, labels)
    except (quality.QualityError, ReviewError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
