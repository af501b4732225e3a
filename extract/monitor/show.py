"""show.html: chosen documents with their entities highlighted by spaCy's displaCy (manual mode).

``python -m extract show OUT [--ids ID ...|--sample N] [--seed S] [--out FILE]``

The output holds no document text, so each chosen document is read again from the input through
the job's own reader: its docs row names its ``shard`` and ``index`` (position in the shard), the
shard is taken from OUT/plan.json and read with extract.io.readers.read_shard under the InputConfig
in run.json, so the text, and the entity offsets into it, are exactly those the job saw.
"""
from __future__ import annotations

import html
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from extract.core import fs, schema
from extract.core.config import ConfigError
from extract.monitor.outputs import read_records
from extract.core.types import InputChanged
from extract.job.summary import table_of
from extract.text.sanitize import sanitize

COLORS = {"PER": "#fca5a5", "LOC": "#93c5fd", "ORG": "#fcd34d", "MISC": "#c4b5fd"}


def choose(docs: pa.Table, ids: list[str] | None, sample: int | None, seed: int = 0) -> tuple[pa.Table, list[str]]:
    """The docs rows to show (status ok, or empty) and the asked ids that were not found."""
    usable = docs.filter(pc.is_in(docs["status"], pa.array(["ok", "empty"])))
    if ids:
        picked = usable.filter(pc.is_in(usable["doc_id"], pa.array(ids, pa.string())))
        found = set(picked["doc_id"].to_pylist())
        order = {d: i for i, d in enumerate(ids)}
        ids_here = picked["doc_id"].to_pylist()  # the chosen rows only (a handful)
        picked = picked.take(pa.array(sorted(range(picked.num_rows), key=lambda i: order[ids_here[i]]), pa.int64()))
        return picked, [i for i in ids if i not in found]
    ok = usable.filter(pc.equal(usable["status"], "ok"))
    n = min(sample or 5, ok.num_rows)
    rows = np.sort(np.random.default_rng(seed).choice(ok.num_rows, size=n, replace=False)) if n else np.zeros(0, int)
    return ok.take(pa.array(rows, pa.int64())), []


def build(out: str, ids: list[str] | None = None, sample: int | None = None,
          seed: int = 0) -> tuple[list[dict], list[str]]:
    """displaCy manual-mode documents (text, ents with label "TYPE 0.97", title, doc_id; all plain
    text: ``render`` escapes) and missing ids."""
    out = os.fspath(out)
    docs = table_of(fs.join(out, "docs"), ["doc_id", "status", "source", "shard", "index", "n_entities"], schema.DOCS)
    picked, missing = choose(docs, ids, sample, seed)
    records = read_records(out, zip(picked["shard"].to_pylist(), picked["index"].to_pylist()))
    ents = table_of(fs.join(out, "entities"), ["doc_id", "label", "text", "start", "end", "score"], schema.ENTITIES)
    ents = ents.filter(pc.is_in(ents["doc_id"], picked["doc_id"])).sort_by([("doc_id", "ascending"),
                                                                              ("start", "ascending")])
    by_doc: dict[str, list[dict]] = {}
    for row in ents.to_pylist():  # only the chosen documents' entities
        by_doc.setdefault(row["doc_id"], []).append(row)
    result = []
    for row in picked.to_pylist():
        text = records[(row["shard"], row["index"])].text or ""
        spans, mismatched = [], 0
        for e in by_doc.get(row["doc_id"], []):
            if text[e["start"]:e["end"]] != e["text"]:
                mismatched += 1
                continue
            spans.append({"start": e["start"], "end": e["end"], "label": f"{e['label']} {e['score']:.2f}"})
        title = f"{row['doc_id']} · {row['source']} · {len(spans)} entities"
        if mismatched:
            title += f" · {mismatched} entities do not match the input text (it changed since the run?)"
        result.append({"text": text, "ents": spans, "title": title, "doc_id": row["doc_id"]})
    return result, missing


def render(documents: list[dict]) -> str:
    """The displaCy page of ``documents`` (plain text titles and labels, as ``build`` makes them).

    displaCy escapes the text (and each entity's text) itself, but puts titles and labels into its
    HTML as they are, so both are escaped here first; colours are ours (COLORS or grey)."""
    from spacy import displacy

    colors, safe = {}, []
    for d in documents:
        ents = []
        for e in d["ents"]:
            label = html.escape(e["label"], quote=True)
            colors[label] = COLORS.get(e["label"].split(" ")[0], "#ddd")
            ents.append({"start": e["start"], "end": e["end"], "label": label})
        safe.append({"text": sanitize(d["text"])[0],  # lone surrogates -> U+FFFD (same length): UTF-8 can hold it
                     "ents": ents, "title": html.escape(sanitize(d["title"])[0], quote=True)})
    return displacy.render(safe, style="ent", manual=True, page=True, jupyter=False, options={"colors": colors})


def main(out: str, ids: list[str] | None, sample: int | None, seed: int, html_out: str | None) -> int:
    try:
        documents, missing = build(out, ids, sample, seed)
    except InputChanged as exc:
        raise ConfigError(str(exc)) from None
    for m in missing:
        print(f"warning: no ok document with id {m!r} in {out}")
    if not documents:
        raise ConfigError("no document to show")
    page = render(documents)
    path = html_out or fs.join(out, "show.html")
    fs.write_bytes_atomic(path, page.encode("utf-8"))
    print(f"show: {path} ({len(documents)} documents: {', '.join(_printable(d['doc_id']) for d in documents)})")
    return 0


def _printable(s: str) -> str:
    """``s`` for a terminal: control characters (escape sequences) shown as \\xNN, not sent."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(s))
