"""The batch job's model as a spaCy pipeline component: ``nlp.add_pipe("nerbatch", config={"model": PATH})``.

Registered through the ``spacy_factories`` entry point in pyproject.toml, so a plain ``pip install``
makes the factory known to spaCy without importing this package first (spaCy loads the entry point,
which imports this module, whose ``@Language.factory`` registers ``make_nerbatch``). The entities
come from ``extract.api.Extractor`` (the job's own sanitising, windows, forward passes, decoding and
calibration); this module only aligns their character offsets to spaCy's tokens with
``Doc.char_span(..., alignment_mode="expand")`` and sets ``doc.ents``, each span's calibrated score
in ``span._.score``. What alignment changed is counted, per doc in ``doc.user_data["nerbatch"]``
and over the component's life in ``component.stats``: ``entities`` (what the model found),
``expanded`` (a boundary inside a spaCy token, widened to the token), ``overlapping`` (spans that
overlap once widened: the higher score is kept, the other counted here) and ``dropped`` (no token
to align to, e.g. whitespace only). ``len(doc.ents) == entities - dropped - overlapping``.

``model`` may be a URI (``s3://``, ``gs://``, ``file://``): copied once into the local cache as the
job does (extract/model/files.py).

Scoring: the factory registers spaCy's NER scorer (``spacy.ner_scorer.v1``, ``get_ner_prf``) and
its score weights, so ``python -m spacy evaluate`` prints ents P/R/F and the per-type table as for
spaCy's own ``ner``. Saving: ``nlp.to_disk`` writes the component's config (the model is referenced
by its path, not copied), ``spacy.load`` rebuilds it from there, and ``spacy package`` adds
``nerbatch`` to the package's requirements (found from the factory's module). A packaged pipeline
therefore needs the model folder at the configured path where it is installed, or
``spacy.load(name, config={"components.nerbatch.model": PATH})``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from spacy.language import Language
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, Span
from spacy.training import Example

from extract.api import Entity, Extractor, chunked

STATS = ("entities", "expanded", "overlapping", "dropped")
DEFAULTS = {"model": "data/models/default", "labels": ["PER", "LOC", "ORG"], "min_score": 0.0,
            "batch_size": 64, "device": "cpu", "engine": "torch", "funnel": "capitalised-or-caseless",
            "scorer": {"@scorers": "spacy.ner_scorer.v1"}}
# As spaCy's own "ner": `spacy evaluate` prints the ents_* scores and `spacy train` weighs ents_f.
SCORE_WEIGHTS = {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None}
Scorer = Callable[..., dict[str, Any]]

if not Span.has_extension("score"):
    Span.set_extension("score", default=None)


def align(doc: Doc, entities: Sequence[Entity]) -> tuple[list[Span], dict[str, int]]:
    """Spans of ``doc`` for ``entities`` (character offsets into ``doc.text``), in document order and
    non-overlapping (where widening made two overlap, the higher score is kept; equal scores: the
    earlier one), each with its score in ``span._.score``; and the counts of what alignment changed."""
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
    for score, span in sorted(spans, key=lambda x: (-x[0], x[1].start, x[1].end)):
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

    def __init__(self, extractor: Extractor, batch_size: int = 64, name: str = "nerbatch",
                 scorer: Scorer | None = get_ner_prf):
        self.extractor = extractor
        self.batch_size = batch_size
        self.name = name
        self.scorer = scorer
        self.stats = dict.fromkeys(STATS, 0)

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        """What spaCy's Scorer (``nlp.evaluate``, ``spacy evaluate``) asks every component for:
        ents_p/r/f and ents_per_type from the configured scorer; nothing with ``scorer=None``."""
        return self.scorer(examples, **kwargs) if self.scorer is not None else {}

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
        for chunk in chunked(docs, batch_size or self.batch_size):
            yield from self._run(chunk)

    def _run(self, docs: list[Doc]) -> list[Doc]:
        results = self.extractor.pipe([d.text for d in docs], batch_size=len(docs))
        return [self._set(d, ents) for d, ents in zip(docs, results)]


def _model_error(model: str, found: str) -> ValueError:
    return ValueError(f"nerbatch: config 'model': expected a model folder (config.json, model.safetensors and "
                      f"the tokenizer files, as written by `python -m training finetune`), found {found}. Fix: "
                      f"nlp.add_pipe('nerbatch', config={{'model': PATH}}) with PATH such a folder (local or a "
                      f"URI), e.g. data/models/default; got {model!r}.")


@Language.factory("nerbatch", default_config=DEFAULTS, default_score_weights=SCORE_WEIGHTS,
                  assigns=["doc.ents", "token.ent_iob", "token.ent_type", "span._.score"])
def make_nerbatch(nlp: Language, name: str, model: str = DEFAULTS["model"],
                  labels: list[str] | None = DEFAULTS["labels"], min_score: float = 0.0, batch_size: int = 64,
                  device: str = "cpu", engine: str = "torch",
                  funnel: str | None = "capitalised-or-caseless", scorer: Scorer | None = get_ner_prf) -> NerBatch:
    """``labels=None`` keeps every type the model knows; ``funnel=None`` runs every window (the
    job's pre-filter is the default); ``engine="onnx"`` reads MODEL/model.onnx."""
    from extract.model.files import local_model_dir

    try:
        local = local_model_dir(str(model))  # a local path as it is, a URI copied once to the cache
    except FileNotFoundError as exc:
        raise _model_error(model, f"none there ({exc})") from exc
    if not Path(local).is_dir():
        raise _model_error(model, "no such folder" if not Path(local).exists() else "a file, not a folder")
    if not (Path(local) / "config.json").is_file():
        raise _model_error(model, f"a folder without config.json (it holds: "
                                  f"{sorted(p.name for p in Path(local).iterdir())[:10]})")
    try:
        extractor = Extractor.from_pretrained(str(local), device=device, labels=labels, min_score=min_score,
                                              batch_size=batch_size, funnel=funnel, engine=engine)
    except FileNotFoundError as exc:  # e.g. no model.safetensors / model.onnx: the loader's message says which
        raise _model_error(model, str(exc)) from exc
    return NerBatch(extractor, batch_size, name, scorer)
