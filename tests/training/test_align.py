import numpy as np
from tests.tiny import tiny_tokenizer

from extract.text.windows import encode
from training.align import IGNORE, piece_targets, spans_to_token_tags, word_tags


def test_word_tags_split_tokens_continue_the_type():
    text = "the U.S. view"
    tok_starts, tok_tags = [0, 4, 9], ["O", "B-LOC", "O"]
    enc = encode(text, tiny_tokenizer())
    starts, _ = enc.word_spans()
    assert [text[s] for s in starts] == ["t", "U", ".", "S", ".", "v"]
    assert word_tags(starts, tok_starts, tok_tags) == ["O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "O"]


def test_piece_targets_label_first_wordpiece_only():
    word_ids = np.array([0, 0, 1, 2, 2, 2])
    first = np.array([0, 2, 3])
    out = piece_targets(word_ids, first, [5, 0, 1])
    assert out.tolist() == [5, IGNORE, 0, 1, IGNORE, IGNORE]


def test_spans_to_token_tags():
    # tokens: "Peter"(0-5) "Blackburn"(6-15) "of"(16-18) "U.S."(19-23)
    starts, ends = [0, 6, 16, 19], [5, 15, 18, 23]
    ents = [{"label": "PER", "start": 0, "end": 15}, {"label": "LOC", "start": 19, "end": 20}]
    assert spans_to_token_tags(ents, starts, ends) == ["B-PER", "I-PER", "O", "B-LOC"]
