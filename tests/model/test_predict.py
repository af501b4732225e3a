import numpy as np
import pytest

from extract.text.labels import bio_labels
from extract.text.spans import DocProbs, decode

LABELS = bio_labels()


def doc_for(text: str, tags: list[str], p: float = 0.9) -> DocProbs:
    starts, ends, pos = [], [], 0
    for word in text.split():
        s = text.index(word, pos)
        starts.append(s)
        ends.append(s + len(word))
        pos = s + len(word)
    probs = np.full((len(tags), len(LABELS)), (1 - p) / (len(LABELS) - 1), dtype=np.float32)
    for i, t in enumerate(tags):
        probs[i, LABELS.index(t)] = p
    return DocProbs(None, np.array(starts), np.array(ends), probs)


def test_spans_offsets_and_product_score():
    text = "Peter Blackburn went to Bonn"
    ents = decode(doc_for(text, ["B-PER", "I-PER", "O", "O", "B-LOC"]), text, LABELS)
    assert [(e["label"], e["text"], e["start"], e["end"]) for e in ents] == [("PER", "Peter Blackburn", 0, 15),
                                                                             ("LOC", "Bonn", 24, 28)]
    assert ents[0]["score"] == pytest.approx(0.81) and ents[1]["score"] == pytest.approx(0.9)


def test_blank_line_splits_a_span_but_a_wrapped_line_does_not():
    text = "MARATHON OIL\n\nMarathon Oil\nCo said"
    ents = decode(doc_for(text, ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O"]), text, LABELS)
    assert [e["text"] for e in ents] == ["MARATHON OIL", "Marathon Oil\nCo"]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in ents)


def test_keep_filters_labels_and_repair_applies():
    text = "EU said German Bonn"
    doc = doc_for(text, ["B-ORG", "O", "B-MISC", "I-LOC"])
    assert [e["label"] for e in decode(doc, text, LABELS, keep=("PER", "LOC", "ORG"))] == ["ORG"]
    assert [e["text"] for e in decode(doc, text, LABELS, repair="begin", keep=("LOC",))] == ["Bonn"]
    assert decode(DocProbs(None, np.array([]), np.array([]), np.zeros((0, 9))), "", LABELS) == []
