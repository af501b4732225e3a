import pytest

from training.conll import ConllFormatError, doc_text, read_conll, units


def write(tmp_path, text, name="x.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_space_and_tab_and_docstart_anywhere(tmp_path):
    p = write(tmp_path, "EU\tNNP\tB-ORG\nrejects VBZ O\n \t \nPeter NNP B-PER\n-DOCSTART- -X- -X- O\n"
                        "Blackburn NNP B-PER\n\n\n-DOCSTART- -X- O\n")
    docs = read_conll(p)
    assert len(docs) == 2
    assert [s.tokens for s in docs[0].sentences] == [["EU", "rejects"], ["Peter"]]
    assert docs[1].sentences[0].tags == ["B-PER"]
    assert docs[0].sentences[1].line == 4


def test_tag_is_the_last_column(tmp_path):
    docs = read_conll(write(tmp_path, "Peter B-NP I-NP B-PER\n"))
    assert docs[0].sentences[0].tags == ["B-PER"]


def test_iob1_is_converted(tmp_path):
    docs = read_conll(write(tmp_path, "Peter I-PER\nBlackburn I-PER\nsaid O\nEU I-ORG\nUN B-ORG\n"))
    assert docs[0].sentences[0].tags == ["B-PER", "I-PER", "O", "B-ORG", "B-ORG"]


def test_invalid_tag_has_its_line_number(tmp_path):
    with pytest.raises(ConllFormatError, match=r"x.txt:3: invalid tag 'PERSON'"):
        read_conll(write(tmp_path, "a O\n\nPeter PERSON\n"))
    with pytest.raises(ConllFormatError, match=r"x.txt:1: expected at least 2 columns"):
        read_conll(write(tmp_path, "lonely\n"))


def test_doc_text_offsets(tmp_path):
    docs = read_conll(write(tmp_path, "EU B-ORG\nrejects O\n\nPeter B-PER\n"))
    text, starts, ends, tags = doc_text(docs[0].sentences)
    assert text == "EU rejects\nPeter"
    assert [text[s:e] for s, e in zip(starts, ends)] == ["EU", "rejects", "Peter"]
    assert len(units(docs, "sentence")) == 2 and len(units(docs, "document")) == 1


def test_case_variants_keep_tags_and_chat_drops_only_punctuation_outside_entities():
    from training.conll import variant_lines

    lines = ["-DOCSTART- -X- -X- O", "", "U.S. NNP B-NP B-LOC", "troops NNS I-NP O", ", , O O",
             "Smith NNP B-NP B-PER", "'s POS B-NP O", ". . O O", "", "( ( O O", "Acme NNP B-NP B-ORG", "( ( O I-ORG"]
    assert variant_lines(lines, "upper")[2:4] == ["U.S. NNP B-NP B-LOC", "TROOPS NNS I-NP O"]
    chat = variant_lines(lines, "chat")
    assert chat == ["-DOCSTART- -X- -X- O", "", "u.s. NNP B-NP B-LOC", "troops NNS I-NP O", "smith NNP B-NP B-PER",
                    "'s POS B-NP O", "", "acme NNP B-NP B-ORG", "( ( O I-ORG"]
