"""Documents -> windows of wordpieces -> forward passes -> window logits; the span maths after
that (window merging, decoding, scores) is extract/text/spans.py.

The one inference path: the batch job, evaluation and teacher labelling all call it. Windows from
all documents in a call are sorted by length and batched (extract/model/batch.py), so padding
stays small, and run under ``torch.inference_mode`` (or in ONNX Runtime, extract/model/onnx.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from extract.model.batch import batch_tensors, token_budget_batches
from extract.model.loaded import Loaded
from extract.model.onnx import run_logits
from extract.text.funnel import keep_windows, skipped_logits
from extract.text.spans import DocProbs, combine
from extract.text.windows import Encoded, encode, windows


def run_windows(loaded: Loaded, pieces: list[tuple[np.ndarray, np.ndarray]], batch_size: int,
                batch_tokens: int = 0) -> list[np.ndarray]:
    """Logits (window_len, n_labels) float32 for each (ids, casing) window, in input order. The
    engine (torch or ONNX Runtime) only changes the forward pass; batches and arrays are the same."""
    tok = loaded.tokenizer
    forward = _onnx_forward(loaded) if loaded.engine != "torch" else _torch_forward(loaded)
    out: list[np.ndarray] = [np.empty(0)] * len(pieces)
    use_casing = bool(loaded.settings.get("casing", True))
    budget = batch_tokens or batch_size * (int(loaded.settings["max_length"]) + 2)
    for idx in token_budget_batches([len(p[0]) for p in pieces], batch_size, budget):
        arrays = batch_tensors([pieces[i] for i in idx], tok.cls_token_id, tok.sep_token_id,
                               tok.pad_token_id, use_casing)
        logits = forward(arrays)
        for row, i in enumerate(idx):
            out[i] = logits[row, 1:len(pieces[i][0]) + 1]
    return out


def _torch_forward(loaded: Loaded):
    import torch

    cuda = loaded.device == "cuda"
    autocast = cuda and loaded.dtype != torch.float32

    def forward(arrays: dict[str, np.ndarray]) -> np.ndarray:
        # On a GPU: pinned host memory and non-blocking copies overlap the transfer with work.
        feed = {k: (torch.from_numpy(v).pin_memory().to(loaded.device, non_blocking=True) if cuda
                    else torch.from_numpy(v)) for k, v in arrays.items()}
        with torch.inference_mode(), torch.autocast("cuda", dtype=loaded.dtype, enabled=autocast):
            return loaded.model(**feed).logits.float().cpu().numpy()
    return forward


def _onnx_forward(loaded: Loaded):
    return lambda arrays: run_logits(loaded.session, arrays)


@dataclass
class Windowed:
    """One document cut into windows: what the model stage needs, and what decoding needs after."""

    enc: Encoded
    wins: list[tuple[int, int]]
    keep: list[bool] | None = None  # the funnel's verdict per window; None = run them all

    def pieces(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.enc.ids[s:e], self.enc.casing[s:e]) for k, (s, e) in enumerate(self.wins) if self.runs(k)]

    def runs(self, k: int) -> bool:
        return self.keep is None or self.keep[k]


def window_text(text: str, tokenizer, max_length: int, stride: int, funnel: str | None = None) -> Windowed:
    """Tokenise and cut into windows (the CPU stage before the model); ``funnel`` names a
    pre-filter rule (extract/text/funnel.py) that marks windows not worth running."""
    enc = encode(text, tokenizer)
    wins = windows(enc.word_ids, max_length - 2, min(stride, max_length - 3))
    keep = None
    if funnel:
        keep = keep_windows(enc.casing, wins, funnel)
    return Windowed(enc, wins, keep)


def forward_docs(loaded: Loaded, docs: Sequence[Windowed], batch_size: int = 32,
                 batch_tokens: int = 0) -> list[list[np.ndarray]]:
    """The model stage: window logits per document, windows of all documents batched together."""
    pieces = [p for doc in docs for p in doc.pieces()]
    logits = iter(run_windows(loaded, pieces, batch_size, batch_tokens))
    out: list[list[np.ndarray]] = [[] for _ in docs]
    for d, doc in enumerate(docs):
        for k, (s, e) in enumerate(doc.wins):
            if doc.runs(k):
                out[d].append(next(logits))
            else:
                out[d].append(skipped_logits(e - s, len(loaded.labels), loaded.labels.index("O")))
    return out


def predict_probs(loaded: Loaded, texts: Sequence[str], batch_size: int = 32,
                  max_length: int | None = None, stride: int | None = None,
                  temperature: float | None = None, batch_tokens: int = 0, funnel: str | None = None) -> list[DocProbs]:
    """The three stages in one call (evaluation, teachers, the Python API)."""
    max_length = max_length or int(loaded.settings["max_length"])
    stride = int(loaded.settings["stride"]) if stride is None else stride
    temperature = temperature or float(loaded.settings.get("temperature", 1.0))
    docs = [window_text(t, loaded.tokenizer, max_length, stride, funnel) for t in texts]
    logits = forward_docs(loaded, docs, batch_size, batch_tokens)
    return [combine(doc, lg, len(loaded.labels), temperature) for doc, lg in zip(docs, logits)]


