"""Label Studio JSON exports read and checked: reviewed tasks -> documents with their corrected spans.

The one reader of exports: ``python -m extract quality`` (extract/monitor/quality.py) and the
training side's ``python -m training corrections`` (training/corrections.py) both call it, so both
apply the same checks.

An export is a list of tasks, each with ``data.text`` (and ``data.doc_id`` for tasks written by
``python -m extract review``), ``annotations: [{"result": [...]}]`` and possibly ``predictions``.
Per task the latest annotation that is not cancelled counts (by ``updated_at``/``created_at``/``id``);
a task without one is not reviewed. A task whose annotator removed every span keeps ``"spans": []``:
"no entity here" is a correction too.

What is not an export at all is refused with an ExportError (a ValueError; the CLIs exit 2 with its
one line): a file that is not UTF-8 JSON, JSON nested deeper than MAX_DEPTH levels (checked before
parsing, so no RecursionError), a top level that is not a list, a task that is not an object, or a
task whose ``data``, ``annotations``, ``predictions``, an annotation, or its ``result`` has the wrong
JSON type.

Each labelled region of a result is checked, and one that fails is dropped and counted by reason
(``dropped``, ``dropped_spans`` their sum), never silently:

- ``not_an_object``: the region is not a JSON object; ``bad_value``: its ``value`` is not one;
- ``labels_not_a_list`` (e.g. ``"labels": "PER"``), ``no_label`` (empty), ``several_labels``
  (more than one: which one is meant is unknown), ``bad_label`` (not a string);
- ``unknown_label``: a label the target model does not have (``PERSON``, ``FOO``): it would become O
  in training, teaching that the span is *not* an entity; counted per label in ``unknown_labels``;
- ``bad_offsets``: ``start``/``end`` missing or not integers (null, floats, strings and booleans are
  refused); ``empty_or_reversed``: ``start >= end``; ``out_of_range``: outside the text;
- ``bad_text``: ``value.text`` present but not a string; ``text_mismatch``: ``value.text`` differs
  from the slice and cannot be found (below);
- ``duplicate``: the same (start, end, label) twice in one annotation.

Results of other types (choices, relations, text areas) are not spans; they are counted in
``other_results``. Offsets are checked against the text: Label Studio's text offsets have been
JavaScript (UTF-16) offsets in some versions (emoji, astral characters), so a span whose
``text[start:end]`` differs from its ``value.text`` is tried as UTF-16 offsets, then by looking for
``value.text`` nearest the given start (``fixed_offsets`` counts the spans moved); the span kept
always slices to its ``value.text`` when one is given.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from extract.text.labels import DEFAULT_TYPES
from extract.text.sanitize import sanitize

MAX_DEPTH = 64  # JSON nesting allowed in an export (a Label Studio task needs about 8)
DROP_REASONS = ("not_an_object", "bad_value", "labels_not_a_list", "no_label", "several_labels", "bad_label",
                "unknown_label", "bad_offsets", "empty_or_reversed", "out_of_range", "bad_text", "text_mismatch",
                "duplicate")
LEGACY_KEYS = ("tasks", "corrected", "unannotated", "spans", "fixed_offsets", "dropped_spans")

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class ExportError(ValueError):
    """Not a Label Studio JSON export (the CLIs exit 2 with this one line)."""


# ---------------------------------------------------------------------------------- loading

def _kind(x) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(x), type(x).__name__)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, outside strings (no parsing, no recursion)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    b = np.frombuffer(brackets.encode("ascii"), np.uint8)
    steps = np.where((b == ord("[")) | (b == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def parse_export(text: str, name: str = "export") -> list:
    """The JSON value of an export's text, refusing empty text, nesting past MAX_DEPTH and bad JSON."""
    if not text.strip():
        raise ExportError(f"{name}: empty file, expected a Label Studio JSON export (a list of tasks)")
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise ExportError(f"{name}: JSON nested {depth} levels deep (at most {MAX_DEPTH}): not a Label Studio export")
    try:
        return json.loads(text)
    except RecursionError:  # not reached after the depth check; never a traceback
        raise ExportError(f"{name}: JSON nested too deeply: not a Label Studio export") from None
    except ValueError as exc:  # JSONDecodeError, and e.g. integers longer than Python allows
        raise ExportError(f"{name}: not valid JSON ({str(exc).splitlines()[0]})") from None


