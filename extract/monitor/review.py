"""`python -m extract review OUT`: pick documents of a finished job for human review in Label Studio.

Writes a JSON list of Label Studio tasks (``{"data": {"text", "doc_id"}, "predictions": [...]}``,
the job's entities as pre-annotations) and, next to it, the labeling config XML to create the
project with (``<stem>.xml``).

Document texts are not stored in OUT: they are read again from the input through plan.json and
``extract.io.readers.read_shard`` with the job's own InputConfig (run.json), and the docs table's
``shard`` + ``index`` pick the record (``extract.monitor.outputs.read_texts``), so the entity
offsets index exactly the text the model saw.

Strategies (documents with status ``ok`` are the candidates):

- ``lowest-confidence``: documents whose *least* confident entity is lowest first (documents
  without any entity are not candidates: nothing to correct in them but misses, use ``random``);
- ``random``: a seeded uniform sample of the ok documents;
- ``disagreement``: a teacher (one or more model dirs, run through ``extract.api.Extractor``; with
  several, each document's disagreement is the mean over teachers) relabels the candidates; the
  documents whose spans differ most from the job's are picked: ``1 - Jaccard`` of the
  ``(start, end, label)`` sets (0 when both are empty). Candidates are a seeded sample of at most
  ``--pool`` ok documents, so a teacher never has to relabel a whole corpus.
"""
from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import quoteattr

from extract.core import schema
from extract.monitor.outputs import JobOutputError, read_run, read_table, read_texts
from extract.text.sanitize import sanitize

STRATEGIES = ("lowest-confidence", "disagreement", "random")


ReviewError = JobOutputError  # review's own problems read the same as the output folder's


def jaccard_distance(a: Iterable[tuple], b: Iterable[tuple]) -> float:
    a, b = set(a), set(b)
    if not a and not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


def _doc_score(ents: list[dict]) -> float | None:
    return min(e["score"] for e in ents) if ents else None


def select(out: str, n: int, strategy: str, seed: int = 0, teachers: Sequence[str] = (), pool: int = 2000,
           teacher_device: str = "cpu", threads: int = 0) -> tuple[list[dict], dict[str, list[dict]], dict]:
    """(picked docs rows with ``text`` and ``review_score``, entities by doc_id, facts)."""
    if strategy not in STRATEGIES:
        raise ReviewError(f"--strategy: expected one of {', '.join(STRATEGIES)}, found {strategy!r}")
    if strategy == "disagreement" and not teachers:
        raise ReviewError("--strategy disagreement needs --teacher MODEL_DIR (one or more)")
    docs = read_table(out, "docs", schema.DOCS).to_pylist()
    ents_rows = read_table(out, "entities", schema.ENTITIES).to_pylist()
    ents: dict[str, list[dict]] = defaultdict(list)
    for e in ents_rows:
        ents[e["doc_id"]].append(e)
    ok = [d for d in docs if d["status"] == "ok" and d["doc_id"] is not None]
    ok.sort(key=lambda d: (d["shard"], d["index"]))
    rng = random.Random(seed)
    facts = {"strategy": strategy, "candidates": len(ok), "seed": seed}
    if strategy == "random":
        picked = rng.sample(ok, min(n, len(ok)))
        for d in picked:
            d["review_score"] = None
    elif strategy == "lowest-confidence":
        cands = [d for d in ok if ents.get(d["doc_id"])]
        for d in cands:
            d["review_score"] = _doc_score(ents[d["doc_id"]])
        picked = sorted(cands, key=lambda d: (d["review_score"], d["shard"], d["index"]))[:n]
        facts["candidates"] = len(cands)
        facts["measure"] = "min entity score per document, lowest first"
    else:
        cands = rng.sample(ok, min(pool, len(ok))) if pool and len(ok) > pool else ok
        texts = read_texts(out, {d["doc_id"]: (d["shard"], d["index"]) for d in cands})
        from extract.api import Extractor

        order = [d["doc_id"] for d in cands]
        dist = {k: 0.0 for k in order}
        for t in teachers:
            ner = Extractor.from_pretrained(t, device=teacher_device, labels=None, threads=threads)
            for doc_id, found in zip(order, ner.pipe([texts[k] for k in order])):
                theirs = {(e.start, e.end, e.label) for e in found}
                ours = {(e["start"], e["end"], e["label"]) for e in ents.get(doc_id, [])}
                dist[doc_id] += jaccard_distance(ours, theirs) / len(teachers)
        for d in cands:
            d["review_score"] = round(dist[d["doc_id"]], 6)
            d["text"] = texts[d["doc_id"]]
        picked = sorted(cands, key=lambda d: (-d["review_score"], d["shard"], d["index"]))[:n]
        facts.update(candidates=len(cands), teachers=list(teachers),
                     measure="1 - Jaccard of (start, end, label) sets, job vs teacher, highest first")
    missing = {d["doc_id"]: (d["shard"], d["index"]) for d in picked if "text" not in d}
    if missing:
        texts = read_texts(out, missing)
        for d in picked:
            d.setdefault("text", texts.get(d["doc_id"]))
    facts["picked"] = len(picked)
    return picked, ents, facts


