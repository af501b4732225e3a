"""torch fp32 against ONNX Runtime on CoNLL dev for a real model dir: same entities? same F1? faster?

    python scripts/onnx_check.py                                   # data/models/default, whole dev set
    python scripts/onnx_check.py --model runs/x/best --int8        # + ONNX Runtime dynamic int8
    python scripts/onnx_check.py --limit-docs 5                    # smoke run

Both engines get the same windows (extract.model.predict.window_text, no funnel, as evaluation runs) and
the same batching; only the forward pass differs. Printed as a markdown table: dev F1 (seqeval
strict IOB2, as training/evaluate.py), words/s of the forward pass + decode, entities that differ
from torch's (on CoNLL words), max |logit diff| against torch.

A model dir whose model.onnx matches its weights is used as it is (read only). Otherwise the graph
is exported into a temporary copy of the dir, removed at the end: the script writes into a folder
it did not create only with --in-place (which exports MODEL/model.onnx there).

--int8: ONNX Runtime dynamic quantisation (int8 per-channel weights of the MatMuls; embeddings stay
fp32 as Gather is not quantised) of that graph. On these AVX2 cores without VNNI it
bought 2-4% speed for ~1 F1 point on the 6-layer model: the table shows this model's cost.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def onnx_model_dir(model: Path, in_place: bool, tmp: Path, threads: int) -> Path:
    """A dir with ``model``'s files and a model.onnx that matches its weights."""
    from extract.model.export import export_onnx
    from extract.model.onnx import OnnxModelError, check_onnx

    try:
        check_onnx(model)
        return model
    except OnnxModelError as exc:
        print(f"{exc.__class__.__name__}: {exc}\n-> exporting {'in place' if in_place else 'into a temporary copy'}",
              flush=True)
    target = model if in_place else tmp / model.resolve().name
    if not in_place:
        shutil.copytree(model, target, ignore=shutil.ignore_patterns("model.onnx", "*.onnx"))
    export_onnx(target, threads=threads)
    return target


def quantize_int8(src: Path, dest: Path) -> Path:
    from extract.model.onnx import quantize_int8 as quantize  # the engine's own (inference.engine: onnx-int8)

    quantize(src, dest)
    return dest


def trained_context(model: Path) -> str:
    """The unit the model was trained and released on (`python -m training release` reads the same key)."""
    import yaml

    cfg = model / "training_config.yaml"
    data = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("data", {}) if cfg.is_file() else {}
    return data.get("context") or "document"


def run_engine(loaded, docs, context: str, batch_size: int) -> dict:
    """training.evaluate's own prediction and scoring path, keeping the window logits for the diff."""
    from extract.model.predict import forward_docs, window_text
    from extract.text.spans import combine
    from training.evaluate import predict_conll

    s, logits = loaded.settings, []

    def predict(texts):
        wins = [window_text(t, loaded.tokenizer, int(s["max_length"]), int(s["stride"])) for t in texts]
        per_doc = forward_docs(loaded, wins, batch_size)
        logits.extend(x for doc in per_doc for x in doc)
        return [combine(w, lg, len(loaded.labels), float(s.get("temperature", 1.0))) for w, lg in zip(wins, per_doc)]

    y_true, y_pred, words, seconds = predict_conll(loaded, docs, context, batch_size, predict)
    return {"y_true": y_true, "y_pred": y_pred, "logits": logits, "words": words, "seconds": seconds}


def entity_set(y_pred) -> set:
    from seqeval.metrics.sequence_labeling import get_entities

    return {(i, *e) for i, seq in enumerate(y_pred) for e in get_entities(seq)}


def table(results: dict[str, dict], words: int) -> str:
    import numpy as np

    from training.evaluate import scores

    ref = results["torch fp32"]
    ref_ents = entity_set(ref["y_pred"])
    lines = ["| engine | dev F1 | F1 PER/LOC/ORG | words/s | entities differing from torch | max abs logit diff |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        m = scores(r["y_true"], r["y_pred"])
        ents = entity_set(r["y_pred"])
        diff = max((float(np.abs(a - b).max()) for a, b in zip(r["logits"], ref["logits"]) if len(a)), default=0.0)
        lines.append(f"| {name} | {100 * m['f1']:.2f} | {100 * m['f1_plo']:.2f} | {words / r['seconds']:,.0f} | "
                     f"{len(ents ^ ref_ents)} of {len(ref_ents)} | {diff:.2e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "default"))
    ap.add_argument("--dev", default=str(ROOT.parent / "shared" / "data" / "conll2003" / "valid.txt"))
    ap.add_argument("--context", default=None, choices=["document", "sentence"],
                    help="what one text is (default: data.context of MODEL/training_config.yaml, else document)")
    ap.add_argument("--limit-docs", type=int, default=0, help="only the first N dev documents (0 = all)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads and ONNX Runtime intra-op threads")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--int8", action="store_true", help="also ONNX Runtime dynamic int8 (per-channel)")
    ap.add_argument("--in-place", action="store_true", help="export MODEL/model.onnx if missing or stale")
    args = ap.parse_args()

    import torch

    from extract.model.load import load
    from extract.model.onnx import ONNX_FILE, open_session

    torch.set_num_threads(args.threads)
    args.context = args.context or trained_context(Path(args.model))
    from training.conll import read_conll

    docs = read_conll(Path(args.dev))[:args.limit_docs or None]
    with tempfile.TemporaryDirectory(prefix="onnx_check_") as tmp:
        model = onnx_model_dir(Path(args.model), args.in_place, Path(tmp), args.threads)
        pt = load(model, "cpu", "fp32", args.threads)
        ox = load(model, "cpu", "fp32", args.threads, engine="onnx")
        engines = {"torch fp32": pt, "onnx fp32": ox}
        if args.int8:
            q = quantize_int8(model / ONNX_FILE, Path(tmp) / "model.int8.onnx")
            engines["onnx int8 (dynamic, per-channel)"] = dataclasses.replace(ox, session=open_session(q, args.threads))
        for loaded in engines.values():  # warm-up outside the timing: first runs allocate
            run_engine(loaded, docs[:1], args.context, args.batch_size)
        results = {name: run_engine(loaded, docs, args.context, args.batch_size) for name, loaded in engines.items()}
    words = results["torch fp32"]["words"]
    print(f"\n{Path(args.model)}: {len(docs):,} documents of {args.dev} ({words:,} words, as {args.context}s), "
          f"{args.threads} threads, batch {args.batch_size}, load average {os.getloadavg()[0]:.2f}; one run each\n")
    print(table(results, words))


if __name__ == "__main__":
    main()
