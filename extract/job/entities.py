"""The entity job's stages: tokenise and cut windows (CPU), forward passes (the model actor),
combine windows, decode spans and write entity rows (CPU).

Only the model stage loads the model; the CPU stages load the tokenizer alone, so a CPU task
starts in a fraction of a second and never holds model weights.
"""
from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from extract.core import schema
from extract.core.job_config import ExtractConfig
from extract.model.files import local_model_dir
from extract.job.stages import Outcome, Processor
from extract.io.readers import Record


class ShardProcessor(Processor):
    """Entities: writes entities/ and docs/ parts per shard. ``load_model=False`` builds the CPU
    stages only (the tokenizer and the model's settings)."""

    def __init__(self, cfg: ExtractConfig, out: str, model_id: str = "", threads: int = 0,
                 load_model: bool = True):
        super().__init__(out, cfg.input, cfg.ray.record_kill_limit)
        self.cfg = cfg
        model_path = local_model_dir(cfg.model.path)  # each node copies a remote model once
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        from extract.model.load import DEFAULT_SETTINGS

        self.settings = {**DEFAULT_SETTINGS, **(config.get("ner_settings") or {})}
        self.max_length = cfg.model.max_length or int(self.settings["max_length"])
        self.stride = int(self.settings["stride"]) if cfg.model.stride < 0 else cfg.model.stride
        self.temperature = float(self.settings.get("temperature", 1.0))
        self.keep = set(cfg.model.labels)
        self.repair = self.settings.get("repair", "drop")
        self.model_id = model_id
        self.model_path = model_path
        self.loaded = None
        self._tokenizer = None
        if load_model:
            from extract.model.load import load

            self.loaded = load(model_path, cfg.inference.device, cfg.inference.dtype,
                               threads or cfg.inference.threads, cfg.inference.engine)
            self.model_id = model_id or self.loaded.model_id
            self._tokenizer = self.loaded.tokenizer

    @property
    def tokenizer(self):
        """Loaded on first use: the decode/write stage never needs it (nor transformers' import)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), trust_remote_code=False)
        return self._tokenizer

    def features(self, text: str) -> Any:
        from extract.model.predict import window_text

        funnel = self.cfg.funnel.rule if self.cfg.funnel.enabled else None
        return window_text(text, self.tokenizer, self.max_length, self.stride, funnel)

    def predict(self, features: list[Any]) -> list[Any]:
        from extract.model.predict import forward_docs

        inf = self.cfg.inference
        return forward_docs(self.loaded, features, inf.batch_size, inf.batch_tokens)

    def outcome(self, rec: Record, features: Any, result: Any) -> Outcome:
        from extract.model.predict import combine, decode

        doc = combine(features, result, len(self.labels), self.temperature)
        found = [e for e in decode(doc, rec.text, self.labels, self.repair, self.keep,  # type: ignore[arg-type]
                                   self.settings.get("score_map"))
                 if e["score"] >= self.cfg.model.min_score]
        rows = {k: [e[k] for e in found] for k in ("label", "text", "start", "end", "score")}
        rows["doc_id"] = [rec.doc_id] * len(found)
        rows["model"] = [self.model_id] * len(found)
        return Outcome(rows, len(doc.probs), len(doc.enc.ids), len(found))

    def data_table(self, columns: dict[str, list]) -> pa.Table:
        return pa.table({f.name: columns.get(f.name, []) for f in schema.ENTITIES}, schema=schema.ENTITIES)
