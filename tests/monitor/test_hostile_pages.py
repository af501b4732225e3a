"""Stored script injection: every page the project writes (show.html, report.html with its quality
section, the review tasks JSON and labeling config XML) holds strings from data (document ids,
sources, file and folder names, entity texts, labels, error messages, paths) as text, never as markup.

A real job runs through the CLI on a corpus with hostile ids and texts, a text folder whose folder and
file names are markup, an input folder and an output folder whose names are markup; then ``show``,
``report``, ``review`` and ``quality`` run on it, and on a copy whose tables and run.json were given
hostile labels, entity texts and error messages. Each HTML page is parsed (html.parser): no <script>
(the project writes none), no on* attribute, no element the project does not write (an <img> only as
an embedded PNG plot), no javascript: anywhere in an attribute; and the hostile strings are on the page
as text. displaCy's document text is rebuilt from the parsed page and must equal the input exactly.
"""
from __future__ import annotations

import copy
import json
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.__main__ import main
from extract.core import schema
from tests.helpers import common, run_cli

XSS = "<script>alert(1)</script> Angela Merkel"
ATTR = '"onmouseover=alert(1) x="'
IDS = {  # document id -> text
    '"><script>alert(2)</script>': f"{XSS} met John Smith in New York.",
    "<iframe src=javascript:alert(8)>": f"{ATTR} John Smith of Germany and the bank of New York.",
    "amp&lt;script&gt;<!--": "Already escaped: &lt;script&gt;alert(3)&lt;/script&gt; and ]]> and <!-- in Bonn.",
    "plain": "John Smith said in Germany that the bank of New York grew.",
}
FOLDER = "<b onmouseover=alert(3)>"
FILE = "<img src=x onerror=alert(4)>.txt"
FILE_TEXT = "Reuters said in Germany: <svg onload=alert(5)></svg> John Smith."
IN_DIR = "in<svg onload=alert(5)>"
OUT_DIR = 'out"><svg onload=alert(6)>'
# for the tampered copy: what a model with odd labels or a crafted table could hold
BAD_LABEL = "<img src=x onerror=alert(10)>"
BAD_TEXT = "$\\frac{$ <script>alert(14)</script>"  # mathtext too: a plot label must not parse it
BAD_ERROR = "<script>alert(15)</script> $x^$: bad <img src=x onerror=alert(16)>"
BAD_MODEL = "model<svg onload=alert(17)>"

REPORT_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "nav", "a", "section", "div",
               "img", "table", "tr", "th", "td", "b"}
SHOW_TAGS = {"html", "head", "title", "body", "figure", "h2", "div", "mark", "span", "br"}


