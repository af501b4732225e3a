"""The model one Python call away: the batch job's own stages on a list of texts, in memory.

    from extract.api import Extractor

    ner = Extractor.from_pretrained("data/models/default")
    ner("Angela Merkel met Reuters in Bonn.")
    # [Entity(label='PER', text='Angela Merkel', start=0, end=13, score=0.99...), ...]
    for ents in ner.pipe(texts, batch_size=64): ...

Same sanitising, windows, forward passes, window merging and span decoding as
``python -m extract run``, so a text gives the same entities here as in the Parquet output.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entity:
    label: str
    text: str  # == the input text[start:end]
    start: int  # character offset, inclusive
    end: int  # character offset, exclusive
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last may be shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _checked(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"expected str texts, found {type(text).__name__}")
    return text


class Extractor:
    """Entities with offsets and calibrated scores from a model directory (safetensors only)."""

    def __init__(self, loaded, labels: Sequence[str] | None = None, min_score: float = 0.0,
                 batch_size: int = 32, batch_tokens: int = 0, funnel: str | None = "capitalised-or-caseless"):
        from extract.text.labels import check_types, entity_types

        self.loaded = loaded
        check_types(labels or (), loaded.labels, "labels", loaded.model_id)
        self.keep = set(labels) if labels else set(entity_types(loaded.labels))
        self.min_score = min_score
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.funnel = funnel  # the job's default pre-filter (extract/text/funnel.py); None runs every window

    @classmethod
    def from_pretrained(cls, path: str = "data/models/default", device: str = "cpu", dtype: str = "fp32",
                        labels: Sequence[str] | None = ("PER", "LOC", "ORG"), min_score: float = 0.0,
                        batch_size: int = 32, threads: int = 0,
                        funnel: str | None = "capitalised-or-caseless", engine: str = "torch") -> "Extractor":
        """``path``: a local model folder or a URI of one (s3://..., gs://..., file://...), copied once
        to the job's local model cache (extract/model/files.py). ``labels=None`` keeps every type the
        model knows (MISC included); ``engine="onnx"`` runs the forward pass in ONNX Runtime from
        PATH/model.onnx (`python -m extract export-onnx PATH`). ``batch_size`` counts windows per
        forward pass; ``pipe(texts, batch_size)`` counts texts per chunk."""
        from extract.model.files import local_model_dir
        from extract.model.load import load

        local = local_model_dir(str(path))
        return cls(load(local, device, dtype, threads, engine), labels, min_score, batch_size, funnel=funnel)

    def __call__(self, text: str) -> list[Entity]:
        return next(self.pipe([text]))

    def pipe(self, texts: Iterable[str], batch_size: int = 64) -> Iterator[list[Entity]]:
        """Entities per text, in order; texts are batched (their windows sorted by length)."""
        for chunk in chunked(map(_checked, texts), batch_size):
            yield from self._run(chunk)

    def _run(self, texts: list[str]) -> list[list[Entity]]:
        from extract.model.chain import Chain
        from extract.text.sanitize import sanitize

        chain = Chain.of(self.loaded.labels, self.loaded.settings, self.keep, self.min_score, self.funnel)
        clean = [sanitize(t)[0] for t in texts]  # same length: offsets index the caller's text
        todo = [i for i, t in enumerate(clean) if t.strip()]
        docs = [chain.windows(clean[i], self.loaded.tokenizer) for i in todo]
        logits = chain.forward(self.loaded, docs, self.batch_size, self.batch_tokens)
        out: list[list[Entity]] = [[] for _ in texts]
        for i, doc, lg in zip(todo, docs, logits):
            found, _ = chain.entities(doc, lg, clean[i])
            out[i] = [Entity(e["label"], texts[i][e["start"]:e["end"]], e["start"], e["end"], e["score"])
                      for e in found]
        return out
