"""The model in Hugging Face's pipeline API, fed as it was trained: casing ids and document windows.

    from transformers import pipeline
    from extract.hf_pipeline import NerbatchPipeline

    ner = pipeline("token-classification", model="data/models/default", pipeline_class=NerbatchPipeline)
    ner("Angela Merkel met Reuters in Bonn.")
    # [{'entity_group': 'PER', 'score': 0.99.., 'word': 'Angela Merkel', 'start': 0, 'end': 13}, ...]

Why a class of its own: the model reads capitalisation as casing ids in ``token_type_ids`` (its
backbone is uncased) and was trained on windows with a stride. The stock TokenClassificationPipeline
feeds zeros there and truncates a long text, and nothing warns; this class runs the inference
chain that Extractor, the job and the service run (extract/model/chain.py), so it gives
Extractor's entities:

- ``preprocess``: ``sanitize`` + ``Chain.windows`` (wordpieces, offsets, casing ids, windows, the
  funnel), one chunk per window that runs, laid out by ``batch_tensors`` ([CLS] window [SEP]).
- ``_forward``: the model, under HF's device placement and batching (``batch_size=``), in place of
  ``Chain.forward``; HF pads ids with the pad id, token types and the mask with 0, as
  ``batch_tensors`` does.
- ``postprocess``: ``Chain.entities`` (windows merged per word, spans decoded and calibrated,
  ``min_score``), then HF's usual entity dicts with ``word`` as in the original text.

The class comes from the installed package (no remote code, nothing saved into the model folder).
Extra call/construction options: ``labels`` (types to keep; default all the model knows, as the stock
pipeline), ``min_score``, ``funnel`` (Extractor's default pre-filter; None runs every window).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline

from extract.model.batch import batch_tensors
from extract.model.casing_table import check_casing_input
from extract.model.chain import Chain
from extract.model.loaded import DEFAULT_SETTINGS
from extract.model.predict import Windowed
from extract.text.funnel import RULES, skipped_logits
from extract.text.labels import check_types, entity_types
from extract.text.sanitize import sanitize

DEFAULT_FUNNEL = "capitalised-or-caseless"  # Extractor's and the job's default
# Our decode labels each word by its first wordpiece: HF's "first". "simple" is accepted too because
# every token-classification user passes it; both mean "whole entities" here.
ACCEPTED_AGGREGATION = (AggregationStrategy.SIMPLE, AggregationStrategy.FIRST)
_UNSET: Any = object()


@dataclass
class _Doc:
    """One input text as it travels with each of its windows through HF's chunk machinery."""

    text: str  # the caller's text: ``word`` and offsets index it
    clean: str  # same length, lone surrogates replaced (extract/text/sanitize.py)
    windowed: Windowed


def model_labels_settings(config: Any) -> tuple[list[str], dict]:
    """Label names in id order and ``ner_settings`` over the defaults, from a loaded model's config;
    a model without ``ner_settings`` was not trained here and would get casing ids it never saw."""
    settings = getattr(config, "ner_settings", None)
    if not isinstance(settings, dict):
        raise ValueError(
            f"NerbatchPipeline: expected a nerbatch model (config.json with 'ner_settings', as written by "
            f"`python -m training finetune`), found {getattr(config, '_name_or_path', '?')!r} without it. Fix: use "
            f"the plain pipeline('token-classification', model=...) for other models, or point model= at a "
            f"nerbatch model folder such as data/models/default.")
    labels = [config.id2label[i] for i in range(len(config.id2label))]
    return labels, {**DEFAULT_SETTINGS, **settings}