class Page(HTMLParser):
    """Every start tag with its attributes, the text of the page, and displaCy's documents rebuilt."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.cells: list[str] = []
        self.titles: list[str] = []
        self.docs: list[str] = []  # displaCy's texts, rebuilt
        self._stack: list[str] = []
        self._cell: list[str] | None = None
        self._title: list[str] | None = None
        self._doc: list[str] | None = None
        self._mark: list[str] | None = None
        self._in_label = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in ("br", "meta", "img"):
            self._stack.append(tag)
        if tag == "td":
            self._cell = []
        elif tag == "h2":
            self._title = []
        elif tag == "div" and (a.get("class") == "entities"):
            self._doc = []
        elif tag == "mark" and self._doc is not None:
            self._mark = []
        elif tag == "span" and self._mark is not None:
            self._in_label = True
            self._mark.append("\0")  # the entity's text ends here
        elif tag == "br" and self._doc is not None:
            self._doc.append("\n")

    def handle_endtag(self, tag):
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell))
            self._cell = None
        elif tag == "h2" and self._title is not None:
            self.titles.append("".join(self._title))
            self._title = None
        elif tag == "span" and self._in_label:
            self._in_label = False
        elif tag == "mark" and self._mark is not None:
            t = "".join(self._mark).split("\0")[0]  # displaCy: "\n    {text}\n    <span>label</span>\n"
            assert t.startswith("\n    ") and t.endswith("\n    "), repr(t)
            self._doc.append(t[5:-5])
            self._mark = None
        elif tag == "div" and self._doc is not None:  # displaCy's entities div holds no other div
            self.docs.append("".join(self._doc))
            self._doc = None

    def handle_data(self, data):
        self.text.append(data)
        for buf in (self._cell, self._title):
            if buf is not None:
                buf.append(data)
        if self._in_label:
            return
        if self._mark is not None:
            self._mark.append(data)
        elif self._doc is not None:
            self._doc.append(data.replace("\n", ""))  # displaCy's own newlines; the text's are <br>

    def handle_comment(self, data):
        raise AssertionError(f"a comment in the page: {data[:80]!r}")  # the project writes none

    def handle_pi(self, data):
        raise AssertionError(f"a processing instruction in the page: {data[:80]!r}")


def parse(path: Path, allowed: set[str]) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    for tag, attrs in page.tags:
        assert tag != "script", f"{path.name}: a <script> element"
        assert tag in allowed, f"{path.name}: <{tag} {attrs}> is not an element the project writes"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{path.name}: <{tag}> has an event handler {name}={value!r}"
            assert "javascript:" not in (value or "").lower(), f"{path.name}: <{tag} {name}={value!r}>"
        if tag == "img":
            assert set(attrs) == {"alt", "src"} and attrs["alt"] == "plot", attrs
            assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:60]
        if tag == "a":
            assert set(attrs) == {"href"} and attrs["href"].startswith("#"), attrs
    return page


def text_of(page: Page) -> str:
    return "".join(page.text)


def write_corpus(root: Path) -> tuple[Path, dict[str, str]]:
    """The input folder (its own name markup) and the expected texts by document id."""
    src = root / IN_DIR
    src.mkdir(parents=True)
    (src / "docs.jsonl").write_text("".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n"
                                            for k, v in IDS.items()), encoding="utf-8")
    texts = dict(IDS)
    try:
        (src / FOLDER).mkdir()
        (src / FOLDER / FILE).write_text(FILE_TEXT, encoding="utf-8")
        texts[f"{FOLDER}/{FILE}"] = FILE_TEXT
    except OSError:  # a filesystem that refuses these characters: the jsonl ids still carry them
        pass
    return src, texts


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_model_dir) -> dict:
    root = tmp_path_factory.mktemp("hostile")
    src, texts = write_corpus(root)
    out = root / OUT_DIR
    assert run_cli(*common(tiny_model_dir, out, "local"), "--set", f"input.path={src}",
                   "--set", "input.text_columns=[text]", "--show", "0") == 0
    docs = pq.read_table(out / "docs").to_pylist()
    assert {d["doc_id"] for d in docs} == set(texts) and {d["status"] for d in docs} == {"ok"}
    return {"root": root, "src": src, "out": out, "texts": texts, "docs": docs}


def ents_of(out: Path) -> list[dict]:
    return pq.read_table(out / "entities").to_pylist()


def check_show(out: Path, texts: dict[str, str], page_path: Path) -> Page:
    assert main(["show", str(out), "--ids", *texts, "--out", str(page_path)]) == 0
    page = parse(page_path, SHOW_TAGS)
    assert page.docs == list(texts.values())  # displaCy's text, escaped by it, reads back exactly
    assert len(page.titles) == len(texts)
    sources = {d["doc_id"]: d["source"] for d in pq.read_table(out / "docs").to_pylist()}
    for title, doc_id in zip(page.titles, texts):
        assert title.startswith(f"{doc_id} · {sources[doc_id]} · "), title  # the title as text
    return page


def test_show_page_holds_ids_sources_and_texts_as_text(job, tmp_path):
    page = check_show(job["out"], job["texts"], tmp_path / "show.html")
    titles, docs = " ".join(page.titles), " ".join(page.docs)  # marks split the text: rebuilt in page.docs
    for s in (XSS, ATTR, "&lt;script&gt;alert(3)", FILE_TEXT):
        assert s in docs
    for s in (IN_DIR, *job["texts"]):
        assert s in titles
    if f"{FOLDER}/{FILE}" in job["texts"]:
        assert FOLDER in titles and FILE in titles
    raw = (tmp_path / "show.html").read_text(encoding="utf-8")
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in raw and "&amp;lt;script&amp;gt;" in raw  # escaped
    n_marks = sum(1 for t, _ in page.tags if t == "mark")
    assert n_marks == sum(1 for e in ents_of(job["out"]) if e["doc_id"] in job["texts"])


def test_report_page_holds_paths_and_entity_texts_as_text(job):
    out = job["out"]
    assert main(["report", str(out)]) == 0
    page = parse(out / "report.html", REPORT_TAGS)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    whole = text_of(page)
    assert str(out) in whole  # the output folder's name is markup: on the page as text
    for label, top in data["top_entities"].items():
        for text, _, _ in top:
            assert text in page.cells, (label, text)


def test_review_tasks_and_config_carry_data_as_values(job, tmp_path):
    dest = tmp_path / "rev<svg onload=alert(9)>" / "tasks.json"
    assert main(["review", str(job["out"]), "--n", "50", "--strategy", "random", "--out", str(dest)]) == 0
    tasks = json.loads(dest.read_text(encoding="utf-8"))
    assert {t["data"]["doc_id"] for t in tasks} == set(job["texts"])
    for t in tasks:
        assert t["data"]["text"] == job["texts"][t["data"]["doc_id"]]
        for r in t["predictions"][0]["result"]:
            v = r["value"]
            assert t["data"]["text"][v["start"]:v["end"]] == v["text"]
    root = ET.fromstring(dest.with_suffix(".xml").read_text(encoding="utf-8"))
    assert root.tag == "View" and [c.tag for c in root] == ["Labels", "Text"]
    assert all(c.tag == "Label" and set(c.attrib) == {"value"} for c in root[0])
    assert [c.get("value") for c in root[0]] == ["PER", "LOC", "ORG", "MISC"]


@pytest.fixture(scope="module")
def tampered(job, tmp_path_factory) -> dict:
    """A copy of the job's output whose tables and run.json hold hostile labels, entity texts, error
    messages and a hostile model id (a crafted table, or a model with odd label names)."""
    out = tmp_path_factory.mktemp("tampered") / f"{OUT_DIR}2"
    shutil.copytree(job["out"], out)
    for name in ("show.html", "report.html", "report.json"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "stats")  # the shards' numbers then come from their (tampered) parts
    first, bad_doc = '"><script>alert(2)</script>', "<iframe src=javascript:alert(8)>"
    assert any(e["doc_id"] == first for e in ents_of(out)), "the tiny model should find something in it"
    for part in sorted((out / "docs").glob("part-*.parquet")):  # each shard's parts rewritten in place
        docs = pq.read_table(part).to_pylist()
        ents_part = out / "entities" / part.name
        ents = pq.read_table(ents_part).to_pylist() if ents_part.is_file() else []
        for d in docs:
            if d["doc_id"] == bad_doc:
                d.update(status="error", error=BAD_ERROR, n_entities=0)
            if d["doc_id"] == "plain":  # a crafted span that does not slice the text
                ents.append({"doc_id": "plain", "label": BAD_LABEL, "text": BAD_TEXT, "start": 0, "end": 3,
                             "score": 0.5, "model": "m"})
        for e in ents:
            if e["doc_id"] == first:
                e["label"] = BAD_LABEL
        ents = [e for e in ents if e["doc_id"] != bad_doc]  # an error row has no entities
        pq.write_table(pa.Table.from_pylist(docs, schema=schema.DOCS), part)
        pq.write_table(pa.Table.from_pylist(ents, schema=schema.ENTITIES), ents_part)
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    run["config"]["model"]["labels"] = ["PER", "LOC", "ORG", "MISC", BAD_LABEL]
    run.setdefault("model", {})["id"] = BAD_MODEL
    (out / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return {"out": out, "first": first, "bad_doc": bad_doc}


def test_tampered_output_pages_escape_labels_texts_errors(job, tampered, tmp_path):
    out = tampered["out"]
    texts = {k: v for k, v in job["texts"].items() if k != tampered["bad_doc"]}
    page = check_show(out, texts, tmp_path / "show.html")
    whole = text_of(page)
    assert f"{BAD_LABEL} 0." in whole  # the label beside each of the first document's entities, as text
    assert "1 entities do not match the input text" in whole  # the crafted span does not slice the text

    # review: the hostile label is an attribute value of the XML, the model id a JSON string
    dest = tmp_path / "tasks.json"
    assert main(["review", str(out), "--n", "50", "--strategy", "random", "--out", str(dest)]) == 0
    tasks = json.loads(dest.read_text(encoding="utf-8"))
    assert {t["predictions"][0]["model_version"] for t in tasks} == {BAD_MODEL}
    root = ET.fromstring(dest.with_suffix(".xml").read_text(encoding="utf-8"))
    assert [c.get("value") for c in root[0]] == ["PER", "LOC", "ORG", "MISC", BAD_LABEL]
    assert len(list(root.iter())) == 1 + 1 + 5 + 1  # View, Labels, 5 Label, Text: nothing from data

    # quality from an export of those tasks (annotations = predictions, hostile label included)
    export = []
    for i, t in enumerate(tasks):
        export.append({"id": i + 1, "data": t["data"], "predictions": t["predictions"],
                       "annotations": [{"id": i + 1, "result": copy.deepcopy(t["predictions"][0]["result"])}]})
    exp = tmp_path / "exp<svg onload=alert(12)>.json"
    exp.write_text(json.dumps(export), encoding="utf-8")
    assert main(["quality", str(out), "--export", str(exp), "--history", str(tmp_path / "h.jsonl")]) == 0
    assert main(["quality", str(out), "--export", str(exp), "--history", str(tmp_path / "h.jsonl")]) == 0
    q = json.loads((out / "quality.json").read_text(encoding="utf-8"))
    assert BAD_LABEL in q["labels"] and q["counts"]["dropped_spans"] == 0

    assert main(["report", str(out)]) == 0
    page = parse(out / "report.html", REPORT_TAGS)
    whole = text_of(page)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert BAD_TEXT in [x[0] for x in data["top_entities"][BAD_LABEL]]
    for s in (BAD_LABEL, BAD_TEXT, BAD_ERROR.split(":")[0], str(out), BAD_MODEL, str(exp)):
        assert s in whole, s
    assert BAD_LABEL in page.cells and BAD_TEXT in page.cells and BAD_ERROR.split(":")[0] in page.cells
    sections = [a.get("id") for t, a in page.tags if t == "section"]
    assert "quality" in sections and any(t == "img" for t, _ in page.tags)