def to_task(doc: dict, ents: list[dict], model_version: str) -> dict:
    text = sanitize(doc["text"])[0]  # same length: offsets stay valid, and JSON can carry it
    result = []
    for k, e in enumerate(sorted(ents, key=lambda e: (e["start"], e["end"]))):
        result.append({"id": f"{doc['doc_id']}-{k}"[:64], "from_name": "label", "to_name": "text", "type": "labels",
                       "value": {"start": e["start"], "end": e["end"], "text": text[e["start"]:e["end"]],
                                 "labels": [e["label"]]},
                       "score": round(float(e["score"]), 6)})
    score = _doc_score(ents)
    pred = {"model_version": model_version, "result": result}
    if score is not None:
        pred["score"] = round(float(score), 6)
    return {"data": {"text": text, "doc_id": doc["doc_id"]}, "predictions": [pred]}


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def labeling_config(labels: Sequence[str]) -> str:
    """Label Studio's labeling config XML: each label an attribute value (quoted and escaped by
    ``quoteattr``; characters XML 1.0 cannot hold replaced by U+FFFD), never markup."""
    inner = "".join(f"<Label value={quoteattr(_NOT_XML.sub(chr(0xFFFD), str(l)))}/>" for l in labels)
    return (f'<View><Labels name="label" toName="text">{inner}</Labels>'
            f'<Text name="text" value="$text"/></View>\n')


def model_version(run: dict, ents_by_doc: dict[str, list[dict]]) -> str:
    m = run.get("model") or {}
    if m.get("id"):
        return str(m["id"])
    for rows in ents_by_doc.values():
        if rows:
            return rows[0]["model"]
    return "unknown"


def review(out: str, n: int = 200, strategy: str = "lowest-confidence", seed: int = 0,
           teachers: Sequence[str] = (), dest: str | None = None, pool: int = 2000) -> dict:
    """Write the tasks JSON and the labeling config; returns facts (paths, counts)."""
    out = str(out).rstrip("/")
    run = read_run(out)
    picked, ents, facts = select(out, n, strategy, seed, teachers, pool)
    version = model_version(run, ents)
    tasks = []
    for d in picked:
        task = to_task(d, ents.get(d["doc_id"], []), version)
        if d.get("review_score") is not None:
            task["data"]["review_score"] = d["review_score"]
        tasks.append(task)
    labels = list((run.get("config") or {}).get("model", {}).get("labels") or [])
    for rows in ents.values():
        labels += [e["label"] for e in rows if e["label"] not in labels]
    dest_path = Path(dest) if dest else Path(f"review_{strategy}.json")
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    dest_path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    xml_path = dest_path.with_suffix(".xml")
    xml_path.write_text(labeling_config(labels or ["PER", "LOC", "ORG"]), encoding="utf-8")
    facts.update(tasks=str(dest_path), config=str(xml_path), labels=labels, model_version=version,
                 entities=sum(len(t["predictions"][0]["result"]) for t in tasks))
    return facts
