"""extract.hf_pipeline.NerbatchPipeline through the real entry point, ``transformers.pipeline(...,
pipeline_class=...)``: Extractor's entities (casing ids, windows, merging, decoding), HF's dict shape."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from extract.api import Extractor
from extract.hf_pipeline import NerbatchPipeline
from extract.text.casing import casing_ids
from tests.helpers import FIXTURES
from tests.tiny import make_tiny_model
from training.conll import doc_text, read_conll

KEYS = {"entity_group", "score", "word", "start", "end"}
# Short and long (several windows at the tiny model's max_length 32), empty, caseless (the funnel),
# a lone surrogate (sanitised, offsets unchanged), CJK and accents.
TEXTS = ["John Smith of Germany said in New York.", "Reuters reported from Bonn and Paris on Monday. " * 6, "", "  ",
         "the bank of new york said so " * 12, "Reuters \ud83d in Bonn " * 20, "北京 and é in Paris."]


def _hf(pipe_out) -> list[list[tuple]]:
    return [[(e["entity_group"], e["start"], e["end"], e["score"]) for e in ents] for ents in pipe_out]


def _ex(found) -> list[list[tuple]]:
    return [[(e.label, e.start, e.end, e.score) for e in ents] for ents in found]


def _same(got: list[list[tuple]], want: list[list[tuple]]) -> None:
    """Labels and offsets exactly; scores to float noise (HF pads batches differently)."""
    assert [[g[:3] for g in d] for d in got] == [[w[:3] for w in d] for d in want]
    for g, w in zip(sum(got, []), sum(want, [])):
        assert g[3] == pytest.approx(w[3], abs=1e-5)


@pytest.fixture(scope="module")
def ner(tiny_model_dir):
    return pipeline("token-classification", model=str(tiny_model_dir), pipeline_class=NerbatchPipeline)


@pytest.fixture(scope="module")
def extractor(tiny_model_dir):
    return Extractor.from_pretrained(str(tiny_model_dir), labels=None)


def test_the_entry_point_gives_extractors_entities_in_hfs_dicts(ner, extractor):
    assert isinstance(ner, NerbatchPipeline)
    want = _ex(extractor.pipe(TEXTS))
    assert sum(map(len, want)) > 10  # the random tiny model does tag things
    for batch_size in (1, 5):
        out = ner(TEXTS, batch_size=batch_size)
        _same(_hf(out), want)
        for text, ents in zip(TEXTS, out):
            assert all(set(e) == KEYS and e["word"] == text[e["start"]:e["end"]] for e in ents)
            assert all(isinstance(e["score"], float) and isinstance(e["start"], int) for e in ents)
    assert ner(TEXTS[0]) == ner([TEXTS[0]])[0]  # one text: one list of dicts
    assert list(ner(t for t in TEXTS[:2])) == ner(TEXTS[:2])  # a generator streams
    assert ner("") == [] and ner([]) == []


def test_equals_extractor_by_document_on_conll(ner, extractor):
    """The dev check in small: CoNLL documents joined as training.evaluate joins them."""
    texts = [doc_text(d.sentences)[0] for d in read_conll(FIXTURES / "tiny_conll.txt")]
    _same(_hf(ner(texts, batch_size=4)), _ex(extractor.pipe(texts)))


def test_casing_ids_and_windows_reach_the_model(ner, tiny_model_dir):
    """What the stock pipeline does not do: token_type_ids are the casing ids of the ORIGINAL text,
    and a long text is cut into max_length windows (never truncated)."""
    text = "John SMITH of Germany said 1996 in New York " * 8
    seen = _fed(ner, text)
    enc = ner.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    want = casing_ids(text, enc["offset_mapping"])
    max_length = json.loads((Path(tiny_model_dir) / "config.json").read_text())["ner_settings"]["max_length"]
    assert len(seen) > 1 and all(kw["input_ids"].shape[1] <= max_length for kw in seen)
    first = seen[0]["token_type_ids"][0, 1:-1].tolist()
    assert first == want[:len(first)] and set(want) >= {1, 2, 3, 4}  # lower, Title, UPPER, digit all fed
    plain = _fed(pipeline("token-classification", model=str(tiny_model_dir)), text)
    assert len(plain) == 1 and not plain[0]["token_type_ids"].any()  # what the issue found: all 0


def _fed(pipe, text: str) -> list[dict]:
    """The keyword inputs of every forward pass ``pipe(text)`` makes."""
    seen: list[dict] = []
    hook = pipe.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw) or None, with_kwargs=True)
    try:
        pipe(text)
    finally:
        hook.remove()
    return seen


def test_labels_min_score_and_funnel_options(ner, extractor, tiny_model_dir):
    text = TEXTS[1]
    everything = ner(text)
    assert {e["entity_group"] for e in ner(text, labels=["PER", "LOC"])} <= {"PER", "LOC"}
    assert ner(text, ignore_labels=["PER"]) == [e for e in everything if e["entity_group"] != "PER"]
    cut = sorted(e["score"] for e in everything)[len(everything) // 2]
    assert ner(text, min_score=cut) == [e for e in everything if e["score"] >= cut]
    caseless = TEXTS[4]  # every window has no capital: the default funnel still runs them (caseless doc)
    off = Extractor.from_pretrained(str(tiny_model_dir), labels=None, funnel="capitalised-or-digit")
    _same(_hf([ner(caseless, funnel="capitalised-or-digit")]), _ex(off.pipe([caseless])))
    assert ner(caseless, funnel="capitalised-or-digit") == [] and ner(caseless, funnel=None)
    only = pipeline("token-classification", model=str(tiny_model_dir), pipeline_class=NerbatchPipeline, labels=["ORG"])
    assert {e["entity_group"] for e in only(text)} == {"ORG"}
    assert ner(text, aggregation_strategy="simple") == everything == ner(text, aggregation_strategy="first")


def test_a_float16_folder_runs_in_fp32_on_cpu_as_extractor(tmp_path):
    """The released folder's config says float16: pipeline(dtype="auto") loads it so; upcast on CPU."""
    from transformers import AutoModelForTokenClassification

    path = make_tiny_model(tmp_path / "m")
    AutoModelForTokenClassification.from_pretrained(str(path)).half().save_pretrained(path)
    ner = pipeline("token-classification", model=str(path), pipeline_class=NerbatchPipeline)
    assert ner.model.dtype == torch.float32
    _same(_hf(ner(TEXTS)), _ex(Extractor.from_pretrained(str(path), labels=None).pipe(TEXTS)))


def test_errors_say_what_was_expected_and_how_to_fix(ner, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"unsupported option\(s\) \['stride'\].*ner_settings"):
        ner("Bonn", stride=4)
    with pytest.raises(ValueError, match=r"aggregation_strategy: expected 'simple' or 'first'.*found 'none'"):
        ner("Bonn", aggregation_strategy="none")
    with pytest.raises(ValueError,
                       match=r"labels: PERSON cannot be produced by the model .*Set labels to some of them"):
        ner("Bonn", labels=["PERSON"])
    with pytest.raises(ValueError, match=r"funnel: expected one of"):
        ner("Bonn", funnel="capitals")
    with pytest.raises(TypeError, match="expected str texts, found int"):
        ner([1])
    foreign = make_tiny_model(tmp_path / "foreign")
    cfg = json.loads((foreign / "config.json").read_text())
    del cfg["ner_settings"]
    (foreign / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"expected a nerbatch model .*ner_settings.*Fix: use the plain pipeline"):
        pipeline("token-classification", model=str(foreign), pipeline_class=NerbatchPipeline)
