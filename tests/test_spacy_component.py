"""The spaCy component (issue 17): doc.ents from the job's stages, scores in span._.score, offsets
aligned to spaCy tokens (expanded where needed, counted), batched pipe, the entry point, displaCy."""
from __future__ import annotations

import subprocess
import sys

import pytest

spacy = pytest.importorskip("spacy")

from extract.api import Entity, Extractor  # noqa: E402
from extract.spacy_component import align  # noqa: E402

TEXTS = ["John Smith of Germany said in New York.", "Reuters reported from Bonn and Paris on Monday.",
         "", "the bank of new york said so " * 12]


@pytest.fixture(scope="module")
def nlp(tiny_model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe("nerbatch", config={"model": str(tiny_model_dir), "labels": None, "batch_size": 2})
    return nlp


def test_doc_ents_and_scores_are_the_extractors(nlp, tiny_model_dir):
    ner = Extractor.from_pretrained(str(tiny_model_dir), labels=None)
    found = 0
    for text, want in zip(TEXTS, ner.pipe(TEXTS)):
        doc = nlp(text)
        stats = doc.user_data["nerbatch"]
        assert stats["entities"] == len(want)
        exact = {(e.start, e.end, e.label): e.score for e in want}
        for span in doc.ents:
            key = (span.start_char, span.end_char, span.label_)
            if key in exact:  # not widened: the job's entity exactly, with its score
                assert span._.score == pytest.approx(exact[key])
                found += 1
        assert len(doc.ents) == stats["entities"] - stats["dropped"] - stats["overlapping"]
    assert found > 0


def test_pipe_batches_like_one_by_one(nlp):
    one = [[(s.start_char, s.end_char, s.label_, s._.score) for s in nlp(t).ents] for t in TEXTS]
    batched = [[(s.start_char, s.end_char, s.label_, s._.score) for s in d.ents] for d in nlp.pipe(TEXTS, batch_size=3)]
    assert batched == one


def test_a_boundary_inside_a_token_is_expanded_and_counted():
    nlp = spacy.blank("en")
    doc = nlp.make_doc("Visit NewYorkCity and Bonn today.")
    ents = [Entity("LOC", "YorkCi", 9, 15, 0.9), Entity("LOC", "Bonn", 22, 26, 0.8),
            Entity("ORG", "NewYork", 6, 13, 0.5), Entity("PER", " ", 21, 22, 0.7)]
    spans, stats = align(doc, ents)
    assert [(s.text, s.label_, s._.score) for s in spans] == [("NewYorkCity", "LOC", 0.9), ("Bonn", "LOC", 0.8)]
    assert stats == {"entities": 4, "expanded": 2, "overlapping": 1, "dropped": 1}


def test_displacy_renders_the_output(nlp):
    doc = nlp(TEXTS[0])
    html = spacy.displacy.render(doc, style="ent")
    assert all(span.text in html for span in doc.ents) and ("<mark" in html or not doc.ents)


def test_missing_model_is_a_clear_error():
    with pytest.raises(Exception, match="expected a model folder"):
        spacy.blank("en").add_pipe("nerbatch", config={"model": "/no/such/model"})


def test_entry_point_registers_the_factory_without_importing_extract(tiny_model_dir):
    code = ("import sys, spacy; nlp = spacy.blank('en'); "
            f"nlp.add_pipe('nerbatch', config={{'model': {str(tiny_model_dir)!r}}}); "
            "print(nlp.pipe_names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "nerbatch" in out.stdout
