"""`python -m training release`: make a trained model the released one. Calibrate a temperature and a
length-aware score map on dev (printing ECE by span length), store fp16 safetensors, re-evaluate the
stored weights on dev, write metrics.json and the model card, export model.onnx (fp32, for
inference.engine: onnx) and model.int8.onnx (dynamic int8, for inference.engine: onnx-int8).

    python -m training release --model runs/student_l3/best --out data/models/default --extra-file card.md
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def run(model_dir: str, out_dir: str = "data/models/default", dev: str = "../shared/data/conll2003/valid.txt",
        threads: int = 2, extra: str = "", settings: dict | None = None) -> dict:
    """``settings``: ner_settings to set on the released model (e.g. {"consistency": false})."""
    import torch

    from extract.model.load import load
    from training.calibrate import calibrate, length_markdown
    from training.checkpoint import save_model_dir
    from training.conll import read_conll
    from training.evaluate import evaluate_loaded
    from training.model_card import model_card

    torch.set_num_threads(threads)
    src = Path(model_dir)
    summary = json.loads((src.parent / "summary.json").read_text())
    docs = read_conll(dev)
    context = summary["config"]["data"]["context"]
    loaded = load(src, "cpu", "fp32", threads)
    cal = calibrate(loaded, docs, context)
    print(f"temperature {cal['temperature']}, score_map {cal['score_map']}: entity ECE {cal['ece_before']} -> "
          f"{cal['ece_after']} (2-fold cross-fitted {cal['ece_after_crossfit']}; T alone "
          f"{cal['ece_after_temperature_crossfit']})\n{length_markdown(cal['by_length'])}")

    model = loaded.model
    # A stale score_map from an earlier release must not outlive a fit that chose the plain product.
    kept = {k: v for k, v in model.config.ner_settings.items() if k != "score_map"}
    model.config.ner_settings = {**kept, **(settings or {}), "temperature": cal["temperature"],
                                 **({"score_map": cal["score_map"]} if cal["score_map"] else {})}
    model.half()  # fp16 on disk; extract.model.load upcasts to fp32 on CPU
    out = Path(out_dir)
    save_model_dir(model, loaded.tokenizer, out, {"training_config.yaml": (src / "training_config.yaml").read_text()})

    released = load(out, "cpu", "fp32", threads)
    metrics, _ = evaluate_loaded(released, docs, context)
    metrics["model"] = released.model_id
    (out / "metrics.json").write_text(json.dumps({"dev": metrics, "dev_file": dev, "calibration": cal}, indent=2))
    size = os.path.getsize(out / "model.safetensors") / 1e6
    n_params = sum(p.numel() for p in released.model.parameters())
    summary["best_dev"] = {**metrics, "step": summary["best_dev"].get("step")}
    speed = {"text": (
        f"{metrics['words_per_second']:,.0f} words/s evaluating CoNLL dev ({metrics['words']:,} words, documents "
        f"as windows of {released.settings['max_length']} wordpieces, batch 64, fp32 compute) on {threads} CPU "
        f"threads of this project's 2-core machine. {n_params / 1e6:.1f}M parameters, {size:.1f} MB fp16 safetensors.")}
    (out / "README.md").write_text(model_card(out, summary, speed, extra, calibration=cal), encoding="utf-8")
    # After the safetensors are final: the graph records their sha256 (a stale model.onnx is refused).
    from extract.model.export import export_int8, export_onnx

    onnx = export_onnx(out, threads=threads)
    int8 = export_int8(out, threads=threads)  # inference.engine: onnx-int8, checked against torch
    print(f"wrote {int8['path']} (dynamic int8; {int8['relative_diff']:.1%} of the largest logit vs torch)")
    print(f"wrote {onnx['path']} (max |logit diff| vs torch fp32 {onnx['max_abs_logit_diff']:.1e}); compare dev "
          f"scores with `python scripts/onnx_check.py --model {out}`")
    print(json.dumps({"f1": metrics["f1"], "f1_plo": metrics["f1_plo"], "words_per_second": metrics["words_per_second"],
                      "mb": round(size, 1), "params": n_params}))
    for t, m in sorted(metrics["per_type"].items()):
        print(f"  {t:5s} P {m['precision']:.4f} R {m['recall']:.4f} F1 {m['f1']:.4f} support {m['support']}")

    return metrics