def load_export(path: str | Path) -> list:
    """Read and parse a Label Studio JSON export file (see parse_export); OSError when unreadable."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): not a Label Studio "
                          "JSON export") from None
    return parse_export(text, str(path))


# ---------------------------------------------------------------------------------- checking

def _utf16_to_cp(text: str, off: int) -> int | None:
    units = 0
    for i, ch in enumerate(text):
        if units == off:
            return i
        if units > off:
            return None
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text) if units == off else None


def _fix_span(text: str, start: int, end: int, want: str | None) -> tuple[int, int] | str:
    """(start, end) in code points that slice to ``want`` (when given), or the reason it fails."""
    in_range = 0 <= start < end <= len(text)
    if want is None:
        return (start, end) if in_range else "out_of_range"
    if in_range and text[start:end] == want:
        return start, end
    s, e = _utf16_to_cp(text, start), _utf16_to_cp(text, end)
    if s is not None and e is not None and s < e and text[s:e] == want:
        return s, e
    hits, i = [], text.find(want) if want else -1
    while i >= 0:
        hits.append(i)
        i = text.find(want, i + 1)
    if hits:
        s = min(hits, key=lambda h: abs(h - start))
        return s, s + len(want)
    return "text_mismatch" if end <= len(text) else "out_of_range"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_region(r, text: str, labels: frozenset[str] | None) -> tuple[int, int, str] | str | None:
    """One result region: its (start, end, label), the reason it is dropped, or None when it is not
    a labels region (another result type)."""
    if not isinstance(r, dict):
        return "not_an_object"
    if r.get("type") != "labels":
        return None
    v = r.get("value")
    if not isinstance(v, dict):
        return "bad_value"
    ls = v.get("labels")
    if not isinstance(ls, list):
        return "labels_not_a_list"
    if not ls:
        return "no_label"
    if len(ls) > 1:
        return "several_labels"
    label = ls[0]
    if not isinstance(label, str):
        return "bad_label"
    if labels is not None and label not in labels:
        return "unknown_label"
    start, end = v.get("start"), v.get("end")
    if not (_is_int(start) and _is_int(end)):
        return "bad_offsets"
    if start >= end:
        return "empty_or_reversed"
    if start < 0:
        return "out_of_range"
    want = v.get("text")
    if want is not None and not isinstance(want, str):
        return "bad_text"
    fixed = _fix_span(text, start, end, want)
    if isinstance(fixed, str):
        return fixed
    return fixed[0], fixed[1], label


def spans_of(result: list, text: str, labels: frozenset[str] | None, facts: Counter,
             prefix: str = "") -> list[tuple[int, int, str]]:
    """The checked, sorted (start, end, label) spans of one annotation's (or prediction's) result;
    drops counted in ``facts`` (``<prefix>dropped:<reason>``, ``<prefix>unknown_label:<label>``)."""
    spans, seen = [], set()
    for r in result:
        got = check_region(r, text, labels)
        if got is None:
            facts[f"{prefix}other_results"] += 1
            continue
        if isinstance(got, tuple) and got in seen:
            got = "duplicate"
        if isinstance(got, str):
            facts[f"{prefix}dropped:{got}"] += 1
            if got == "unknown_label":
                facts[f"{prefix}unknown_label:{r['value']['labels'][0]}"] += 1
            continue
        seen.add(got)
        v = r["value"]
        if (got[0], got[1]) != (v["start"], v["end"]):
            facts[f"{prefix}fixed_offsets"] += 1
        spans.append(got)
    spans.sort()
    return spans


def _list_or_none(task: dict, key: str, where: str) -> list:
    x = task.get(key)
    if x is None:
        return []
    if not isinstance(x, list):
        raise ExportError(f"{where}.{key}: expected a list, found {_kind(x)}: not a Label Studio export")
    return x


def check_task(task, i: int) -> None:
    """ExportError when task ``i`` (0-based) does not have the JSON types of a Label Studio task."""
    where = f"task {i + 1}"
    if not isinstance(task, dict):
        raise ExportError(f"{where}: expected an object (a Label Studio task), found {_kind(task)}: not a Label "
                          "Studio export")
    data = task.get("data")
    if data is not None and not isinstance(data, dict):
        raise ExportError(f"{where}.data: expected an object, found {_kind(data)}: not a Label Studio export")
    doc_id = (data or {}).get("doc_id")
    if doc_id is not None and not (isinstance(doc_id, str) or _is_int(doc_id)):
        raise ExportError(f"{where}.data.doc_id: expected a string or an integer, found {_kind(doc_id)}")
    for key in ("annotations", "predictions"):
        for k, a in enumerate(_list_or_none(task, key, where)):
            if not isinstance(a, dict):
                raise ExportError(f"{where}.{key}[{k}]: expected an object, found {_kind(a)}: not a Label Studio "
                                  "export")
            _list_or_none(a, "result", f"{where}.{key}[{k}]")


def check_tasks(tasks) -> list[dict]:
    """``tasks`` when it is a list of well-typed tasks (check_task), else an ExportError."""
    if not isinstance(tasks, list):
        raise ExportError(f"expected a Label Studio JSON export: a list of tasks, found {_kind(tasks)}")
    for i, t in enumerate(tasks):
        check_task(t, i)
    return tasks


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else -1.0


def latest_annotation(task: dict) -> dict | None:
    """The task's latest annotation that is not cancelled (by updated_at, created_at, id), or None."""
    anns = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not anns:
        return None
    return max(anns, key=lambda a: (str(a.get("updated_at") or ""), str(a.get("created_at") or ""), _num(a.get("id"))))


