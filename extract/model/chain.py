"""The one inference chain: text -> windows -> forward passes -> combine windows -> decode spans
-> min_score. Extractor (extract/api.py, and the service through it), the batch job
(extract/job/entities.py: its three stages call the three steps, on different workers) and the
Hugging Face pipeline class (extract/hf_pipeline.py) all run these steps, so a text gives the same
entities through every front end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Chain:
    labels: tuple[str, ...]  # the model's BIO labels, in id order
    settings: dict  # the model's ner_settings (max_length, stride, temperature, repair, score_map, consistency)
    keep: frozenset[str]  # entity types written
    min_score: float = 0.0
    funnel: str | None = None  # the pre-filter rule (extract/text/funnel.py); None runs every window

    @classmethod
    def of(cls, labels: Sequence[str], settings: dict, keep, min_score: float = 0.0, funnel: str | None = None,
           max_length: int = 0, stride: int = -1) -> "Chain":
        """``max_length`` 0 / ``stride`` -1: the model's own (as the job's and service's configs)."""
        s = dict(settings)
        if max_length:
            s["max_length"] = max_length
        if stride >= 0:
            s["stride"] = stride
        return cls(tuple(labels), s, frozenset(keep), min_score, funnel)

    def windows(self, text: str, tokenizer: Any):
        """Step 1 (CPU): wordpiece windows with casing ids and offsets."""
        from extract.model.predict import window_text

        return window_text(text, tokenizer, int(self.settings["max_length"]), int(self.settings["stride"]),
                           self.funnel)

    @staticmethod
    def forward(loaded: Any, docs: list, batch_size: int, batch_tokens: int = 0) -> list:
        """Step 2 (the model): logits per window, length-sorted batches."""
        from extract.model.predict import forward_docs

        return forward_docs(loaded, docs, batch_size, batch_tokens)

    def entities(self, doc: Any, logits: Any, text: str) -> tuple[list[dict], Any]:
        """Step 3 (CPU): the windows' logits merged per word, spans decoded and scored, those under
        ``min_score`` dropped. Entity dicts (label, text, start, end, score) and the word probabilities."""
        from extract.text.spans import combine, decode

        s = self.settings
        probs = combine(doc, logits, len(self.labels), float(s.get("temperature", 1.0)))
        found = decode(probs, text, self.labels, s.get("repair", "drop"), self.keep, s.get("score_map"),
                       bool(s.get("consistency", False)))
        return [e for e in found if e["score"] >= self.min_score], probs
