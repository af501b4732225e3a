"""Windows of wordpieces -> the model's input arrays, and which windows go in one batch.

One layout for every caller (both inference engines, the ONNX export check, training's collate):
[CLS] window [SEP], padded to the longest window in the batch, casing ids as ``token_type_ids``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def batch_tensors(pieces: Sequence[tuple[np.ndarray, np.ndarray]], cls_id: int, sep_id: int,
                  pad_id: int, use_casing: bool = True) -> dict[str, np.ndarray]:
    """[CLS] window [SEP] + padding to the longest in the batch (dynamic padding); int64 arrays."""
    width = max(len(ids) for ids, _ in pieces) + 2
    ids = np.full((len(pieces), width), pad_id, dtype=np.int64)
    types = np.zeros((len(pieces), width), dtype=np.int64)
    mask = np.zeros((len(pieces), width), dtype=np.int64)
    for i, (wid, cas) in enumerate(pieces):
        n = len(wid)
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = cls_id, wid, sep_id
        if use_casing:
            types[i, 1:n + 1] = cas
        mask[i, :n + 2] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def token_budget_batches(lengths: Sequence[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Window indices longest first, cut so a batch has at most ``batch_size`` windows and at most
    ``batch_tokens`` padded wordpieces (its longest window x its size): short windows make big
    batches, long ones small, so every forward pass costs about the same."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if (batches and len(batches[-1]) < batch_size
                and (len(batches[-1]) + 1) * (lengths[batches[-1][0]] + 2) <= batch_tokens):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
