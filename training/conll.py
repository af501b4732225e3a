"""Read CoNLL-like files as they come.

Tag in the last column; columns split on spaces or tabs; ``-DOCSTART-`` lines wherever they stand
start a new document; blank or whitespace-only lines end a sentence; IOB1 files are converted to
IOB2. An invalid tag fails with its file and line number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from extract.text import labels as bio

VARIANTS = ("lower", "upper", "title", "chat")  # scripts/case_variants.py, scripts/frontier_table.py --variants


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    line: int  # 1-based line of the first token, for error messages


@dataclass
class Document:
    sentences: list[Sentence] = field(default_factory=list)


class ConllFormatError(ValueError):
    pass


def _check_tag(tag: str, path: Path, lineno: int) -> None:
    try:
        bio.split_tag(tag)
    except ValueError:
        raise ConllFormatError(
            f"{path}:{lineno}: invalid tag {tag!r} in the last column. Expected 'O', 'B-TYPE' or "
            "'I-TYPE' (IOB1 or IOB2); check the column separator and that the tag is last.") from None


def read_conll(path: str | Path) -> list[Document]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file not found: {path}")
    docs: list[Document] = [Document()]
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def end_sentence() -> None:
        nonlocal tokens, tags
        if tokens:
            docs[-1].sentences.append(Sentence(tokens, tags, first_line))
        tokens, tags = [], []

    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                end_sentence()
                continue
            if cols[0] == "-DOCSTART-":
                end_sentence()
                if docs[-1].sentences:
                    docs.append(Document())
                continue
            if len(cols) < 2:
                raise ConllFormatError(
                    f"{path}:{lineno}: expected at least 2 columns (token ... tag), found {line.strip()!r}.")
            _check_tag(cols[-1], path, lineno)
            if not tokens:
                first_line = lineno
            tokens.append(cols[0])
            tags.append(cols[-1])
    end_sentence()
    docs = [d for d in docs if d.sentences]
    all_sents = [s for d in docs for s in d.sentences]
    if any(bio.is_iob1(s.tags) for s in all_sents):
        for s in all_sents:
            s.tags = bio.iob1_to_iob2(s.tags)
    return docs


def doc_text(sentences: list[Sentence]) -> tuple[str, list[int], list[int], list[str]]:
    """Gold tokens joined into text (space between tokens, newline between sentences).

    Returns the text and, per token, its char start, end and tag.
    """
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    tags: list[str] = []
    pos = 0
    for i, sent in enumerate(sentences):
        if i:
            parts.append("\n")
            pos += 1
        for j, (tok, tag) in enumerate(zip(sent.tokens, sent.tags)):
            if j:
                parts.append(" ")
                pos += 1
            parts.append(tok)
            starts.append(pos)
            ends.append(pos + len(tok))
            tags.append(tag)
            pos += len(tok)
    return "".join(parts), starts, ends, tags


def units(docs: list[Document], context: str) -> list[list[Sentence]]:
    """What one model input covers: a whole document, or one sentence."""
    if context == "document":
        return [d.sentences for d in docs]
    return [[s] for d in docs for s in d.sentences]


def conll_dataset(path: str | Path):
    """A CoNLL file as a ``datasets.Dataset``: one row per sentence with its document number, sentence
    number inside the document, first line, tokens and NER tags as strings (IOB2, as ``read_conll``)."""
    import datasets

    rows: dict[str, list] = {"doc": [], "sentence": [], "line": [], "tokens": [], "ner_tags": []}
    for d, doc in enumerate(read_conll(path)):
        for s, sent in enumerate(doc.sentences):
            for key, value in zip(rows, (d, s, sent.line, sent.tokens, sent.tags)):
                rows[key].append(value)
    features = datasets.Features({"doc": datasets.Value("int32"), "sentence": datasets.Value("int32"),
                                  "line": datasets.Value("int32"), "tokens": datasets.List(datasets.Value("string")),
                                  "ner_tags": datasets.List(datasets.Value("string"))})
    return datasets.Dataset.from_dict(rows, features=features)


def conll_documents(dataset) -> list[Document]:
    """Rows of ``conll_dataset`` (in order) back into documents, for ``units``/``gold_examples``."""
    docs: list[Document] = []
    last = None
    for row in dataset:
        if row["doc"] != last:
            docs.append(Document())
            last = row["doc"]
        docs[-1].sentences.append(Sentence(list(row["tokens"]), list(row["ner_tags"]), row["line"]))
    return docs


def _punctuation(token: str) -> bool:
    import unicodedata

    return all(unicodedata.category(c).startswith(("P", "S")) for c in token)


def variant_lines(lines: list[str], mode: str) -> list[str]:
    """A CoNLL file's lines with every token re-cased (``lower``, ``upper``, ``title``: the training
    augmentation's ``recase``), or ``chat``: lower case with the tokens that are only punctuation
    dropped where their tag is O (an entity's own stay). Gold tags unchanged."""
    from training.augment import recase

    out = []
    for line in lines:
        token, sep, rest = line.partition(" ")
        if not token or token == "-DOCSTART-":
            out.append(line)
        elif mode == "chat":
            if not (_punctuation(token) and rest.split()[-1] == "O"):
                out.append(recase(token, "lower") + sep + rest)
        else:
            out.append(recase(token, mode) + sep + rest)
    return out
