"""The one training loop: fine-tuning and distillation both run here.

Length-grouped batches (far less padding, so a much shorter epoch), AdamW with
linear warm-up/decay, evaluation every ``eval_every`` steps and at each epoch end, the best model
kept, and a checkpoint after every evaluation that ``run.resume`` continues from.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from safetensors.torch import load_file, save_file

from extract.model.batch import batch_tensors
from training.checkpoint import load_optimizer, save_optimizer, save_state
from training.config import TrainConfig
from training.examples import Example
from training.losses import IGNORE, token_loss


def batches_for_epoch(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffle, sort by length inside chunks of 50 batches, shuffle the batches: little padding."""
    rng = np.random.default_rng(seed * 1000 + epoch)
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    out: list[list[int]] = []
    for c in range(0, len(order), chunk):
        part = sorted(order[c:c + chunk].tolist(), key=lambda i: lengths[i])
        out += [part[b:b + batch_size] for b in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def collate(examples: list[Example], cls_id: int, sep_id: int, pad_id: int, n_labels: int) -> dict:
    """The inference layout (extract/model/batch.py: [CLS] ids [SEP], padded, casing ids as
    token_type_ids) as torch tensors, with the gold labels and the teacher's soft targets beside."""
    arrays = batch_tensors([(e.ids, e.casing) for e in examples], cls_id, sep_id, pad_id)
    b, width = arrays["input_ids"].shape
    labels = torch.full((b, width), IGNORE, dtype=torch.long)
    has_soft = any(e.soft is not None for e in examples)
    soft = torch.zeros((b, width, n_labels)) if has_soft else None
    soft_mask = torch.zeros((b, width), dtype=torch.bool) if has_soft else None
    for i, e in enumerate(examples):
        n = len(e.ids)
        labels[i, 1:n + 1] = torch.from_numpy(e.labels)
        if e.soft is not None:
            soft[i, 1:n + 1] = torch.from_numpy(e.soft)
            soft_mask[i, 1:n + 1] = torch.from_numpy(e.soft_mask)
    return {**{k: torch.from_numpy(v) for k, v in arrays.items()},
            "labels": labels, "soft": soft, "soft_mask": soft_mask}


def _optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.optim.lr)


def lr_factor(step: int, total: int, warmup: float, schedule: str) -> float:
    warm = max(1, int(total * warmup))
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warm))


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def fit(model, tokenizer, train: list[Example], evaluate: Callable[[object], dict],
        save_best: Callable[[object, dict], None], cfg: TrainConfig, device: str) -> dict:
    """Train ``model`` in place; returns the best dev metrics. Writes under ``cfg.run.output``."""
    out = Path(cfg.run.output)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    torch.manual_seed(cfg.run.seed)
    model.to(device)
    optimizer = _optimizer(model, cfg)
    lengths = [len(e.ids) for e in train]
    per_epoch = math.ceil(len(train) / cfg.optim.batch_size)
    total = cfg.optim.max_steps or math.ceil(per_epoch * cfg.optim.epochs)
    n_labels = model.config.num_labels
    dist = cfg.distill
    step, best, history = 0, {"f1": -1.0}, []
    if cfg.run.resume and (ckpt / "state.json").is_file():
        step, best, history = _resume(model, optimizer, ckpt, device)
        print(f"resumed from {ckpt} at step {step} (best dev f1 {best.get('f1', -1):.4f})", flush=True)
    autocast = device == "cuda" and cfg.run.bf16
    log = open(out / "train_log.jsonl", "a", encoding="utf-8")
    t0, start_step, running = time.time(), step, []
    model.train()
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        for idx in batches_for_epoch(lengths, cfg.optim.batch_size, cfg.run.seed, epoch)[in_epoch:]:
            if step >= total:
                break
            batch = collate([train[i] for i in idx], tokenizer.cls_token_id, tokenizer.sep_token_id,
                            tokenizer.pad_token_id, n_labels)
            batch = {k: (v.to(device) if v is not None else None) for k, v in batch.items()}
            for g in optimizer.param_groups:
                g["lr"] = cfg.optim.lr * lr_factor(step, total, cfg.optim.warmup, cfg.optim.schedule)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                               attention_mask=batch["attention_mask"]).logits
            loss = token_loss(logits, batch["labels"], batch["soft"], batch["soft_mask"],
                              dist.temperature if dist else 1.0, dist.gold_weight if dist else 1.0,
                              dist.silver_weight if dist else 1.0)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower optim.lr.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            step += 1
            running.append(loss.item())
            end_of_epoch = step % per_epoch == 0
            if step % cfg.run.log_every == 0 or step == total:
                rate = (time.time() - t0) / max(1, step - start_step)
                rec = {"step": step, "epoch": round(step / per_epoch, 3), "loss": round(float(np.mean(running)), 5),
                       "lr": optimizer.param_groups[0]["lr"], "elapsed": round(time.time() - t0, 1)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(f"step {step}/{total} epoch {rec['epoch']:.2f} loss {rec['loss']:.4f} "
                      f"lr {rec['lr']:.2e} elapsed {_fmt_time(rec['elapsed'])} "
                      f"eta {_fmt_time(rate * (total - step))}", flush=True)
                running = []
            if step % cfg.run.eval_every == 0 or end_of_epoch or step == total:
                model.eval()
                metrics = evaluate(model)
                model.train()
                metrics = {"step": step, "epoch": round(step / per_epoch, 3), **metrics}
                history.append({k: metrics[k] for k in ("step", "epoch", "f1", "f1_plo")})
                log.write(json.dumps({"eval": history[-1]}) + "\n")
                log.flush()
                improved = metrics["f1"] > best["f1"]
                if improved:
                    best = metrics
                    save_best(model, metrics)
                print(f"eval step {step}: dev f1 {metrics['f1']:.4f} (PER/LOC/ORG {metrics['f1_plo']:.4f})"
                      f"{' *best*' if improved else ''}", file=sys.stderr, flush=True)
                _checkpoint(model, tokenizer, optimizer, ckpt, step, best, history)
    log.close()
    return {"best": best, "history": history, "steps": step, "train_seconds": round(time.time() - t0, 1)}


def _checkpoint(model, tokenizer, optimizer, ckpt: Path, step: int, best: dict, history: list) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    save_optimizer(optimizer, tmp / "optimizer.safetensors")
    # The RNG state too, so dropout after a resume draws what an uninterrupted run would.
    save_file({"cpu": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    save_state(tmp / "state.json", {"step": step, "best": best, "history": history})
    shutil.rmtree(ckpt, ignore_errors=True)
    tmp.rename(ckpt)


def _resume(model, optimizer, ckpt: Path, device: str) -> tuple[int, dict, list]:
    weights = load_file(str(ckpt / "model.safetensors"), device=device)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m and "token_type_ids" not in m]:
        raise ValueError(f"{ckpt} does not match this model (missing {missing[:3]}, unexpected {unexpected[:3]}).")
    load_optimizer(optimizer, ckpt / "optimizer.safetensors")
    if (ckpt / "rng.safetensors").is_file():
        torch.set_rng_state(load_file(str(ckpt / "rng.safetensors"))["cpu"])
    state = json.loads((ckpt / "state.json").read_text())
    return int(state["step"]), state["best"], state["history"]
