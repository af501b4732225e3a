import pytest

from extract.text import labels as bio
from extract.text.labels import Span


def test_label_order():
    assert bio.bio_labels(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.mark.parametrize("tags, drop, begin", [
    (["O", "I-PER", "I-PER", "O"], ["O", "O", "O", "O"], ["O", "B-PER", "I-PER", "O"]),
    (["I-LOC"], ["O"], ["B-LOC"]),  # I- at the very start
    (["B-PER", "I-LOC", "I-LOC"], ["B-PER", "O", "O"], ["B-PER", "B-LOC", "I-LOC"]),  # type change inside a span
    (["B-ORG", "I-ORG", "B-ORG"], ["B-ORG", "I-ORG", "B-ORG"], ["B-ORG", "I-ORG", "B-ORG"]),
    ([], [], []),
])
def test_repair(tags, drop, begin):
    assert bio.repair(tags, "drop") == drop
    assert bio.repair(tags, "begin") == begin


def test_spans_entity_at_end_and_adjacent():
    tags = ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert bio.spans(tags) == [Span("PER", 0, 1), Span("PER", 2, 2), Span("LOC", 4, 4)]


def test_spans_stray_inside_after_o_dropped_or_begun():
    tags = ["O", "I-ORG", "I-ORG"]
    assert bio.spans(tags, "drop") == []
    assert bio.spans(tags, "begin") == [Span("ORG", 1, 2)]


def test_invalid_tag_raises():
    with pytest.raises(ValueError, match="Invalid BIO tag"):
        bio.split_tag("PER")


def test_iob1_to_iob2():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    assert bio.is_iob1(iob1)
    assert bio.iob1_to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert not bio.is_iob1(["B-PER", "I-PER", "O"])
