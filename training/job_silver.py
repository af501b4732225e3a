"""A batch job's predictions as silver: ``data.silver_jobs: [OUT, ...]`` in a distill config.

Each ``ok`` document of a finished ``python -m extract run`` (OUT) becomes one silver document in the
form the distillation loss takes (texts, word starts, per-word label distributions):

- the text is re-read from the job's input through OUT/plan.json + run.json with
  ``extract.monitor.outputs.read_texts`` (the docs row's ``shard`` + ``index`` pick the record), so
  entity offsets index exactly the text the job's model saw;
- words are the student tokenizer's word spans (``encode(...).word_spans()``), as for corrections;
- entities scoring below ``data.silver_jobs_min_score`` are dropped (the document keeps the others);
  a kept entity's words get B-/I- of its type (first span wins on overlap, as in corrections) with
  the entity's score on that tag and ``1 - score`` on O; every other word is O with probability 1.
  The score is the job's calibrated P(entity exactly right): an uncertain prediction pulls the
  student less than a sure one, and a score of 1 is the one-hot target.

``data.silver_max_docs`` caps the job documents at the first N in order (jobs as listed, then
``(shard, index)``), unlike teacher silver's seeded random sample: only those documents are
re-read from the job's input, which a random sample over all shards would not allow; 0 = all.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, schema
from extract.job.summary import table_of
from extract.monitor.outputs import read_texts
from extract.monitor.review import ReviewError
from extract.text.windows import encode


def word_distributions(word_starts: np.ndarray, word_ends: np.ndarray, entities: Sequence[dict],
                       labels: Sequence[str], min_score: float = 0.0) -> tuple[np.ndarray, int]:
    """(n_words, n_labels) distributions from scored character spans (dicts with start, end, label,
    score) and the number of entities that tagged at least one word. Entities below ``min_score``
    or of a type without B-/I- in ``labels`` are left out; a word keeps the first span (by start)."""
    index = {l: i for i, l in enumerate(labels)}
    probs = np.zeros((len(word_starts), len(labels)), dtype=np.float32)
    probs[:, index["O"]] = 1.0
    taken = np.zeros(len(word_starts), dtype=bool)
    ws, we = np.asarray(word_starts), np.asarray(word_ends)
    used = 0
    for e in sorted(entities, key=lambda e: (e["start"], e["end"])):
        score = float(e["score"])
        if score < min_score or f"B-{e['label']}" not in index:
            continue
        hit = [i for i in np.flatnonzero((ws < e["end"]) & (we > e["start"])) if not taken[i]]
        for k, i in enumerate(hit):
            tag = index[("B-" if k == 0 else "I-") + e["label"]]
            probs[i] = 0.0
            probs[i, tag] = score
            probs[i, index["O"]] = 1.0 - score
            taken[i] = True
        used += bool(hit)
    return probs, used


def _job_docs(out: str) -> list[dict]:
    docs = table_of(fs.join(out, "docs"), ["doc_id", "status", "shard", "index"], schema.DOCS)
    ok = docs.filter(pc.and_(pc.equal(docs["status"], "ok"), pc.is_valid(docs["doc_id"])))
    return sorted(ok.to_pylist(), key=lambda d: (d["shard"], d["index"]))


def read_job_silver(outs: Sequence[str], labels: Sequence[str], tokenizer, min_score: float = 0.5,
                    max_docs: int = 0):
    """Texts, word starts, (n_words, n_labels) distributions in ``labels`` order, and counts."""
    texts, starts, probs = [], [], []
    facts = {"jobs": len(outs), "docs": 0, "entities": 0, "entities_below_min_score": 0,
             "entities_other_types": 0, "entities_mismatched": 0}
    for out in map(str, outs):
        if max_docs and len(texts) >= max_docs:
            break
        out = out.rstrip("/")
        try:
            docs = _job_docs(out)
        except FileNotFoundError as exc:
            raise ReviewError(f"data.silver_jobs: {out}: {exc}") from None
        if max_docs:
            docs = docs[:max_docs - len(texts)]
        if not docs:
            continue
        got = read_texts(out, {d["doc_id"]: (d["shard"], d["index"]) for d in docs})
        ents = table_of(fs.join(out, "entities"), ["doc_id", "label", "text", "start", "end", "score"],
                        schema.ENTITIES)
        ents = ents.filter(pc.is_in(ents["doc_id"], pa.array([d["doc_id"] for d in docs], pa.string())))
        by_doc: dict[str, list[dict]] = {}
        for e in ents.to_pylist():
            by_doc.setdefault(e["doc_id"], []).append(e)
        for d in docs:
            text = got[d["doc_id"]]
            kept = []
            for e in by_doc.get(d["doc_id"], []):
                if text[e["start"]:e["end"]] != e["text"]:
                    facts["entities_mismatched"] += 1
                elif f"B-{e['label']}" not in labels:
                    facts["entities_other_types"] += 1
                elif e["score"] < min_score:
                    facts["entities_below_min_score"] += 1
                else:
                    kept.append(e)
            enc = encode(text, tokenizer)
            if not len(enc.ids):
                continue
            ws, we = enc.word_spans()
            p, used = word_distributions(ws, we, kept, labels, min_score)
            texts.append(text)
            starts.append(np.asarray(ws, dtype=np.int64))
            probs.append(p)
            facts["docs"] += 1
            facts["entities"] += used
    return texts, starts, probs, facts