class NerbatchPipeline(TokenClassificationPipeline):
    """Token classification with the casing ids, windows, merging and decoding of extract.api.Extractor."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.labels, self.settings = model_labels_settings(self.model.config)
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError("NerbatchPipeline: expected a fast tokenizer (tokenizer.json: character offsets), "
                             f"found {type(self.tokenizer).__name__}. Fix: save the model folder's tokenizer with "
                             "tokenizer.save_pretrained(folder).")
        if self.settings.get("casing_input") == "embedding":  # MPNet-style: re-attach the casing table
            check_casing_input(self.model, self.settings, Path(self.model.name_or_path))
        if self.device.type == "cpu" and self.model.dtype == torch.float16:
            # pipeline(dtype="auto") honours config.json's float16; Extractor runs fp32 on a CPU
            # (fp16 matmuls there are slow or unsupported), and parity needs the same numbers.
            self.model.float()

    # -- parameters -------------------------------------------------------------------------------

    def _sanitize_parameters(self, aggregation_strategy: Any = None, labels: Any = _UNSET,
                             min_score: float | None = None, funnel: Any = _UNSET,
                             ignore_labels: Sequence[str] | None = None, **unsupported: Any):
        if unsupported:
            raise ValueError(
                f"NerbatchPipeline: unsupported option(s) {sorted(unsupported)}. Windows, stride and word splitting "
                f"come from the model's ner_settings (max_length, stride), as in Extractor. Expected only: "
                f"aggregation_strategy, labels, ignore_labels, min_score, funnel, batch_size, num_workers.")
        self._check_aggregation(aggregation_strategy)
        pre: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if funnel is not _UNSET:
            if funnel is not None and funnel not in RULES:
                raise ValueError(f"NerbatchPipeline: funnel: expected one of {RULES} or None (run every window), "
                                 f"found {funnel!r}.")
            pre["funnel"] = funnel
        if labels is not _UNSET or ignore_labels is not None:
            post["keep"] = self._keep(None if labels is _UNSET else labels, ignore_labels)
        if min_score is not None:
            post["min_score"] = float(min_score)
        return pre, {}, post

    @staticmethod
    def _check_aggregation(strategy: Any) -> None:
        if strategy is None:
            return
        try:
            found = AggregationStrategy(strategy.lower() if isinstance(strategy, str) else strategy)
        except ValueError:
            found = None
        if found not in ACCEPTED_AGGREGATION:
            raise ValueError(
                f"NerbatchPipeline: aggregation_strategy: expected 'simple' or 'first' (or none given), found "
                f"{strategy!r}. This pipeline returns whole entities decoded over words, each word labelled by its "
                f"first wordpiece as in training; for per-wordpiece output use the plain token-classification "
                f"pipeline (without casing ids, so with lower accuracy).")

    def _keep(self, labels: Sequence[str] | None, ignore: Sequence[str] | None) -> frozenset[str]:
        tags = model_labels_settings(self.model.config)[0]  # (called from Pipeline.__init__, before ours ends)
        keep = entity_types(tags) if labels is None else check_types(labels, tags, "labels", self.model.name_or_path)
        return frozenset(keep) - frozenset(ignore or ())

    def _chain(self, keep: frozenset[str] | None = None, min_score: float = 0.0,
               funnel: str | None = DEFAULT_FUNNEL) -> Chain:
        types = entity_types(self.labels) if keep is None else keep
        return Chain.of(self.labels, self.settings, types, min_score, funnel)

    # -- the three stages -------------------------------------------------------------------------

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """A text gives a list of entity dicts; a list of texts a list of such lists; a generator or
        a Dataset an iterator of them. Pre-split words (``is_split_into_words``) are not taken."""
        if isinstance(inputs, (list, tuple)) and not inputs:
            return []
        # Skip TokenClassificationPipeline's argument handler (it adds word-splitting options this
        # pipeline does not have) and go straight to Pipeline.__call__.
        return super(TokenClassificationPipeline, self).__call__(inputs, **kwargs)

    def preprocess(self, text: Any, funnel: str | None = DEFAULT_FUNNEL) -> Iterator[dict]:  # type: ignore[override]
        if not isinstance(text, str):
            raise TypeError(f"NerbatchPipeline: expected str texts, found {type(text).__name__}.")
        clean = sanitize(text)[0]  # same length: offsets index the caller's text
        # Whitespace-only text gives no wordpieces and no windows (Extractor skips it: same result).
        windowed = self._chain(funnel=funnel).windows(clean, self.tokenizer)
        doc = _Doc(text, clean, windowed)
        runs = [k for k in range(len(windowed.wins)) if windowed.runs(k)]
        # HF's chunk iterator needs at least one chunk per input: a text with nothing to run (empty,
        # or every window skipped by the funnel) sends one [CLS][SEP], whose output is not used.
        for i, k in enumerate(runs or [-1]):
            arrays = batch_tensors([self._piece(windowed, k)], self.tokenizer.cls_token_id, self.tokenizer.sep_token_id,
                                   self.tokenizer.pad_token_id, bool(self.settings.get("casing", True)))
            yield {**{key: torch.from_numpy(v) for key, v in arrays.items()},
                   "window": k, "doc": doc, "is_last": i == max(len(runs), 1) - 1}

    @staticmethod
    def _piece(windowed: Windowed, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        s, e = windowed.wins[k]
        return windowed.enc.ids[s:e], windowed.enc.casing[s:e]

    def _forward(self, model_inputs: dict) -> dict:
        # Metadata out, tensors in; ``is_last`` must come back: HF regroups a text's chunks by it.
        meta = {k: model_inputs.pop(k) for k in ("window", "doc", "is_last")}
        return {"logits": self.model(**model_inputs).logits, **meta}

    def postprocess(self, all_outputs: list[dict], keep: frozenset[str] | None = None,  # type: ignore[override]
                    min_score: float = 0.0) -> list[dict]:
        doc: _Doc = all_outputs[0]["doc"]
        wins = doc.windowed.wins
        if not wins:
            return []
        ran = {int(o["window"]): o["logits"][0].float().numpy() for o in all_outputs}
        n_labels = len(self.labels)
        logits = []
        for k, (s, e) in enumerate(wins):  # batch padding and [CLS] cut off; skipped windows as the job does
            logits.append(ran[k][1:e - s + 1] if k in ran else skipped_logits(e - s, n_labels, self.labels.index("O")))
        found, _ = self._chain(keep, min_score).entities(doc.windowed, logits, doc.clean)
        return [{"entity_group": e["label"], "score": e["score"], "word": doc.text[e["start"]:e["end"]],
                 "start": e["start"], "end": e["end"]} for e in found]
