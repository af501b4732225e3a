"""The loss: cross-entropy on gold targets plus temperature-scaled KL to a teacher on silver.

Fine-tuning is the special case with no soft targets; distillation is this function with both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def token_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None,
               soft_mask: torch.Tensor | None = None, temperature: float = 1.0,
               gold_weight: float = 1.0, silver_weight: float = 1.0) -> torch.Tensor:
    """logits (B, T, L); labels (B, T) with IGNORE; soft (B, T, L) probs valid where soft_mask (B, T).

    KL(teacher || student) at temperature T is multiplied by T^2 (Hinton et al.) so its gradient
    scale does not shrink as T grows; each part is a mean over its own positions.
    """
    total = logits.new_zeros(())
    gold = labels != IGNORE
    if gold.any():
        total = total + gold_weight * F.cross_entropy(logits[gold].float(), labels[gold])
    if soft is not None and soft_mask is not None and soft_mask.any():
        student = F.log_softmax(logits[soft_mask].float() / temperature, dim=-1)
        teacher = soft[soft_mask].float()
        if temperature != 1.0:
            # Teacher probabilities were stored at T=1; re-temper them in log space.
            teacher = F.softmax(torch.log(teacher.clamp_min(1e-8)) / temperature, dim=-1)
        kl = F.kl_div(student, teacher, reduction="batchmean")
        total = total + silver_weight * kl * temperature ** 2
    return total
