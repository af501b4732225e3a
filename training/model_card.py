"""A short model card written next to the weights: data, config, dev scores, speed."""
from __future__ import annotations

import json
from pathlib import Path


def _fmt(x) -> str:
    return f"{100 * x:.2f}" if isinstance(x, float) else str(x)


def calibration_section(cal: dict) -> list[str]:
    """What calibrate() fitted and measured on dev: temperature, score map, ECE overall and by span
    length (the product score's weak spot), so a user knows what a score of 0.9 means."""
    from training.calibrate import length_markdown

    rule = ("score = sigmoid(a + b logit(product) + c ln(words)) with "
            f"`score_map` {cal['score_map']}" if cal.get("score_map") else
            "score = the product (a length-aware `score_map` did not lower the cross-fitted log loss)")
    lines = [
        "## Calibration", "",
        f"An entity's score is read as the chance it is exactly right. product = the product of its words' "
        f"chosen tag probabilities at temperature {cal['temperature']}; {rule}. Fitted on dev to the "
        "entity scores' log loss and stored in config.json `ner_settings`, which the batch job applies. "
        "Expected calibration "
        f"error (10 bins) of {cal['entities']:,} predicted dev entities ({100 * cal['accuracy']:.1f}% exactly "
        f"right): {cal['ece_before']} for the T=1 product -> {cal['ece_after']} in-sample, "
        f"{cal['ece_after_crossfit']} 2-fold cross-fitted on dev halves.", ""]
    if cal.get("by_length"):
        lines += ["By span length in words (before: the T=1 product):", "", length_markdown(cal["by_length"]), ""]
    return lines


def model_card(model_dir: Path, summary: dict, speed: dict | None = None, extra: str = "",
               calibration: dict | None = None) -> str:
    cfg = summary["config"]
    best = summary["best_dev"]
    cfg_json = json.loads((model_dir / "config.json").read_text())
    rows = "\n".join(f"| {t} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {_fmt(m['f1'])} | {m['support']} |"
                     for t, m in sorted(best["per_type"].items()))
    lines = [
        "---", "license: apache-2.0", "library_name: transformers", "pipeline_tag: token-classification",
        "tags: [ner, conll2003, minilm]", "---", "",
        f"# {model_dir.name}: named-entity tagger (PER, LOC, ORG, MISC)", "",
        f"A {cfg_json.get('num_hidden_layers')}-layer, hidden-{cfg_json.get('hidden_size')} BERT "
        f"(backbone `{cfg['model']['backbone']}`, all-MiniLM-L6-v2, uncased) "
        + ("distilled from a teacher for token classification (gold cross-entropy + KL to the teacher on "
           "silver data; layers " + str(cfg['model']['layers']) + " of `"
           + str((cfg.get('distill') or {}).get('init_from')) + "`)."
           if cfg['data']['silver'] else "fine-tuned for token classification.")
        + " Casing is given back to the uncased model as a per-wordpiece shape id "
        "(other/lower/Title/UPPER/digit/mixed) through a widened token-type embedding; pass it as "
        "`token_type_ids` (extract.windows.encode computes it). Settings the batch job uses sit in "
        f"config.json under `ner_settings`: `{json.dumps(cfg_json.get('ner_settings'))}`.", "",
        "## Data", "",
        f"- train: `{cfg['data']['train']}` (CoNLL-2003 English train, IOB2), "
        f"context `{cfg['data']['context']}` (windows may span sentences of one document)",
        f"- dev: `{cfg['data']['dev']}` (CoNLL-2003 valid); no test data was used for anything",
        f"- silver: {cfg['data']['silver'] or 'none'}", "",
        "## Training", "",
        f"lr {cfg['optim']['lr']}, batch {cfg['optim']['batch_size']}, epochs {cfg['optim']['epochs']}, "
        f"warm-up {cfg['optim']['warmup']}, schedule {cfg['optim']['schedule']}, max length "
        f"{cfg['model']['max_length']}, stride {cfg['model']['stride']}, seed {cfg['run']['seed']}; "
        f"{summary['steps']} steps in {summary['train_seconds'] / 60:.1f} min; best checkpoint at step "
        f"{best.get('step')}. Full resolved config: training_config.yaml.", "",
        "## Dev scores (seqeval, strict, IOB2)", "",
        f"- all four types: P {_fmt(best['precision'])} R {_fmt(best['recall'])} **F1 {_fmt(best['f1'])}**",
        f"- PER/LOC/ORG (MISC -> O on both sides): F1 {_fmt(best['f1_plo'])}", "",
        "| type | precision | recall | F1 | support |", "|---|---|---|---|---|", rows, "",
    ]
    if speed:
        lines += ["## Speed", "", speed.get("text", ""), ""]
    if calibration:
        lines += calibration_section(calibration)
    if extra:
        lines += [extra, ""]
    lines += ["## Licence", "", "Weights: Apache-2.0 (as the backbone). Trained on CoNLL-2003, whose "
              "text is Reuters RCV1 (research use)."]
    return "\n".join(lines) + "\n"
