"""CLI: python -m extract run --config configs/extract.yaml [--set key=value ...] [--overwrite]"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extract")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="extract PER/LOC/ORG from a corpus into Parquet")
    r.add_argument("--config", default=None, help="YAML job config (configs/extract.yaml)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set input.path=corpus/*.jsonl")
    r.add_argument("--overwrite", action="store_true", help="delete the output folder first")
    r.add_argument("--show", type=int, default=5, help="print this many extracted entities")
    _add_review(sub)  # review subcommand: see the block at the end of this file
    _add_report_show(sub)  # report and show subcommands: see their block at the end of this file
    _add_quality(sub)  # quality subcommand: see its block at the end of this file
    _add_export_onnx(sub)  # export-onnx subcommand: see its block at the end of this file
    args = p.parse_args(argv)
    if args.cmd == "export-onnx":
        return _export_onnx(args)
    if args.cmd == "quality":
        return _quality(args)
    if args.cmd in ("report", "show"):
        return _report_show(args)
    if args.cmd == "review":
        return _review(args)

    from extract.core.config import ConfigError, load
    from extract.core.job_config import ExtractConfig

    try:
        cfg = load(ExtractConfig, args.config, args.set)
        from extract.job.entities import run

        report = run(cfg, overwrite=args.overwrite)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. the model failed to load on a worker: one clear line
        if os.environ.get("NERBATCH_DEBUG"):
            raise
        print(f"error: the job failed: {type(exc).__name__}: {exc}\n(finished shards are kept: rerun the same "
              "command to resume; NERBATCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    _print_summary(report, Path(cfg.output.path), args.show)
    return 0 if report["complete"] else 1


def _print_summary(report: dict, out: Path, show: int) -> None:
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


# --- review: pick documents for Label Studio (extract/review.py) ------------------------------
def _add_review(sub) -> None:
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


def _review(args) -> int:
    from extract.monitor.review import ReviewError, review

    try:
        facts = review(args.out, args.n, args.strategy, args.seed, args.teacher, args.dest, args.pool)
    except (ReviewError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{facts['picked']} of {facts['candidates']} candidate documents ({facts['strategy']}), "
          f"{facts['entities']} pre-annotated entities -> {facts['tasks']}; labeling config -> {facts['config']}")
    return 0
# --- end review --------------------------------------------------------------------------------



# --- report and show subcommands (extract/run_report.py, extract/show.py) ----------------------
def _add_report_show(sub) -> None:
    rp = sub.add_parser("report", help="write OUT/report.html (+ report.json): counts, confidence, throughput, drift")
    rp.add_argument("out", help="the job's output folder (local path or URI)")
    rp.add_argument("--reference", default=None, help="another output folder to measure drift against "
                    "(default: the model's dev data)")
    rp.add_argument("--out", dest="html_out", default=None, help="where to write the page (default OUT/report.html); "
                    "the numbers go beside it as .json")
    sp = sub.add_parser("show", help="write OUT/show.html: documents with their entities highlighted (displaCy)")
    sp.add_argument("out", help="the job's output folder (local path or URI)")
    pick = sp.add_mutually_exclusive_group()
    pick.add_argument("--ids", nargs="+", default=None, metavar="ID", help="these documents")
    pick.add_argument("--sample", type=int, default=None, metavar="N", help="N random ok documents (default 5)")
    sp.add_argument("--seed", type=int, default=0, help="random seed for --sample")
    sp.add_argument("--out", dest="html_out", default=None, help="where to write the page (default OUT/show.html)")


def _report_show(args) -> int:
    from extract.core.config import ConfigError

    try:
        if args.cmd == "report":
            from extract.monitor import run_report

            return run_report.main(args.out, args.reference, args.html_out)
        from extract.monitor import show

        return show.main(args.out, args.ids, args.sample, args.seed, args.html_out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
# --- end report and show -----------------------------------------------------------------------


# --- quality: precision / recall on reviewed samples (extract/quality.py) ----------------------
def _add_quality(sub) -> None:
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


def _quality(args) -> int:
    from extract.monitor import quality
    from extract.monitor.review import ReviewError

    try:
        return quality.main(args.out, args.export, args.history, args.predicted, args.strategy)
    except (quality.QualityError, ReviewError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
# --- end quality -------------------------------------------------------------------------------


# --- export-onnx: MODEL_DIR/model.onnx for inference.engine: onnx (extract/onnx_engine.py) -------
def _add_export_onnx(sub) -> None:
    e = sub.add_parser("export-onnx", help="write MODEL_DIR/model.onnx (fp32) for inference.engine: onnx")
    e.add_argument("model_dir", help="a local model directory (config.json, model.safetensors, tokenizer)")
    e.add_argument("--out", default=None, help="where to write the graph (default MODEL_DIR/model.onnx)")
    e.add_argument("--threads", type=int, default=0, help="torch threads for the export (0 = all cores)")


def _export_onnx(args) -> int:
    from extract.model.load import check_model_dir
    from extract.model.onnx import OnnxModelError, export_onnx

    try:
        check_model_dir(args.model_dir)
        facts = export_onnx(args.model_dir, args.out, threads=args.threads)
    except (FileNotFoundError, OnnxModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: exporting needs onnx and onnxscript ({exc}); install them with "
              "`pip install -e '.[train]'`.", file=sys.stderr)
        return 2
    print(f"wrote {facts['path']} (opset {facts['opset']}, weights sha256 {facts['weights_sha256'][:12]}..., "
          f"max |logit diff| vs torch {facts['max_abs_logit_diff']:.1e})")
    return 0
# --- end export-onnx ---------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
