"""The batch job's model as a spaCy pipeline component: ``nlp.add_pipe("nerbatch", config={"model": PATH})``.

Registered through the ``spacy_factories`` entry point in pyproject.toml, so a plain ``pip install``
makes the factory known to spaCy without importing this package first. The entities come from
``extract.api.Extractor`` (the job's own sanitising, windows, forward passes, decoding and
calibration); this module only aligns their character offsets to spaCy's tokens with
``Doc.char_span(..., alignment_mode="expand")`` and sets ``doc.ents``, each span's calibrated score
in ``span._.score``. What alignment changed is counted, per doc in ``doc.user_data["nerbatch"]``
and over the component's life in ``component.stats``: ``expanded`` (a boundary inside a spaCy
token, widened to the token), ``overlapping`` (spans that overlap once widened: the higher score
is kept) and ``dropped`` (no token to align to, e.g. whitespace only).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

from spacy.language import Language
from spacy.tokens import Doc, Span

from extract.api import Entity, Extractor

STATS = ("entities", "expanded", "overlapping", "dropped")

if not Span.has_extension("score"):
    Span.set_extension("score", default=None)


def align(doc: Doc, entities: Sequence[Entity]) -> tuple[list[Span], dict[str, int]]:
    """Spans of ``doc`` for ``entities`` (character offsets into ``doc.text``), non-overlapping,
    higher scores first where widening made two overlap; with the counts of what changed."""
    stats = dict.fromkeys(STATS, 0)
    spans: list[tuple[float, Span]] = []
    for e in entities:
        stats["entities"] += 1
        span = doc.char_span(e.start, e.end, label=e.label, alignment_mode="expand")
        if span is None or not len(span):
            stats["dropped"] += 1
            continue
        if (span.start_char, span.end_char) != (e.start, e.end):
            stats["expanded"] += 1
        spans.append((e.score, span))
    kept: list[Span] = []
    taken: set[int] = set()
    for score, span in sorted(spans, key=lambda x: (-x[0], x[1].start)):
        if taken.intersection(range(span.start, span.end)):
            stats["overlapping"] += 1
            continue
        taken.update(range(span.start, span.end))
        # Set only on the spans kept: spaCy keys span extensions by character range, so two
        # widened spans over the same tokens would share one value.
        span._.score = score
        kept.append(span)
    return sorted(kept, key=lambda s: s.start), stats


class NerBatch:
    """The component: sets ``doc.ents`` (and ``span._.score``) from the job's stages."""

    def __init__(self, extractor: Extractor, batch_size: int = 64):
        self.extractor = extractor
        self.batch_size = batch_size
        self.stats = dict.fromkeys(STATS, 0)

    def _set(self, doc: Doc, entities: list[Entity]) -> Doc:
        spans, stats = align(doc, entities)
        doc.ents = spans
        doc.user_data["nerbatch"] = stats
        for k, v in stats.items():
            self.stats[k] += v
        return doc

    def __call__(self, doc: Doc) -> Doc:
        return self._set(doc, self.extractor(doc.text))

    def pipe(self, docs: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        """Batched like ``Extractor.pipe``: the windows of ``batch_size`` docs share forward passes."""
        size = batch_size or self.batch_size
        chunk: list[Doc] = []
        for doc in docs:
            chunk.append(doc)
            if len(chunk) >= size:
                yield from self._run(chunk)
                chunk = []
        if chunk:
            yield from self._run(chunk)

    def _run(self, docs: list[Doc]) -> list[Doc]:
        results = self.extractor.pipe([d.text for d in docs], batch_size=len(docs))
        return [self._set(d, ents) for d, ents in zip(docs, results)]


@Language.factory("nerbatch", default_config={"model": "data/models/default", "labels": ["PER", "LOC", "ORG"],
                                              "min_score": 0.0, "batch_size": 64, "device": "cpu",
                                              "engine": "torch", "funnel": "capitalised-or-caseless"})
def make_nerbatch(nlp: Language, name: str, model: str, labels: list[str] | None, min_score: float,
                  batch_size: int, device: str, engine: str, funnel: str | None) -> NerBatch:
    if not Path(model).is_dir():
        raise ValueError(f"nerbatch: config model: expected a model folder (config.json, model.safetensors, "
                         f"tokenizer), found {model!r}, which is not a folder. Pass config={{'model': PATH}}, "
                         "e.g. data/models/default.")
    extractor = Extractor.from_pretrained(model, device=device, labels=labels, min_score=min_score,
                                          batch_size=batch_size, funnel=funnel, engine=engine)
    return NerBatch(extractor, batch_size)
