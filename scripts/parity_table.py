"""CoNLL dev F1 of one model through every front end: the parity table (docs/parity.md).

    python scripts/parity_table.py            # data/models/default on ../shared/data/conll2003/valid.txt
    python scripts/parity_table.py --model M --data FILE --out docs/parity.md

Prints the table and writes it, with the command, machine and date. Every row but spaCy's is scored
the same way: its entities (character offsets) put back on the gold tokens and scored by seqeval,
strict IOB2, all four types (training/evaluate.py's ``scores``). spaCy's row is what
``python -m spacy evaluate`` prints for a pipeline holding the ``nerbatch`` component, on
``python -m spacy convert`` of the same file. Equality columns compare entities (label and offsets)
with Extractor's in the same context; two ablation rows measure what the plain pipeline loses.
A row that fails is printed as FAILED and the script exits 1. Eleven passes over dev, on the CPU:
about 7-8 minutes on this project's 2 cores while two training runs share them (the plain
pipeline's float16 passes are the slowest); the page records each run's time and load.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from training.align import spans_to_token_tags  # noqa: E402
from training.conll import Document, doc_text, read_conll, units  # noqa: E402
from training.evaluate import scores  # noqa: E402

Spans = list[tuple[str, int, int]]  # (label, start, end) per entity of one text


@dataclass
class Dev:
    """The dev file as texts in one context, with what scoring needs to go back to gold tokens."""

    texts: list[str]
    starts: list[list[int]]
    ends: list[list[int]]
    gold: list[list[str]]
    sent_lens: list[list[int]]

    @classmethod
    def of(cls, docs: list[Document], context: str) -> "Dev":
        dev = cls([], [], [], [], [])
        for unit in units(docs, context):
            text, s, e, tags = doc_text(unit)  # tokens joined by spaces, sentences by newlines
            dev.texts.append(text)
            dev.starts.append(s)
            dev.ends.append(e)
            dev.gold.append(tags)
            dev.sent_lens.append([len(sent.tokens) for sent in unit])
        return dev

    def score(self, found: list[Spans]) -> dict:
        y_true, y_pred = [], []
        for gold, lens, s, e, ents in zip(self.gold, self.sent_lens, self.starts, self.ends, found):
            pred = spans_to_token_tags([{"label": l, "start": a, "end": b} for l, a, b in ents], s, e)
            k = 0
            for n in lens:  # back to sentences, as seqeval sees them in training.evaluate
                y_true.append(gold[k:k + n])
                y_pred.append(pred[k:k + n])
                k += n
        return scores(y_true, y_pred)


@dataclass
class Row:
    name: str
    context: str
    how: str
    f1: float | None = None
    f1_plo: float | None = None
    seconds: float = 0.0
    same: str = ""  # entities equal to Extractor's?
    note: str = ""
    extra: dict = field(default_factory=dict)


# -- the front ends: each returns entities per text --------------------------------------------------

def extractor(model: str) -> Callable[[list[str]], list[Spans]]:
    from extract.api import Extractor

    ner = Extractor.from_pretrained(model, labels=None)  # all four types; the job's default funnel
    # One chunk for all texts: windows are sorted by length over the whole file, as in training.evaluate.
    return lambda texts: [[(e.label, e.start, e.end) for e in ents] for ents in ner.pipe(texts, batch_size=len(texts))]


def hf_class(model: str):
    from transformers import pipeline

    from extract.hf_pipeline import NerbatchPipeline

    return pipeline("token-classification", model=model, pipeline_class=NerbatchPipeline)


def hf_plain(model: str, dtype: str = "auto"):
    from transformers import pipeline

    # What a Hugging Face user types (dtype "auto": float16 weights, as config.json says).
    return pipeline("token-classification", model=model, aggregation_strategy="simple", dtype=dtype)


def entities(pipe, texts: list[str]) -> list[Spans]:
    """HF batches in input order and pads to the longest: call longest first, give back in order."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = dict(zip(order, pipe([texts[i] for i in order], batch_size=32)))
    return [[(e["entity_group"], int(e["start"]), int(e["end"])) for e in out[i]] for i in range(len(texts))]


def reference(model: str, docs: list[Document], context: str) -> dict:
    """What `python -m training evaluate --context CONTEXT` computes (no funnel, its default)."""
    from extract.model.load import load
    from training.evaluate import evaluate_loaded

    return evaluate_loaded(load(model), docs, context)[0]


