"""Document-level consistency (extract/text/consistency.py): one type per surface string by a
score-weighted vote, and a surname after the full name takes PER; offsets never change."""
from __future__ import annotations

from extract.text.consistency import harmonise


def ent(label: str, text: str, start: int, score: float) -> dict:
    return {"label": label, "text": text, "start": start, "end": start + len(text), "score": score}


def test_one_surface_string_takes_the_type_with_the_most_score():
    ents = [ent("ORG", "Acme", 0, 0.9), ent("PER", "Acme", 50, 0.6), ent("ORG", "Acme", 90, 0.2),
            ent("LOC", "Bonn", 120, 0.8)]
    out = harmonise(ents)
    assert [e["label"] for e in out] == ["ORG", "ORG", "ORG", "LOC"]
    assert [(e["start"], e["end"], e["score"]) for e in out] == [(e["start"], e["end"], e["score"]) for e in ents]


def test_a_tie_is_broken_the_same_way_every_time():
    assert harmonise([ent("PER", "Jordan", 0, 0.5), ent("LOC", "Jordan", 30, 0.5)])[1]["label"] == "LOC"


def test_a_surname_after_the_full_name_takes_per_but_not_before_it():
    ents = [ent("LOC", "Smith", 0, 0.7), ent("PER", "John Smith", 20, 0.9), ent("ORG", "Smith", 60, 0.4),
            ent("ORG", "Smithson", 80, 0.9)]
    out = harmonise(ents)
    # the vote first: "Smith" LOC 0.7 vs ORG 0.4 -> LOC; then the later one-word mention follows the name
    assert [e["label"] for e in out] == ["LOC", "PER", "PER", "ORG"]


def test_nothing_to_harmonise_is_returned_as_is():
    assert harmonise([]) == [] and harmonise([ent("PER", "Ann", 0, 0.3)]) == [ent("PER", "Ann", 0, 0.3)]