def label_set(labels: Sequence[str] | None) -> frozenset[str] | None:
    return None if labels is None else frozenset(labels)


def iter_reviewed(tasks, labels: Sequence[str] | None = DEFAULT_TYPES, facts: Counter | None = None,
                  text_key: str = "text") -> Iterator[tuple[int, dict]]:
    """(task index, record) per reviewed task, record ``{"doc_id", "text", "spans": [[start, end,
    label], ...]}`` (code-point offsets, sorted; text and a string doc_id with lone surrogates
    replaced, same length). Counts go to ``facts``; the whole export is type-checked first."""
    facts = Counter() if facts is None else facts
    check_tasks(tasks)
    allowed = label_set(labels)
    facts["tasks"] += len(tasks)
    for i, task in enumerate(tasks):
        data = task.get("data") or {}
        text = data.get(text_key)
        ann = latest_annotation(task)
        if ann is None:
            facts["unannotated"] += 1
            continue
        if not isinstance(text, str):
            facts["tasks_without_text"] += 1
            continue
        spans = spans_of(ann.get("result") or [], text, allowed, facts)
        facts["corrected"] += 1
        facts["spans"] += len(spans)
        doc_id = data.get("doc_id", task.get("id"))
        if isinstance(doc_id, str):
            doc_id = sanitize(doc_id)[0]
        elif not _is_int(doc_id):
            doc_id = None
        yield i, {"doc_id": doc_id, "text": sanitize(text)[0], "spans": [list(s) for s in spans]}


def summary(facts: Counter, labels: Sequence[str] | None = None, prefix: str = "") -> dict:
    """The counts of ``facts`` as a JSON-ready dict: the legacy totals, drops by reason, unknown labels."""
    dropped = {r: facts[f"{prefix}dropped:{r}"] for r in DROP_REASONS if facts[f"{prefix}dropped:{r}"]}
    unknown = {k.split(":", 1)[1]: n for k, n in sorted(facts.items()) if k.startswith(f"{prefix}unknown_label:")}
    out = {k: facts[k] for k in LEGACY_KEYS if k != "dropped_spans"} if not prefix else {}
    out.update({f"{prefix}dropped_spans": sum(dropped.values()), f"{prefix}dropped": dropped,
                f"{prefix}unknown_labels": unknown, f"{prefix}other_results": facts[f"{prefix}other_results"]})
    if prefix:
        out[f"{prefix}fixed_offsets"] = facts[f"{prefix}fixed_offsets"]
    else:
        out["tasks_without_text"] = facts["tasks_without_text"]
    if labels is not None:
        out["labels"] = list(labels)
    return out


def read_tasks(tasks, labels: Sequence[str] | None = DEFAULT_TYPES, text_key: str = "text") -> tuple[list[dict], dict]:
    """Label Studio export tasks -> the reviewed records (iter_reviewed) and their counts (summary):
    tasks, corrected, unannotated, tasks_without_text, spans, fixed_offsets, dropped_spans, dropped
    (by reason), unknown_labels (by label), other_results, labels (those allowed; None: any)."""
    facts: Counter = Counter()
    records = [r for _, r in iter_reviewed(tasks, labels, facts, text_key)]
    return records, summary(facts, labels)


def from_label_studio(tasks, text_key: str = "text", labels: Sequence[str] | None = DEFAULT_TYPES
                      ) -> tuple[list[dict], dict]:
    """read_tasks with the short counts: tasks, corrected, unannotated (tasks without text
    included), spans, fixed_offsets, dropped_spans."""
    records, facts = read_tasks(tasks, labels, text_key)
    short = {k: facts[k] for k in LEGACY_KEYS}
    short["unannotated"] += facts["tasks_without_text"]
    return records, short


def predicted_spans(task: dict, labels: Sequence[str] | None = None, facts: Counter | None = None,
                    text_key: str = "text") -> list[tuple[int, int, str]] | None:
    """The checked (start, end, label) spans of the task's last prediction, as exported (drops
    counted in ``facts`` under ``predicted_``); None without a prediction or a text."""
    preds = task.get("predictions") or []
    text = (task.get("data") or {}).get(text_key)
    if not preds or not isinstance(preds[-1], dict) or not isinstance(text, str):
        return None
    facts = Counter() if facts is None else facts
    return spans_of(preds[-1].get("result") or [], text, label_set(labels), facts, "predicted_")
