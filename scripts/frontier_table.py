"""Teachers and students measured in one run on this machine: parameters, layers, dev F1 (all
types, PER/LOC/ORG together and each), words/s evaluating CoNLL dev on 2 threads, F1 retained
against the first row (the teacher). Printed as a markdown table and saved as JSON.

A row is NAME=PATH[+PATH...]; several paths make an ensemble (word probabilities averaged, as
`training label` does), e.g.

    python scripts/frontier_table.py \
        --row "teacher: MPNet 12 layers=runs/teacher_mpnet/best" \
        --row "teacher + v0.1 student=runs/teacher_mpnet/best+data/models/default" \
        --row "student 2 layers=runs/student_l2/best" --row "student 3 layers=runs/student_l3/best" \
        --out runs/frontier_table.json

``--variants lower,upper,chat`` also scores every row on those variants of dev (every token
lowercased / UPPERCASED, or chat-like: lowercased without punctuation; training/conll.py), one
column each: the case table.

Speed is the dev evaluation's own words/s (tokenise, windows, forward, decode; batches of 64
windows, fp32 torch), rows run one after another in one process: compare rows of one run only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_row(text: str) -> tuple[str, list[str]]:
    name, sep, paths = text.rpartition("=")
    if not sep or not name or not paths:
        raise SystemExit(f"--row: expected NAME=PATH[+PATH...], found {text!r}")
    return name, paths.split("+")


def measure(paths: list[str], docs, threads: int) -> tuple[dict, int, int]:
    """Dev metrics, parameters and layers (summed over an ensemble's members)."""
    from extract.model.load import load
    from extract.text.spans import DocProbs
    from training.evaluate import evaluate_loaded
    from training.teachers import Ensemble, TeacherConfig

    if len(paths) == 1:
        loaded = load(paths[0], "cpu", "fp32", threads)
        members = [loaded]
        m, _ = evaluate_loaded(loaded, docs, "document")
    else:
        ens = Ensemble(TeacherConfig(models=tuple(paths)), threads=threads)
        members = ens.hf
        predict = lambda texts: [DocProbs(None, *x) for x in ens.label(texts, 64)]  # noqa: E731
        m, _ = evaluate_loaded(ens.hf[0], docs, "document", predict=predict)
    params = sum(sum(p.numel() for p in t.model.parameters()) for t in members)
    layers = sum(t.model.config.num_hidden_layers for t in members)
    return m, params, layers


def table(rows: list[dict]) -> str:
    ref = rows[0]["metrics"]["f1"]
    variants = list(rows[0].get("variants", {}))
    lines = ["| model | params | layers | dev F1 | " + "".join(f"{v} | " for v in variants)
             + "PER/LOC/ORG | PER | LOC | ORG | MISC | words/s (2 threads) | F1 retained vs first row |",
             "|---|---|---|---|" + "---|" * len(variants) + "---|---|---|---|---|---|---|"]
    for r in rows:
        m, t = r["metrics"], r["metrics"]["per_type"]
        per = " | ".join(f"{100 * t[k]['f1']:.2f}" for k in ("PER", "LOC", "ORG", "MISC"))
        var = "".join(f"{100 * r['variants'][v]:.2f} | " for v in variants)
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['layers']} | {100 * m['f1']:.2f} | {var}"
                     f"{100 * m['f1_plo']:.2f} | {per} | {m['words_per_second']:,.0f} | {100 * m['f1'] / ref:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", required=True, help="NAME=PATH[+PATH...]; the first row is the reference")
    ap.add_argument("--dev", default="../shared/data/conll2003/valid.txt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/frontier_table.json")
    ap.add_argument("--variants", default="", help="comma-separated of lower,upper,title,chat: dev F1 on each too")
    args = ap.parse_args()

    import tempfile

    import torch

    from training.conll import read_conll, variant_lines

    torch.set_num_threads(args.threads)
    docs = read_conll(args.dev)
    lines = Path(args.dev).read_text(encoding="utf-8").splitlines()
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in filter(None, args.variants.split(",")):
            path = Path(tmp, f"dev.{v}.txt")
            path.write_text("\n".join(variant_lines(lines, v)) + "\n", encoding="utf-8")
            variants[v] = read_conll(path)
    rows = []
    for name, paths in map(parse_row, args.row):
        m, params, layers = measure(paths, docs, args.threads)
        var = {v: measure(paths, vdocs, args.threads)[0]["f1"] for v, vdocs in variants.items()}
        rows.append({"name": name, "paths": paths, "params": params, "layers": layers, "metrics": m, "variants": var})
        print(f"{name}: dev F1 {100 * m['f1']:.2f} " + " ".join(f"{v} {100 * f:.2f}" for v, f in var.items())
              + f", {m['words_per_second']:,.0f} words/s", flush=True)
    text = table(rows)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"table": text, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