def batch_job(model: str, dev: Dev, work: Path) -> list[Spans]:
    """`python -m extract run`, runner local, one JSON line per dev document; entities from its Parquet."""
    import pyarrow.dataset as pads

    src = work / "dev.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(dev.texts)))
    sets = {"runner": "local", "input.path": str(src), "input.text_columns": "[text]", "model.path": model,
            "model.labels": "[PER, LOC, ORG, MISC]", "output.path": str(work / "job"), "show_progress": "false",
            "inference.threads": "2"}
    cmd = [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml")]
    cmd += [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]
    _run(cmd)
    found: list[Spans] = [[] for _ in dev.texts]
    for r in pads.dataset(str(work / "job" / "entities")).to_table().to_pylist():
        found[int(r["doc_id"])].append((r["label"], r["start"], r["end"]))
    return [sorted(f, key=lambda x: x[1]) for f in found]


def spacy_evaluate(model: str, data: Path, work: Path) -> dict:
    """`spacy convert` of the dev file, then `spacy evaluate` of a blank-English pipeline holding nerbatch.
    spaCy's converter splits documents only at '-DOCSTART- -X- O O'; CoNLL-2003 writes
    '-DOCSTART- -X- -X- O', which it would keep as a token and group 10 sentences a doc instead."""
    import spacy

    text = data.read_text(encoding="utf-8").replace("-DOCSTART- -X- -X- O", "-DOCSTART- -X- O O")
    (work / "dev.txt").write_text(text, encoding="utf-8")
    _run([sys.executable, "-m", "spacy", "convert", str(work / "dev.txt"), str(work), "--converter", "ner"])
    nlp = spacy.blank("en")
    nlp.add_pipe("nerbatch", config={"model": str(Path(model).resolve()), "labels": None})
    nlp.to_disk(work / "pipeline")
    _run([sys.executable, "-m", "spacy", "evaluate", str(work / "pipeline"), str(work / "dev.spacy"),
          "--output", str(work / "spacy.json")])
    return json.loads((work / "spacy.json").read_text())


def spacy_decomposition(dev: Dev, found: list[Spans]) -> dict:
    """From Extractor's document entities to `spacy evaluate`'s number, without a model run.
    `spacy evaluate` keeps the converter's tokens (its Docs have unknown spaces, so spaCy's Corpus
    does not re-tokenise): the component aligns to the CoNLL tokens, and the scorer counts whole
    documents where training.evaluate counts sentences."""
    from spacy.lang.en import English
    from spacy.scorer import get_ner_prf
    from spacy.tokens import Doc
    from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo

    from extract.api import Entity
    from extract.spacy_component import STATS, align

    vocab, examples, total = English().vocab, [], dict.fromkeys(STATS, 0)
    for text, s, e, gold, ents in zip(dev.texts, dev.starts, dev.ends, dev.gold, found):
        words = [text[a:b] for a, b in zip(s, e)]  # joined by single spaces / newlines: same offsets
        ref, pred = Doc(vocab, words=words), Doc(vocab, words=words)
        ref.ents = biluo_tags_to_spans(ref, iob_to_biluo(gold))
        pred.ents, stats = align(pred, [Entity(l, text[a:b], a, b, 1.0) for l, a, b in ents])
        total = {k: total[k] + stats[k] for k in STATS}
        examples.append(Example(pred, ref))
    whole = Dev(dev.texts, dev.starts, dev.ends, dev.gold, [[sum(n)] for n in dev.sent_lens])
    crossing = [text[a:b].replace("\n", " / ") for text, ents in zip(dev.texts, found) for _, a, b in ents
                if "\n" in text[a:b]]
    return {"alignment": total, "crossing": crossing, "seqeval_whole_docs": whole.score(found)["f1"],
            "spacy_scorer": get_ner_prf(examples)["ents_f"]}


def _run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(cmd[1:4])} ...` exited {out.returncode}: {' | '.join(tail)}")


def _same(a: list[Spans], b: list[Spans]) -> str:
    diff = sum(len(set(x) ^ set(y)) for x, y in zip(a, b))
    return "identical" if diff == 0 else f"{diff} of {sum(map(len, b))} differ"


# -- the table ---------------------------------------------------------------------------------------

def measure(model: str, data: Path, work: Path) -> tuple[list[Row], dict]:
    docs = read_conll(data)
    dev = {c: Dev.of(docs, c) for c in ("document", "sentence")}
    rows: list[Row] = []
    found: dict[str, list[Spans]] = {}

    def add(row: Row, run: Callable[[], dict | list[Spans]], key: str = "", same_as: str = "") -> None:
        t0 = time.perf_counter()
        try:
            out = run()
            if isinstance(out, list):  # entities per text: scored on the gold tokens here
                found[key] = out
                row.same = _same(out, found[same_as]) if same_as else ""
                out = dev[row.context].score(out)
            row.f1, row.f1_plo, row.extra = out.get("f1", out.get("ents_f")), out.get("f1_plo"), out
        except Exception as exc:  # noqa: BLE001 - a failed row is reported, the others still run
            row.note = f"FAILED: {type(exc).__name__}: {exc}"
        row.seconds = time.perf_counter() - t0
        rows.append(row)
        print(f"  {row.name} ({row.context}): F1 {_pct(row.f1)} {row.same} {row.note}", file=sys.stderr, flush=True)

    for c in ("document", "sentence"):
        add(Row(f"`python -m training evaluate --context {c}`", c, "reference: the model card's path, no funnel"),
            lambda c=c: reference(model, docs, c))
    ex = extractor(model)
    for c in ("document", "sentence"):
        add(Row("`Extractor`", c, "labels=None, default funnel"), lambda c=c: ex(dev[c].texts), f"ex-{c}")
    hc = hf_class(model)
    for c in ("document", "sentence"):
        add(Row("`pipeline(..., pipeline_class=NerbatchPipeline)`", c, "batch_size=32"),
            lambda c=c: entities(hc, dev[c].texts), f"hc-{c}", f"ex-{c}")
    add(Row("`python -m spacy evaluate`, nerbatch component", "document", "spaCy's NER scorer on whole Docs"),
        lambda: spacy_evaluate(model, data, work))
    hc.settings = {**hc.settings, "casing": False}  # ablation: what the casing ids are worth, all else equal
    add(Row("`NerbatchPipeline`, casing ids set to 0", "sentence", "ablation"),
        lambda: entities(hc, dev["sentence"].texts))
    hp = hf_plain(model)
    for c in ("sentence", "document"):
        add(Row('plain `pipeline(..., aggregation_strategy="simple")`', c, "as a HF user types it"),
            lambda c=c: entities(hp, dev[c].texts), f"hp-{c}")
    hp32 = hf_plain(model, dtype="float32")
    add(Row('plain pipeline, `dtype="float32"`', "sentence", "ablation"), lambda: entities(hp32, dev["sentence"].texts))
    add(Row("`python -m extract run`, runner local", "document", "configs/extract.yaml, MISC kept"),
        lambda: batch_job(model, dev["document"], work), "job", "ex-document")
    facts = {**spacy_decomposition(dev["document"], found.get("ex-document", [])),
             "long_docs": _long_docs(model, dev["document"].texts), "n_docs": len(docs)}
    return rows, facts


def _long_docs(model: str, texts: list[str]) -> int:
    """Dev documents longer than the plain pipeline's 512 positions ([CLS] and [SEP] included)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    return sum(len(ids) > 512 for ids in tok(texts, add_special_tokens=True)["input_ids"])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _f1(rows: list[Row], prefix: str, context: str) -> float:
    r = next((r for r in rows if r.name.startswith(prefix) and r.context == context and r.f1 is not None), None)
    return float("nan") if r is None else 100 * r.f1


def _machine() -> str:
    import torch

    info = Path("/proc/cpuinfo")
    cpu = next((l.split(":", 1)[1].strip() for l in info.read_text().splitlines() if l.startswith("model name")),
               "") if info.exists() else platform.processor()
    return (f"{cpu or platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the "
            f"end (other work shares the cores: seconds are indicative); Python {platform.python_version()}, "
            f"torch {torch.__version__}, CPU only")


def markdown(rows: list[Row], model: str, data: str, command: str, seconds: float) -> str:
    out = [f"Command: `{command}` ({seconds / 60:.1f} min)  ", f"Model: `{model}`; data: `{data}`  ",
           f"Machine: {_machine()}  ",
           f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='minutes')}", "",
           "| front end | context | F1, 4 types | F1, PER/LOC/ORG | entities vs Extractor | seconds | notes |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.name} | {r.context} | {_pct(r.f1)} | {_pct(r.f1_plo)} | {r.same or '-'} | "
                   f"{r.seconds:.0f} | {r.note or r.how} |")
    return "\n".join(out) + "\n"


def explanations(rows: list[Row], facts: dict) -> str:
    """Why the rows differ, with this run's numbers."""
    f = lambda prefix, c="sentence": _f1(rows, prefix, c)  # noqa: E731
    ref_d, ref_s, ex_d, ex_s = f("`python -m t", "document"), f("`python -m t"), f("`Ex", "document"), f("`Ex")
    nb_s, nb_0, sp = f("`pipeline(..., pipeline_class"), f("`NerbatchPipeline`"), f("`python -m spacy", "document")
    hp_s, hp_d, hp32 = f("plain `"), f("plain `", "document"), f("plain pipeline")
    al, pct = facts["alignment"], lambda x: f"{100 * x:.2f}"
    spacy_row = next((r.extra for r in rows if r.name.startswith("`python -m spacy")), {})
    per_type = ", ".join(f"{t} {pct(m['f'])}" for t, m in sorted((spacy_row.get("ents_per_type") or {}).items()))
    return f"""## Why the numbers differ

- **Document context** (Extractor {ex_d:.2f} by document, {ex_s:.2f} one sentence per call): the
  model was trained on, and is run on, windows of up to 128 wordpieces that span the sentences of
  one document, so an all-caps headline or a bare surname can see the rest of the article. The
  model card's number is the document one.
- **Extractor and the reference** (`training evaluate`: {ref_d:.2f} / {ref_s:.2f}) run the same
  functions; the only difference is the funnel (extract/text/funnel.py: skip windows without a capital
  or a digit), on by default in Extractor, the job, the spaCy component and NerbatchPipeline, off in
  `training evaluate`. Here it changes F1 by {ex_d - ref_d:+.2f} by document, {ex_s - ref_s:+.2f} by sentence.
- **NerbatchPipeline** runs the inference chain of Extractor, the job and the service
  (extract/model/chain.py: sanitising, casing ids, windows, funnel, window merging, decoding,
  calibration); only the forward pass is Hugging Face's, with its own batching and padding. Its
  entities (label and offsets, every dev text) are compared with Extractor's in the table.
- **spaCy** ({sp:.2f}): the same entities, scored differently. `spacy evaluate` on the converted
  file keeps the CoNLL tokens (the converter's Docs have unknown spaces, so spaCy's Corpus does not
  re-tokenise), so the component aligns to them: {al['expanded']} of {al['entities']} entities
  ({100 * al['expanded'] / max(al['entities'], 1):.1f}%) were widened to whole CoNLL tokens (a boundary
  inside a token), {al['overlapping']} dropped as overlapping once widened, {al['dropped']} with no token; the
  seqeval rows project onto the same whole tokens, so this costs nothing. The difference is the
  scoring unit: `training evaluate` cuts document predictions back into CoNLL sentences, spaCy's
  scorer counts whole Docs. {len(facts['crossing'])} predicted names run across a CoNLL sentence break (e.g.
  {', '.join(f'`{x}`' for x in facts['crossing'][:3])}): cut there, their first part can match a gold
  name; whole, they are a false positive. Checked without a model run: seqeval with each
  document as one sequence gives {pct(facts['seqeval_whole_docs'])}, spaCy's scorer on Extractor's
  entities aligned to the CoNLL tokens {pct(facts['spacy_scorer'])}. Per type, as `spacy evaluate`
  prints them: {per_type}.
- **The plain Hugging Face pipeline** ({hp_s:.2f} one sentence per call, {hp_d:.2f} by document),
  against NerbatchPipeline by sentence ({nb_s:.2f}): the casing ids are worth {nb_s - nb_0:.2f} points
  (NerbatchPipeline with casing ids set to 0: {nb_0:.2f}; the plain pipeline feeds `token_type_ids` of 0
  to a model whose uncased backbone reads capitalisation only there); the rest but the dtype,
  {nb_0 - hp32:.2f}, is the decoding and the 128-wordpiece windows (aggregation "simple" groups
  wordpieces by their own B-/I- tags, so a word's pieces can disagree and a stray I- starts a name,
  where Extractor labels each word by its first wordpiece and drops a stray I-); float16 weights
  on the CPU (`dtype="auto"` follows config.json) change it by
  {hp_s - hp32:+.2f} (`dtype="float32"`: {hp32:.2f}). Its scores are also a mean of wordpiece probabilities, not the
  calibrated entity scores (no effect on F1). By document it truncates at 512 wordpieces:
  {facts['long_docs']} of {facts['n_docs']} dev documents are longer and their tails get no entities; and
  the model sees positions past 128, beyond the windows it was fine-tuned on. Use NerbatchPipeline.
- **The batch job** runs the same functions as Extractor; its row checks that on dev.
- **The service** (`python -m extract serve`) is not measured here: Ray Serve's start-up and an HTTP
  call per document for a number that cannot differ, since its engine is an Extractor
  (extract/serve/engine.py) and tests/serve/test_serve.py::test_entities_equal_the_extractor checks its
  entities against Extractor's.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="data/models/default")
    p.add_argument("--data", default="../shared/data/conll2003/valid.txt", help="relative to the repository root")
    p.add_argument("--out", default="docs/parity.md",
                   help="the page to write, relative to the repository root; '' = print only")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # the defaults and the job's config are repository paths
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        rows, facts = measure(args.model, Path(args.data), Path(tmp))
    argv_shown = argv if argv is not None else sys.argv[1:]
    command = " ".join(["python scripts/parity_table.py", *argv_shown])
    page = markdown(rows, args.model, args.data, command, time.perf_counter() - t0) + "\n" + explanations(rows, facts)
    print(page)
    if args.out:
        title = "# Front-end parity: CoNLL dev through every entry point\n\n"
        Path(args.out).write_text(title + page, encoding="utf-8")
    return 1 if any(r.note.startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
