"""Document-level consistency of entity types (``ner_settings.consistency``; off unless a model's
release measured a dev F1 gain with it).

A window sees ~100 wordpieces, so one document can call "Acme" an ORG in one paragraph and a PER
in the next, or tag "Smith" LOC after "John Smith" was a PER. Two rules, applied to one
document's decoded entities (pure Python, offsets untouched, only labels change):

1. one surface string, one type: every mention of the same text takes the type with the largest
   sum of scores over its mentions (ties: the alphabetically first type, so the rule is stable);
2. a later one-word mention of a word of an earlier multi-word PER name (the surname after the
   full name) takes PER.
"""
from __future__ import annotations

from collections import defaultdict


def harmonise(entities: list[dict]) -> list[dict]:
    """Entity dicts (label, text, start, end, score, ...) with labels made consistent; same order."""
    if len(entities) < 2:
        return entities
    votes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in entities:
        votes[e["text"]][e["label"]] += float(e["score"])
    winner = {text: min(v.items(), key=lambda kv: (-kv[1], kv[0]))[0] for text, v in votes.items()}
    out = [{**e, "label": winner[e["text"]]} for e in entities]
    first_name_word: dict[str, int] = {}  # a word of a multi-word PER name -> where that name starts
    for e in sorted(out, key=lambda x: x["start"]):
        words = e["text"].split()
        if e["label"] == "PER" and len(words) > 1:
            for w in words:
                first_name_word.setdefault(w, e["start"])
    for e in out:
        start = first_name_word.get(e["text"])
        if start is not None and start < e["start"] and " " not in e["text"]:
            e["label"] = "PER"
    return out
