"""One shard end to end: read records, predict, decode, write two Parquet parts atomically.

``ShardProcessor`` is the one class (it holds the model): the local runner calls it in-process and
the Ray runner uses it as a callable-class UDF, so both write the same bytes. Tokenisation runs
here, next to the model: it is ~2% of the time (222k words/s against ~4k for the model, FACTS.md),
and moving it to separate tasks would ship token arrays between processes for nothing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from extract import schema
from extract.job_config import ExtractConfig
from extract.readers import Record, Shard, read_shard


def shard_to_json(shard: Shard) -> str:
    return json.dumps(dataclasses.asdict(shard))


def shard_from_json(text: str) -> Shard:
    d = json.loads(text)
    d["dups"] = {int(k): v for k, v in d["dups"].items()}
    return Shard(**d)


def part_paths(out: Path, shard_id: str) -> tuple[Path, Path]:
    return out / "entities" / f"part-{shard_id}.parquet", out / "docs" / f"part-{shard_id}.parquet"


def is_done(out: Path, shard_id: str) -> bool:
    return part_paths(out, shard_id)[1].is_file()  # docs part is written last: the completion mark


def write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def process_batch(processor, batch: dict[str, np.ndarray]) -> dict[str, list]:
    """Ray's callable-class protocol for any processor with ``process(shard) -> dict``."""
    rows = [processor.process(shard_from_json(str(s))) for s in batch["shard"]]
    return {k: [r[k] for r in rows] for k in rows[0]}


class ShardProcessor:
    """Loads the model once; ``__call__`` takes a batch of shard descriptors, returns summaries."""

    def __init__(self, cfg: ExtractConfig, out: str, threads: int = 0):
        from extract.model import load

        self.cfg = cfg
        self.out = Path(out)
        self.loaded = load(cfg.model.path, cfg.inference.device, cfg.inference.dtype,
                           threads or cfg.inference.threads)
        self.keep = set(cfg.model.labels)

    __call__ = process_batch

    def process(self, shard: Shard) -> dict:
        from extract.predict import decode, predict_probs

        t0 = time.perf_counter()
        records = list(read_shard(shard, self.cfg.input))
        todo = [r for r in records if r.error is None and r.status is None and r.text and r.text.strip()]
        mcfg, icfg = self.cfg.model, self.cfg.inference
        probs = predict_probs(self.loaded, [r.text for r in todo], icfg.batch_size,
                              mcfg.max_length or None, None if mcfg.stride < 0 else mcfg.stride)
        results = {id(r): p for r, p in zip(todo, probs)}
        repair = self.loaded.settings.get("repair", "drop")
        ents: dict[str, list] = {f.name: [] for f in schema.ENTITIES}
        docs: dict[str, list] = {f.name: [] for f in schema.DOCS}
        n_words = 0
        for rec in records:
            p = results.get(id(rec))
            found = []
            if p is not None:
                found = [e for e in decode(p, rec.text, self.loaded.labels, repair, self.keep)
                         if e["score"] >= mcfg.min_score]
                for e in found:
                    for k in ("label", "text", "start", "end", "score"):
                        ents[k].append(e[k])
                    ents["doc_id"].append(rec.doc_id)
                    ents["model"].append(self.loaded.model_id)
                n_words += len(p.probs)
            _doc_row(docs, rec, p, len(found), shard.shard_id)
        ent_path, doc_path = part_paths(self.out, shard.shard_id)
        write_atomic(pa.table(ents, schema=schema.ENTITIES), ent_path)
        write_atomic(pa.table(docs, schema=schema.DOCS), doc_path)
        return {"shard": shard.shard_id, "docs": len(records), "ok": len(todo), "words": n_words,
                "entities": len(ents["doc_id"]), "seconds": time.perf_counter() - t0}


def _doc_row(docs: dict[str, list], rec: Record, p, n_entities: int, shard_id: str) -> None:
    if rec.status:
        status = rec.status
    elif rec.error:
        status = "error"
    elif p is None:
        status = "empty"
    else:
        status = "ok"
    values = {"doc_id": rec.doc_id, "status": status, "error": rec.error,
              "n_chars": len(rec.text) if rec.text is not None else 0,
              "n_words": len(p.probs) if p is not None else 0,
              "n_tokens": len(p.enc.ids) if p is not None else 0,
              "n_entities": n_entities, "source": rec.source, "warning": rec.warning, "shard": shard_id}
    for k, v in values.items():
        docs[k].append(v)
