"""CLI: python -m training <command> ... (= nerbatch-train). A table of commands: each has a parser
builder and a run function returning the exit code; errors of input are exit 2 with one line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path




def _add_config_command(name: str, helptext: str):
    def add(sub) -> None:
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--config", required=True)
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return add


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="seqeval on a CoNLL-format file")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--out", default=None, help="folder for metrics.json, report.md, report.png")
    e.add_argument("--label-map", default="", help="rename types on both sides, e.g. PERSON=PER,GPE=LOC,MISC=O")
    e.add_argument("--context", choices=["document", "sentence"], default="document")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--device", default="cpu")
    e.add_argument("--threads", type=int, default=0)
    e.add_argument("--engine", default="torch", choices=["torch", "onnx", "onnx-int8"],
                   help="the forward pass: torch, or ONNX Runtime from MODEL/model.onnx / model.int8.onnx")
    e.add_argument("--consistency", choices=["model", "on", "off"], default="model",
                   help="document-level type consistency (extract/text/consistency.py): the model's setting, or forced")
    e.add_argument("--funnel", default=None,
                   help="evaluate with the batch job's pre-filter rule, e.g. capitalised-or-caseless")


def _add_corrections(sub) -> None:
    c = sub.add_parser("corrections", help="Label Studio JSON export -> corrections JSONL for data.corrections")
    c.add_argument("export", help="Label Studio JSON export (a list of tasks with annotations)")
    c.add_argument("--out", required=True, help="corrections file to write (JSON lines: text, spans)")
    target = c.add_mutually_exclusive_group()
    target.add_argument("--model", default=None, metavar="DIR",
                        help="the model the corrections will train: its config.json id2label gives the entity types")
    target.add_argument("--labels", default=None, metavar="PER,LOC,...",
                        help="the entity types spans may have (default: PER,LOC,ORG,MISC); "
                             "others are dropped and counted")


def _add_release(sub) -> None:
    r = sub.add_parser("release", help="calibrate, store fp16 with its model card and ONNX graphs: the released model")
    r.add_argument("--model", required=True, help="trained model dir (runs/<name>/best)")
    r.add_argument("--out", default="data/models/default")
    r.add_argument("--dev", default="../shared/data/conll2003/valid.txt")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--extra-file", default="", help="markdown appended to the model card (tables measured elsewhere)")
    r.add_argument("--consistency", choices=["on", "off"], default="off",
                   help="ner_settings.consistency of the released model (document-level type consistency)")


def _release(args) -> int:
    from training.release import run

    extra = Path(args.extra_file).read_text(encoding="utf-8") if args.extra_file else ""
    run(args.model, args.out, args.dev, args.threads, extra, {"consistency": args.consistency == "on"})
    return 0


def _corrections(args) -> int:
    from training.corrections import convert, model_types, parse_labels

    try:
        if args.model:
            labels, where = model_types(args.model), f"--model {args.model} (config.json id2label)"
        elif args.labels is not None:
            labels, where = parse_labels(args.labels), "--labels"
        else:
            labels, where = None, ""
        facts = convert(args.export, args.out, labels, where)
    except (OSError, ValueError) as exc:  # ValueError: ExportError, bad --labels or --model
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(json.dumps(facts))
    if facts["dropped_spans"]:
        print(f"note: dropped {facts['dropped_spans']} spans: {json.dumps(facts['dropped'])}"
              + (f"; unknown labels {json.dumps(facts['unknown_labels'])}"
                 if facts["unknown_labels"] else "")
              + f" (labels: {', '.join(facts['labels'])}, {facts['labels_from']})", file=sys.stderr)
    return 0


def _label_map(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in part:
            raise ValueError(f"--label-map expects TYPE=NEW pairs like PERSON=PER, found '{part}'.")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _evaluate(args) -> int:
    from extract.model.load import load
    from training.conll import read_conll
    from training.evaluate import evaluate_loaded, write_report

    loaded = load(args.model, device=args.device, threads=args.threads, engine=args.engine)
    if args.consistency != "model":
        loaded.settings["consistency"] = args.consistency == "on"
    docs = read_conll(args.data)
    metrics, table = evaluate_loaded(loaded, docs, args.context, args.batch_size, _label_map(args.label_map),
                                     funnel=args.funnel)
    metrics.update({"model": loaded.model_id, "data": str(args.data), "context": args.context})
    out = Path(args.out) if args.out else Path(args.model) / "eval"
    write_report(metrics, table, out, f"{Path(args.model).name} on {Path(args.data).name}")
    print(json.dumps({k: metrics[k] for k in ("f1", "precision", "recall", "f1_plo", "words_per_second")}))
    for t, m in sorted(metrics["per_type"].items()):
        print(f"  {t:5s} P {m['precision']:.4f} R {m['recall']:.4f} F1 {m['f1']:.4f} support {m['support']}")
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}, {out / 'report.png'}")
    return 0


def _label(args) -> int:
    from extract.core.config import load
    from training.label import LabelConfig, run

    command = " ".join(["python -m training label --config", args.config, *(f"--set {x}" for x in args.set)])
    run(load(LabelConfig, args.config, args.set), command=command)
    return 0


def _train(args) -> int:
    """finetune and distill: one loop (training/finetune.py); distill needs a `distill:` section."""
    from extract.core.config import ConfigError, load
    from training.config import TrainConfig
    from training.finetune import run

    cfg = load(TrainConfig, args.config, args.set)
    if args.cmd == "distill" and cfg.distill is None:
        raise ConfigError(f"{args.config}: distill needs a `distill:` section (temperature, weights).")
    run(cfg)
    return 0


COMMANDS = {  # name -> (add its parser, run it)
    "finetune": (_add_config_command("finetune", "fine-tune on gold CoNLL data"), _train),
    "distill": (_add_config_command("distill", "train a student on gold + silver data"), _train),
    "label": (_add_config_command("label", "label a raw corpus with a teacher (silver data)"), _label),
    "evaluate": (_add_evaluate, _evaluate),
    "corrections": (_add_corrections, _corrections),
    "release": (_add_release, _release),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training")
    sub = p.add_subparsers(dest="cmd", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from extract.core.config import ConfigError

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd][1](args)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
