"""`python -m training finetune|distill`: build data and model, run the loop, write the model dir.

Distillation is this same function with silver data and a distill section in the config.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from extract.core.config import dump_yaml, to_dict
from extract.text.labels import bio_labels
from extract.model.load import Loaded, resolve_device
from training import modeling
from training.checkpoint import save_model_dir
from training.conll import conll_dataset, conll_documents, read_conll
from training.config import TrainConfig
from training.datasets_io import Examples
from training.evaluate import evaluate_loaded
from training.augment import CaseAugment
from training.examples import gold_examples, silver_examples
from training.fit import fit
from training.model_card import model_card


def run(cfg: TrainConfig) -> dict:
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    device = resolve_device(cfg.run.device)
    out = Path(cfg.run.output)
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, out / "config.yaml")
    labels = bio_labels(cfg.data.types)
    model, tokenizer = modeling.build(cfg, labels)
    label2id = {l: i for i, l in enumerate(labels)}
    t0 = time.time()
    train_docs, dev_docs = conll_documents(conll_dataset(cfg.data.train)), read_conll(cfg.data.dev)
    augment = CaseAugment(cfg.data.case_augment, tuple(cfg.data.case_augment_modes), cfg.run.seed)
    train = Examples(gold_examples(train_docs, tokenizer, label2id, cfg.data.types, cfg.data.context,
                                   cfg.model.max_length, cfg.model.stride, augment))
    n_gold = len(train)
    if cfg.data.silver:  # Arrow via `datasets`: seeded sample, windows cached by fingerprint
        from training.datasets_io import silver_windows

        train += silver_windows(cfg.data.silver, labels, tokenizer, cfg.model.max_length, cfg.model.stride,
                                cfg.model.casing, cfg.data.silver_max_docs, cfg.run.seed,
                                cfg.data.cache_dir or str(out / "cache" / "datasets"), augment=augment,
                                data_root=cfg.data.silver_root)
    job_facts = {}
    if cfg.data.silver_jobs:  # a batch job's predictions (entity scores on their tags) as silver
        from training.job_silver import read_job_silver

        texts, starts, probs, job_facts = read_job_silver(cfg.data.silver_jobs, labels, tokenizer,
                                                          cfg.data.silver_jobs_min_score, cfg.data.silver_max_docs)
        n_before = len(train)
        train += silver_examples(texts, starts, probs, tokenizer, cfg.model.max_length, cfg.model.stride, augment)
        job_facts["windows"] = len(train) - n_before
        print(f"{job_facts['docs']} job documents, {job_facts['entities']} entities (score >= "
              f"{cfg.data.silver_jobs_min_score}; {job_facts['entities_below_min_score']} below) -> "
              f"{job_facts['windows']} silver windows from {len(cfg.data.silver_jobs)} job(s)", flush=True)
    n_corr_docs = n_corr = 0
    if cfg.data.corrections:  # human-corrected documents (Label Studio): gold windows, repeated by weight
        from training.corrections import correction_examples, read_corrections

        records = read_corrections(cfg.data.corrections)
        corr = correction_examples(records, tokenizer, label2id, cfg.data.types, cfg.model.max_length,
                                   cfg.model.stride, cfg.data.corrections_weight, cfg.run.seed, augment)
        n_corr_docs, n_corr = len(records), len(corr)
        train += corr
        print(f"{n_corr_docs} corrected documents -> {n_corr} correction windows "
              f"(weight {cfg.data.corrections_weight})", flush=True)
    print(f"{n_gold} gold and {len(train) - n_gold - n_corr} silver windows of <= {cfg.model.max_length} wordpieces "
          f"({time.time() - t0:.1f}s); {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters "
          f"on {device}", flush=True)

    def evaluate(m) -> dict:
        loaded = Loaded(m, tokenizer, labels, dict(m.config.ner_settings), device, torch.float32, "training")
        metrics, _ = evaluate_loaded(loaded, dev_docs, cfg.data.context, cfg.run.eval_batch_size)
        return metrics

    def save_best(m, metrics: dict) -> None:
        files = {"metrics.json": json.dumps({"dev": metrics, "dev_file": cfg.data.dev}, indent=2),
                 "training_config.yaml": (out / "config.yaml").read_text()}
        save_model_dir(m, tokenizer, out / "best", files)

    result = fit(model, tokenizer, train, evaluate, save_best, cfg, device)
    summary = {"best_dev": result["best"], "history": result["history"], "steps": result["steps"],
               "train_seconds": result["train_seconds"], "gold_windows": n_gold,
               "silver_windows": len(train) - n_gold - n_corr, "correction_docs": n_corr_docs,
               "correction_windows": n_corr, "job_silver_docs": job_facts.get("docs", 0),
               "job_silver_entities": job_facts.get("entities", 0),
               "job_silver_windows": job_facts.get("windows", 0), "job_silver": job_facts, "config": to_dict(cfg)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if (out / "best").is_dir():
        (out / "best" / "README.md").write_text(model_card(out / "best", summary), encoding="utf-8")
    print(f"best dev f1 {result['best']['f1']:.4f} -> {out / 'best'}", flush=True)
    return summary
