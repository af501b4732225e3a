"""The spaCy component (issue 17): doc.ents from the job's stages, scores in span._.score, offsets
aligned to spaCy tokens (expanded where needed, counted), batched pipe, the entry point, displaCy."""
from __future__ import annotations

import subprocess
import sys

import pytest

spacy = pytest.importorskip("spacy")

from extract.api import Entity, Extractor  # noqa: E402
from extract.spacy_component import STATS, NerBatch, align  # noqa: E402

TEXTS = ["John Smith of Germany said in New York.", "Reuters reported from Bonn and Paris on Monday.",
         "", "the bank of new york said so " * 12]


@pytest.fixture(scope="module")
def nlp(tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("nerbatch", config={"model": str(tiny_model_dir), "labels": None, "batch_size": 2})
    return nlp


def _key(span) -> tuple:
    return span.label_, span.start_char, span.end_char


def test_doc_ents_and_scores_are_the_extractors(nlp, tiny_model_dir):
    ner = Extractor.from_pretrained(str(tiny_model_dir), labels=None)
    found = 0
    for text, want in zip(TEXTS, ner.pipe(TEXTS)):
        doc = nlp(text)
        stats = doc.user_data["nerbatch"]
        assert set(stats) == set(STATS) and stats["entities"] == len(want)
        assert len(doc.ents) == stats["entities"] - stats["dropped"] - stats["overlapping"]
        got = {_key(s): s._.score for s in doc.ents}
        for e in want:  # every entity spaCy's tokens hold as it is: exactly the job's, with its score
            if doc.char_span(e.start, e.end, alignment_mode="strict") is not None and stats["overlapping"] == 0:
                assert got[(e.label, e.start, e.end)] == pytest.approx(e.score)
                found += 1
    assert found > 0


def test_pipe_batches_like_one_by_one(nlp):
    comp = nlp.get_pipe("nerbatch")
    before = dict(comp.stats)
    one = [[(*_key(s), s._.score) for s in nlp(t).ents] for t in TEXTS]
    mid = dict(comp.stats)
    for size in (1, 3, 64):
        docs = list(nlp.pipe(TEXTS, batch_size=size))
        assert [[(*_key(s), s._.score) for s in d.ents] for d in docs] == one
    assert all(comp.stats[k] - mid[k] == 3 * (mid[k] - before[k]) for k in STATS)  # stats add up over docs
    assert comp.stats["entities"] > 0


class _Fixed:
    """An extractor stand-in giving set entities (for counts the random model cannot be made to hit)."""

    def __init__(self, ents):
        self.ents = ents

    def __call__(self, text):
        return list(self.ents)

    def pipe(self, texts, batch_size=64):
        return (list(self.ents) for _ in texts)


TEXT = "Visit NewYorkCity and Bonn today."
ENTS = [Entity("LOC", "YorkCi", 9, 15, 0.9), Entity("LOC", "Bonn", 22, 26, 0.8),
        Entity("ORG", "NewYork", 6, 13, 0.5), Entity("PER", " ", 21, 22, 0.7)]
WANT = [("NewYorkCity", "LOC", 0.9), ("Bonn", "LOC", 0.8)]
WANT_STATS = {"entities": 4, "expanded": 2, "overlapping": 1, "dropped": 1}


def test_a_boundary_inside_a_token_is_expanded_and_counted():
    doc = spacy.blank("en").make_doc(TEXT)
    spans, stats = align(doc, ENTS)
    assert [(s.text, s.label_, s._.score) for s in spans] == WANT
    assert stats == WANT_STATS
    # the higher score wins an overlap whatever the order; an exact span keeps its offsets
    spans, stats = align(doc, [Entity("ORG", "NewYork", 6, 13, 0.5), Entity("LOC", "NewYorkCity", 6, 17, 0.6)])
    assert [(s.text, s.label_, s._.score) for s in spans] == [("NewYorkCity", "LOC", 0.6)]
    assert stats == {"entities": 2, "expanded": 1, "overlapping": 1, "dropped": 0}
    assert align(doc, []) == ([], dict.fromkeys(STATS, 0))


def test_the_component_counts_per_doc_and_over_its_life():
    nlp = spacy.blank("en")
    comp = NerBatch(_Fixed(ENTS), batch_size=2)
    docs = list(comp.pipe(nlp.make_doc(t) for t in [TEXT] * 3)) + [comp(nlp.make_doc(TEXT))]
    for doc in docs:
        assert [(s.text, s.label_, s._.score) for s in doc.ents] == WANT
        assert doc.user_data["nerbatch"] == WANT_STATS
        assert [t.ent_iob_ for t in doc][:3] == ["O", "B", "O"]
    assert comp.stats == {k: 4 * v for k, v in WANT_STATS.items()}


def test_displacy_renders_the_output(nlp):
    doc = nlp(TEXTS[0])
    html = spacy.displacy.render(doc, style="ent")
    assert doc.ents and "<mark" in html and all(span.text in html for span in doc.ents)
    doc = NerBatch(_Fixed(ENTS))(spacy.blank("en").make_doc(TEXT))
    html = spacy.displacy.render(doc, style="ent")
    assert "NewYorkCity" in html and "Bonn" in html and "LOC" in html


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"expected a model folder .* found no such folder. Fix: .*/no/such/model"):
        spacy.blank("en").add_pipe("nerbatch", config={"model": "/no/such/model"})
    with pytest.raises(ValueError, match=r"found a folder without config.json"):
        spacy.blank("en").add_pipe("nerbatch", config={"model": str(tmp_path)})
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"missing model.safetensors"):
        spacy.blank("en").add_pipe("nerbatch", config={"model": str(tmp_path)})


def test_entry_point_registers_the_factory_without_importing_extract(tiny_model_dir, tmp_path):
    code = ("import sys, spacy\n"
            "assert not any(m == 'extract' or m.startswith('extract.') for m in sys.modules)\n"
            "nlp = spacy.blank('en')\n"
            f"nlp.add_pipe('nerbatch', config={{'model': {str(tiny_model_dir)!r}, 'labels': None}})\n"
            "comp = nlp.get_pipe('nerbatch')\n"
            "doc = nlp('John Smith of Germany said in New York.')\n"
            "print(nlp.pipe_names, type(comp).__module__, doc.user_data['nerbatch'])\n")
    # cwd elsewhere: the package is found as installed, not from the checkout on sys.path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "['nerbatch'] extract.spacy_component {'entities':" in out.stdout
