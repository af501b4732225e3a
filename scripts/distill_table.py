"""Teacher vs single fine-tuned model vs student, measured in one run on this machine:
parameters, dev F1 (all types and PER/LOC/ORG), words/s on 2 cores, F1 retained.

    python scripts/distill_table.py --teacher runs/finetune_conll/best runs/teacher_s14/best runs/teacher_s15/best \
        --single runs/finetune_conll/best --student data/models/default --out runs/distill_table.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", nargs="+", required=True)
    ap.add_argument("--single", required=True)
    ap.add_argument("--student", required=True)
    ap.add_argument("--dev", default="../shared/data/conll2003/valid.txt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/distill_table.json")
    args = ap.parse_args()

    import torch

    from extract.model import load
    from extract.predict import DocProbs
    from training.conll import read_conll
    from training.evaluate import evaluate_loaded
    from training.teachers import Ensemble, TeacherConfig

    torch.set_num_threads(args.threads)
    docs = read_conll(args.dev)
    rows = []
    ens = Ensemble(TeacherConfig(models=tuple(args.teacher)), threads=args.threads)
    predict = lambda texts: [DocProbs(None, *x) for x in ens.label(texts, 64)]  # noqa: E731
    m, _ = evaluate_loaded(ens.hf[0], docs, "document", predict=predict)
    params = sum(sum(p.numel() for p in t.model.parameters()) for t in ens.hf)
    layers = sum(t.model.config.num_hidden_layers for t in ens.hf)
    rows.append((f"teacher: ensemble of {len(ens.hf)} fine-tuned models", params, layers, m))
    for name, path in (("single fine-tuned model", args.single), ("student (distilled)", args.student)):
        loaded = load(path, "cpu", "fp32", args.threads)
        m, _ = evaluate_loaded(loaded, docs, "document")
        rows.append((f"{name}: {path}", sum(p.numel() for p in loaded.model.parameters()),
                     loaded.model.config.num_hidden_layers, m))
    teacher_f1 = rows[0][3]["f1"]
    single_wps = rows[1][3]["words_per_second"]
    lines = ["| model | params | layers | dev F1 | dev F1 PER/LOC/ORG | words/s (2 cores) | cost per token vs single | F1 retained vs teacher |",
             "|---|---|---|---|---|---|---|---|"]
    for name, params, layers, m in rows:
        lines.append(f"| {name} | {params / 1e6:.1f}M | {layers} | {100 * m['f1']:.2f} | {100 * m['f1_plo']:.2f} | "
                     f"{m['words_per_second']:,.0f} | {single_wps / m['words_per_second']:.2f}x | {100 * m['f1'] / teacher_f1:.1f}% |")
    table = "\n".join(lines)
    print(table)
    Path(args.out).write_text(json.dumps({"table": table, "rows": [
        {"name": n, "params": p, "layers": l, "metrics": m} for n, p, l, m in rows]}, indent=2))


if __name__ == "__main__":
    main()
