"""The spaCy component through spaCy's own entry points: its NER scorer in ``spacy evaluate``, the
pipeline saved and loaded, and ``spacy package`` building a package that installs offline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")

from spacy.tokens import Doc, DocBin, Span  # noqa: E402
from spacy.training import Example  # noqa: E402

from tests.helpers import FIXTURES  # noqa: E402

TEXTS = ["John Smith of Germany said in New York.", "Reuters reported from Bonn and Paris on Monday. " * 4,
         "The Bank Of New York Said So In London."]


def _ents(doc) -> list[tuple]:
    return [(e.label_, e.start_char, e.end_char, round(e._.score, 6)) for e in doc.ents]


def _spacy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "spacy", *map(str, args)], capture_output=True, text=True,
                         timeout=300, cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def pipe_dir(tiny_model_dir, tmp_path_factory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("nerbatch", config={"model": str(tiny_model_dir), "labels": None})
    path = tmp_path_factory.mktemp("spacy") / "pipeline"
    nlp.to_disk(path)
    return path


def _gold_copy(doc, ents: list[tuple[str, int, int]]):
    """A reference doc: the same tokens as ``doc``, with the given (label, start, end) token spans."""
    gold = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    gold.ents = [Span(gold, s, e, label=label) for label, s, e in ents]
    return gold


def _graded(nlp) -> tuple[list, dict]:
    """Gold = the pipeline's own predictions with one entity removed (1 false positive) and one
    added on an untagged token (1 false negative): P = R = (n - 1) / n for n predictions."""
    docs = [nlp(t) for t in TEXTS]
    golds = [[(e.label_, e.start, e.end) for e in d.ents] for d in docs]
    n = sum(map(len, golds))
    assert n >= 3, "the tiny random model should tag a few spans"
    first = next(i for i, g in enumerate(golds) if g)
    golds[first] = golds[first][1:]
    free = next((i, t.i) for i, d in enumerate(docs) for t in d if t.ent_iob_ == "O")
    golds[free[0]] = sorted(golds[free[0]] + [("MISC", free[1], free[1] + 1)], key=lambda x: x[1])
    want = {"ents_p": (n - 1) / n, "ents_r": (n - 1) / n, "ents_f": (n - 1) / n}
    return [_gold_copy(d, g) for d, g in zip(docs, golds)], want


def test_the_factory_registers_spacys_ner_scorer(pipe_dir):
    nlp = spacy.load(pipe_dir)
    assert nlp.config["components"]["nerbatch"]["scorer"] == {"@scorers": "spacy.ner_scorer.v1"}
    assert nlp.config["training"]["score_weights"]["ents_f"] == 1.0
    golds, want = _graded(nlp)
    scores = nlp.evaluate([Example(nlp.make_doc(g.text), g) for g in golds])
    assert {k: scores[k] for k in want} == pytest.approx(want)
    assert set(scores["ents_per_type"]) <= {"PER", "LOC", "ORG", "MISC"} and "MISC" in scores["ents_per_type"]


def test_the_pipeline_saves_and_loads_with_the_component(pipe_dir, tmp_path):
    nlp = spacy.load(pipe_dir)
    before = [_ents(d) for d in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    assert again.pipe_names == ["nerbatch"] and [_ents(d) for d in again.pipe(TEXTS)] == before
    assert sum(map(len, before)) > 0


def test_spacy_evaluate_prints_ents_prf_and_per_type(pipe_dir, tmp_path):
    golds, want = _graded(spacy.load(pipe_dir))
    DocBin(docs=golds).to_disk(tmp_path / "gold.spacy")
    out = _spacy("evaluate", pipe_dir, tmp_path / "gold.spacy", "--output", tmp_path / "m.json", cwd=tmp_path)
    assert all(k in out.stdout for k in ("NER P", "NER R", "NER F", "NER (per type)")), out.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {k: metrics[k] for k in want} == pytest.approx(want)
    assert "MISC" in metrics["ents_per_type"]


def test_spacy_convert_then_evaluate_on_a_conll_file(pipe_dir, tmp_path):
    """The user's path: CoNLL-2003 -> .spacy with spaCy's converter -> spacy evaluate. spaCy's
    converter splits documents only at '-DOCSTART- -X- O O' (CoNLL-2003 has '-X- -X- O')."""
    text = (FIXTURES / "tiny_conll.txt").read_text(encoding="utf-8")
    (tmp_path / "dev.txt").write_text(text.replace("-DOCSTART- -X- -X- O", "-DOCSTART- -X- O O"), encoding="utf-8")
    _spacy("convert", tmp_path / "dev.txt", tmp_path, "--converter", "ner", cwd=tmp_path)
    assert len(list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(spacy.blank("en").vocab))) == 2
    out = _spacy("evaluate", pipe_dir, tmp_path / "dev.spacy", "--output", tmp_path / "m.json", cwd=tmp_path)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "NER F" in out.stdout and 0.0 <= metrics["ents_f"] <= 1.0
    assert {"PER", "ORG", "LOC", "MISC"} <= set(metrics["ents_per_type"])  # gold types are all scored


def test_spacy_package_builds_a_package_that_installs_and_loads(pipe_dir, tmp_path):
    """`spacy package --build sdist`: without the `build` module spaCy falls back to `setup.py sdist`,
    which needs no network; pip installs the sdist with --no-build-isolation (setuptools is here)."""
    (tmp_path / "pkg").mkdir()
    _spacy("package", pipe_dir, tmp_path / "pkg", "--name", "tiny_nerbatch", "--version", "0.0.1",
           "--build", "sdist", cwd=tmp_path)
    root = tmp_path / "pkg" / "en_tiny_nerbatch-0.0.1"
    meta = json.loads((root / "meta.json").read_text())
    assert any(r.startswith("nerbatch>=") for r in meta["requirements"]), meta["requirements"]
    sdist = root / "dist" / "en_tiny_nerbatch-0.0.1.tar.gz"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
                          "--target", str(tmp_path / "site"), str(sdist)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    code = ("import json, spacy\n"
            "nlp = spacy.load('en_tiny_nerbatch')\n"
            f"docs = list(nlp.pipe({TEXTS!r}))\n"
            "print(json.dumps([nlp.pipe_names, [[(e.label_, e.start_char, e.end_char, round(e._.score, 6)) "
            "for e in d.ents] for d in docs]]))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr
    names, ents = json.loads(out.stdout.strip().splitlines()[-1])
    want = [_ents(d) for d in spacy.load(pipe_dir).pipe(TEXTS)]
    assert names == ["nerbatch"] and [[tuple(e) for e in d] for d in ents] == want
