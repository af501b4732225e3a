"""`python -m training corrections` and `python -m extract quality` check what they read from a Label
Studio export, with the one reader (extract/monitor/labelstudio.py): spans with labels the target model
lacks, string labels, offsets that are not integers inside the text, a text that is not the slice, and
so on are dropped and counted by reason; a file that is not an export (a task that is a number, a dict,
10,000-deep nesting, invalid JSON, an empty file, wrong types) is exit 2 with one line, never a
traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extract.__main__ import main as extract_main
from extract.core import schema
from training.__main__ import main as training_main

TEXT = "Angela Merkel met John Smith in Berlin."  # Angela Merkel 0-13, John Smith 18-28, Berlin 32-38


def region(start, end, labels, text=None, **extra) -> dict:
    value = {"start": start, "end": end, "labels": labels, **extra}
    if text is not None:
        value["text"] = text
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def task(result, doc_id="d1", text=TEXT, **extra) -> dict:
    return {"id": 1, "data": {"text": text, "doc_id": doc_id}, "annotations": [{"id": 1, "result": result}], **extra}


GOOD = [region(0, 13, ["PER"], "Angela Merkel"), region(32, 38, ["LOC"], "Berlin")]
# each bad region, and the reason it is dropped for
BAD = [
    (region(18, 28, ["PERSON"], "John Smith"), "unknown_label"),
    (region(32, 38, ["FOO"]), "unknown_label"),
    (region(0, 13, "PER", "Angela Merkel"), "labels_not_a_list"),
    (region(0, 13, [], "Angela Merkel"), "no_label"),
    (region(0, 13, ["PER", "ORG"], "Angela Merkel"), "several_labels"),
    (region(0, 13, [7], "Angela Merkel"), "bad_label"),
    (region(None, 13, ["PER"], "Angela Merkel"), "bad_offsets"),
    (region(0.0, 13, ["PER"], "Angela Merkel"), "bad_offsets"),
    (region(0, 13.5, ["PER"]), "bad_offsets"),
    (region(True, 13, ["PER"]), "bad_offsets"),
    (region("0", "13", ["PER"]), "bad_offsets"),
    ({"type": "labels", "value": {"end": 13, "labels": ["PER"]}}, "bad_offsets"),
    (region(13, 13, ["PER"]), "empty_or_reversed"),
    (region(13, 0, ["PER"]), "empty_or_reversed"),
    (region(-3, 13, ["PER"]), "out_of_range"),
    (region(30, 999, ["LOC"]), "out_of_range"),
    (region(18, 28, ["PER"], "Helmut Kohl"), "text_mismatch"),
    (region(18, 28, ["PER"], 42), "bad_text"),
    ({"type": "labels", "value": ["not", "an", "object"]}, "bad_value"),
    (7, "not_an_object"),
    (region(0, 13, ["PER"], "Angela Merkel"), "duplicate"),  # GOOD's first span again
]
OTHER = {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["positive"]}}


def expected_dropped() -> dict[str, int]:
    out: dict[str, int] = {}
    for _, reason in BAD:
        out[reason] = out.get(reason, 0) + 1
    return out


def write(path: Path, obj=None, raw: str | bytes | None = None) -> Path:
    if raw is None:
        raw = json.dumps(obj)
    (path.write_bytes if isinstance(raw, bytes) else path.write_text)(raw)
    return path


def corrections(capsys, export: Path, out: Path, *args: str) -> tuple[int, dict | None, str]:
    rc = training_main(["corrections", str(export), "--out", str(out), *args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    facts = json.loads(cap.out.strip().splitlines()[-1]) if rc == 0 else None
    return rc, facts, cap.err


def test_bad_spans_are_dropped_and_counted_by_reason(tmp_path, capsys):
    result = GOOD + [r for r, _ in BAD] + [OTHER]
    exp = write(tmp_path / "export.json", [task(result)])
    rc, facts, err = corrections(capsys, exp, tmp_path / "c.jsonl")
    assert rc == 0
    assert facts["dropped"] == expected_dropped() and facts["dropped_spans"] == len(BAD)
    assert facts["unknown_labels"] == {"FOO": 1, "PERSON": 1}
    assert facts["other_results"] == 1 and facts["spans"] == 2 and facts["corrected"] == 1
    assert facts["labels"] == ["PER", "LOC", "ORG", "MISC"] and facts["labels_from"].startswith("default")
    assert "dropped 21 spans" in err and "PERSON" in err  # said on stderr too, stdout stays JSON
    (row,) = [json.loads(l) for l in (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row == {"doc_id": "d1", "text": TEXT, "spans": [[0, 13, "PER"], [32, 38, "LOC"]]}


def test_labels_from_the_model_or_the_list(tmp_path, capsys):
    from tests.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "model", types=("PER", "LOC"))
    result = [region(0, 13, ["PER"], "Angela Merkel"), region(18, 28, ["PERSON"], "John Smith"),
              region(32, 38, ["ORG"], "Berlin")]
    exp = write(tmp_path / "export.json", [task(result)])
    rc, facts, _ = corrections(capsys, exp, tmp_path / "a.jsonl", "--model", str(model))
    assert rc == 0 and facts["labels"] == ["PER", "LOC"] and "--model" in facts["labels_from"]
    assert facts["unknown_labels"] == {"ORG": 1, "PERSON": 1} and facts["spans"] == 1
    rc, facts, _ = corrections(capsys, exp, tmp_path / "b.jsonl", "--labels", "PER, PERSON,ORG")
    assert rc == 0 and facts["labels"] == ["PER", "PERSON", "ORG"] and facts["spans"] == 3
    assert facts["dropped_spans"] == 0 and facts["unknown_labels"] == {}
    for args in (["--labels", " , "], ["--model", str(tmp_path / "no-model")]):
        rc, _, err = corrections(capsys, exp, tmp_path / "c.jsonl", *args)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_utf16_offsets_are_still_repaired(tmp_path, capsys):
    text = "😀 Bonn and 😀 Paris"
    py = text.index("Paris")
    exp = write(tmp_path / "export.json", [task([region(py + 2, py + 7, ["LOC"], "Paris")], text=text)])
    rc, facts, _ = corrections(capsys, exp, tmp_path / "c.jsonl")
    assert rc == 0 and facts["fixed_offsets"] == 1 and facts["dropped_spans"] == 0
    (row,) = [json.loads(l) for l in (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["spans"] == [[py, py + 5, "LOC"]]


def deep(n: int) -> str:
    return "[" * n + "]" * n


NOT_EXPORTS = {  # file content -> a fragment of the one-line error
    "a task that is a number": (json.dumps([task(GOOD), 5]), "task 2: expected an object"),
    "a dict": (json.dumps({"data": {"text": TEXT}, "annotations": []}), "a list of tasks, found an object"),
    "a number": ("42", "a list of tasks, found a number"),
    "10,000-deep lists": (deep(10_000), "nested 10000 levels deep"),
    "10,000-deep objects": ('{"a":' * 10_000 + "1" + "}" * 10_000, "nested 10000 levels deep"),
    "deep inside a task": (json.dumps([{"data": {"text": TEXT, "meta": json.loads(deep(70))}}]), "levels deep"),
    "invalid JSON": ('[{"data": {"text": "x"}, ', "not valid JSON"),
    "an empty file": ("", "empty file"),
    "only whitespace": ("  \n", "empty file"),
    "annotations not a list": (json.dumps([{"data": {"text": TEXT}, "annotations": {"result": []}}]),
                               "task 1.annotations: expected a list"),
    "an annotation that is a string": (json.dumps([{"data": {"text": TEXT}, "annotations": ["x"]}]),
                                       "task 1.annotations[0]: expected an object"),
    "result not a list": (json.dumps([{"data": {"text": TEXT}, "annotations": [{"result": "PER"}]}]),
                          "task 1.annotations[0].result: expected a list"),
    "data not an object": (json.dumps([{"data": "text", "annotations": []}]), "task 1.data: expected an object"),
    "doc_id a list": (json.dumps([task(GOOD, doc_id=[1])]), "data.doc_id: expected a string or an integer"),
    "predictions not a list": (json.dumps([task(GOOD, predictions=3)]), "task 1.predictions: expected a list"),
    "a 5,000-digit offset": ('[{"data": {"text": "x"}, "annotations": [{"result": [{"type": "labels", "value": '
                             '{"start": ' + "9" * 5000 + ', "end": 1, "labels": ["PER"]}}]}]}]', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(NOT_EXPORTS))
def test_not_an_export_is_exit_2_with_one_line(tmp_path, capsys, case):
    content, fragment = NOT_EXPORTS[case]
    exp = write(tmp_path / "export.json", raw=content)
    rc, _, err = corrections(capsys, exp, tmp_path / "c.jsonl")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert fragment in err, err
    assert not (tmp_path / "c.jsonl").exists()  # nothing written


def test_other_unreadable_inputs_are_exit_2(tmp_path, capsys):
    cases = [write(tmp_path / "latin1.json", raw=b'[{"data": {"text": "caf\xe9"}}]'),  # not UTF-8
             tmp_path / "missing.json", tmp_path]  # a folder
    for exp in cases:
        rc, _, err = corrections(capsys, exp, tmp_path / "c.jsonl")
        assert rc == 2 and len(err.strip().splitlines()) == 1, (exp, err)
    exp = write(tmp_path / "ok.json", [task(GOOD)])
    rc, _, err = corrections(capsys, exp, tmp_path)  # --out is a folder
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_nesting_within_the_bound_is_read(tmp_path, capsys):
    # list > task > data > meta: 3 levels + 60 lists = 63 <= 64
    tasks = [{**task(GOOD), "data": {"text": TEXT, "doc_id": "d1", "meta": json.loads(deep(60))}}]
    rc, facts, _ = corrections(capsys, write(tmp_path / "e.json", tasks), tmp_path / "c.jsonl")
    assert rc == 0 and facts["spans"] == 2
    # brackets inside strings are text, not nesting
    tasks = [task(GOOD, text=TEXT + " " + deep(5000))]
    rc, facts, _ = corrections(capsys, write(tmp_path / "f.json", tasks), tmp_path / "c.jsonl")
    assert rc == 0 and facts["spans"] == 2


def test_tasks_without_annotation_or_text_are_counted(tmp_path, capsys):
    tasks = [task(GOOD), {"data": {"text": TEXT}}, {"data": {"image": "x.png"}, "annotations": [{"result": []}]},
             {"annotations": [{"result": [], "was_cancelled": True}]}, task([], doc_id=7)]
    rc, facts, _ = corrections(capsys, write(tmp_path / "e.json", tasks), tmp_path / "c.jsonl")
    assert rc == 0
    assert (facts["tasks"], facts["corrected"], facts["unannotated"], facts["tasks_without_text"]) == (5, 2, 2, 1)
    rows = [json.loads(l) for l in (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"] for r in rows] == ["d1", 7] and rows[1]["spans"] == []


# ------------------------------------------------------------------------------ extract quality

def fake_out(root: Path) -> Path:
    """A job output holding d1 with two entities (Angela Merkel PER, Berlin LOC)."""
    out = root / "run"
    (out / "entities").mkdir(parents=True)
    (out / "docs").mkdir()
    spans = [(0, 13, "PER"), (32, 38, "LOC")]
    pq.write_table(pa.table({"doc_id": ["d1"] * 2, "label": [s[2] for s in spans],
                             "text": [TEXT[s:e] for s, e, _ in spans],
                             "start": [s[0] for s in spans], "end": [s[1] for s in spans], "score": [0.9] * 2,
                             "model": ["m"] * 2}, schema=schema.ENTITIES), out / "entities" / "part-00000.parquet")
    pq.write_table(pa.table({"doc_id": ["d1"], "status": ["ok"], "error": [None], "n_chars": [len(TEXT)],
                             "n_words": [7], "n_tokens": [9], "n_entities": [2], "source": ["f"], "warning": [None],
                             "shard": ["00000"], "index": [0]}, schema=schema.DOCS),
                   out / "docs" / "part-00000.parquet")
    (out / "run.json").write_text(json.dumps({"config": {"model": {"labels": ["PER", "LOC", "ORG", "MISC"]}},
                                              "model": {"id": "tiny-v1"}}))
    return out


def quality(capsys, out: Path, export: Path, *args: str) -> tuple[int, dict | None, str]:
    rc = extract_main(["quality", str(out), "--export", str(export), "--history", str(out.parent / "h.jsonl"), *args])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err + cap.out
    q = json.loads((out / "quality.json").read_text()) if rc == 0 else None
    return rc, q, cap.err


def test_quality_applies_the_same_checks(tmp_path, capsys):
    out = fake_out(tmp_path)
    result = GOOD + [r for r, _ in BAD] + [OTHER]
    preds = [{"result": [region(0, 13, ["PER"], "Angela Merkel"), region(None, 3, ["PER"]), region(32, 38, "LOC")]}]
    exp = write(tmp_path / "export.json", [task(result, predictions=preds)])
    rc, q, _ = quality(capsys, out, exp)
    assert rc == 0
    c = q["counts"]
    assert c["dropped"] == expected_dropped() and c["dropped_spans"] == len(BAD)
    assert c["unknown_labels"] == {"FOO": 1, "PERSON": 1} and c["other_results"] == 1
    assert q["labels_checked"]["labels"] == ["PER", "LOC", "ORG", "MISC"]
    m = q["micro"]
    assert (m["tp"], m["predicted"], m["annotated"]) == (2, 2, 2)  # the dropped spans are not gold
    # the task's own predictions are checked too (without the label check)
    rc, q, _ = quality(capsys, out, exp, "--predicted", "export")
    assert rc == 0 and q["counts"]["predicted_dropped"] == {"bad_offsets": 1, "labels_not_a_list": 1}
    assert (q["micro"]["tp"], q["micro"]["predicted"]) == (1, 1)
    # --labels: PERSON allowed
    rc, q, _ = quality(capsys, out, exp, "--labels", "PER,LOC,PERSON")
    assert rc == 0 and q["counts"]["unknown_labels"] == {"FOO": 1} and q["labels"]["PERSON"]["annotated"] == 1


@pytest.mark.parametrize("case", list(NOT_EXPORTS))
def test_quality_not_an_export_is_exit_2_with_one_line(tmp_path, capsys, case):
    out = fake_out(tmp_path)
    content, fragment = NOT_EXPORTS[case]
    rc, _, err = quality(capsys, out, write(tmp_path / "export.json", raw=content))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err, err
    assert not (out / "quality.json").exists()
