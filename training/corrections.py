"""Human corrections from Label Studio -> gold training examples.

``python -m training corrections EXPORT.json --out FILE.jsonl`` turns a Label Studio JSON export
(a list of tasks, each with ``data.text`` and ``annotations: [{"result": [...]}]``) into the
corrections file the training side reads: JSON lines, one corrected document per line,

    {"doc_id": "...", "text": "...", "spans": [[start, end, "LABEL"], ...]}

with Python character offsets (code points) into ``text``. The export is read by
``extract.monitor.labelstudio.from_label_studio`` (the one reader, shared with ``python -m extract
quality``): per task the latest annotation that is not cancelled counts; a task without one is left
out (not reviewed: its predictions are not gold); a task whose annotator removed every span is kept
with ``"spans": []``: "no entity here" is a correction too; offsets that are not code points
(UTF-16 offsets of some Label Studio versions) are repaired.

What is written is checked: each span's label must be one of the target model's entity types
(``--model DIR``: the B-/I- tags of its config.json id2label; or ``--labels PER,LOC,...``; default
PER, LOC, ORG, MISC, and the summary says which), since a label the model lacks would become O in
training and teach that the span is *not* an entity; offsets must be integers (not booleans) with
``0 <= start < end <= len(text)``; a given ``value.text`` must equal the slice. Anything else is
dropped and counted by reason in the printed summary (``dropped``, ``unknown_labels``; reasons in
extract/monitor/labelstudio.py). A file that is not a Label Studio export (not JSON, nested deeper
than 64 levels, not a list of tasks, a task or its parts of the wrong JSON type) is exit 2 with one
line and nothing written.

In training (``data.corrections``, ``data.corrections_weight``), every document becomes gold
windows exactly as the silver path aligns words: the text is encoded with extract's ``encode``,
the words' character offsets (``word_spans``) get B-/I- tags from the spans they overlap, and the
tag goes on each word's first wordpiece. The weight is a repetition count: each document's windows
appear ``floor(w)`` times plus once more for a seeded fraction ``w - floor(w)`` of documents
(0 leaves corrections out).
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from extract.monitor.labelstudio import from_label_studio, load_export, read_tasks  # noqa: F401 (re-exported)
from extract.text.labels import DEFAULT_TYPES
from extract.text.windows import encode
from training.align import piece_targets
from training.augment import CaseAugment
from training.examples import Example, windowed


def model_types(model_dir: str | Path) -> list[str]:
    """The entity types of a model directory: the B-/I- tags of config.json's id2label, in order."""
    from extract.model.loaded import labels_settings

    from extract.text.labels import entity_types

    tags, _ = labels_settings(Path(model_dir))
    types = entity_types(tags)
    if not types:
        raise ValueError(f"{Path(model_dir) / 'config.json'}: no BIO labels in id2label (found {tags}); expected "
                         "tags like B-PER, I-PER.")
    return list(dict.fromkeys(types))


def parse_labels(text: str) -> list[str]:
    """``PER,LOC,ORG`` -> the list (blanks dropped, duplicates once); ValueError when empty."""
    labels = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not labels:
        raise ValueError(f"--labels: expected entity types like PER,LOC,ORG,MISC, found {text!r}")
    return labels


def convert(export: str | Path, dest: str | Path, labels: Sequence[str] | None = None, labels_from: str = "") -> dict:
    """Read and check the export, write the corrections file; the summary (counts by reason).
    ``labels``: the target model's entity types (default PER, LOC, ORG, MISC)."""
    if labels is None:
        labels, labels_from = list(DEFAULT_TYPES), f"default ({', '.join(DEFAULT_TYPES)}; pass --model DIR or --labels)"
    records, facts = read_tasks(load_export(export), labels)
    write_corrections(records, dest)
    facts["labels_from"] = labels_from or "given"
    facts["out"] = str(dest)
    return facts


def write_corrections(records: list[dict], dest: str | Path) -> None:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_corrections(paths: Sequence[str | Path]) -> list[dict]:
    out = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                r = json.loads(line)
                text, spans = r.get("text"), r.get("spans")
                if not isinstance(text, str) or not isinstance(spans, list):
                    raise ValueError(f"{p}:{lineno}: expected {{\"text\": str, \"spans\": [[start, end, label], ...]}}")
                for s in spans:
                    if not (len(s) == 3 and 0 <= s[0] < s[1] <= len(text)):
                        raise ValueError(f"{p}:{lineno}: bad span {s!r} for a text of {len(text)} characters")
                out.append(r)
    return out


def word_tags_from_spans(word_starts: np.ndarray, word_ends: np.ndarray, spans: Sequence[Sequence],
                         types: Sequence[str]) -> list[str]:
    """BIO per word: a word overlapping a span takes its type (B- on the span's first word);
    a word already tagged keeps the first span; types outside ``types`` become O."""
    tags = ["O"] * len(word_starts)
    ws, we = np.asarray(word_starts), np.asarray(word_ends)
    for start, end, label in sorted(spans, key=lambda s: (s[0], s[1])):
        if label not in types:
            continue
        hit = [i for i in np.flatnonzero((ws < end) & (we > start)) if tags[i] == "O"]
        for k, i in enumerate(hit):
            tags[i] = ("B-" if k == 0 else "I-") + label
    return tags


def correction_examples(records: Sequence[dict], tokenizer, label2id: dict[str, int], types: Sequence[str],
                        max_length: int, stride: int, weight: float = 1.0, seed: int = 0,
                        augment: Optional[CaseAugment] = None) -> list[Example]:
    if weight < 0:
        raise ValueError(f"data.corrections_weight: expected >= 0, found {weight}")
    rng = random.Random(seed)
    whole, frac = int(math.floor(weight)), weight - math.floor(weight)
    out: list[Example] = []
    for r in records:
        copies = whole + (1 if frac and rng.random() < frac else 0)
        if not copies:
            continue
        enc = encode(r["text"], tokenizer)
        if not len(enc.ids):
            continue
        starts, ends = enc.word_spans()
        tags = word_tags_from_spans(starts, ends, r["spans"], types)
        targets = piece_targets(enc.word_ids, enc.word_first_piece(), [label2id[t] for t in tags])
        out += windowed(r["text"], enc, tokenizer, max_length, stride, augment or CaseAugment(), targets) * copies
    return out
