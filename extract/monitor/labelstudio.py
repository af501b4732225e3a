"""Label Studio JSON exports read: reviewed tasks -> documents with their corrected spans.

An export is a list of tasks, each with ``data.text`` (and ``data.doc_id`` for tasks written by
``python -m extract review``), ``annotations: [{"result": [...]}]`` and possibly ``predictions``.
Per task the latest annotation that is not cancelled counts (by ``updated_at``/``created_at``/``id``);
a task without one is not reviewed. A task whose annotator removed every span keeps ``"spans": []``:
"no entity here" is a correction too.

Offsets are checked against the text: Label Studio's text offsets have been JavaScript (UTF-16)
offsets in some versions (emoji, astral characters), so a span whose ``text[start:end]`` differs
from its ``value.text`` is tried as UTF-16 offsets, then by looking for ``value.text`` nearest the
given start; a span found by none of these is dropped and counted.

Used by ``python -m extract quality`` (extract/monitor/quality.py) and by the training side's
corrections (training/corrections.py).
"""
from __future__ import annotations


def _utf16_to_cp(text: str, off: int) -> int | None:
    units = 0
    for i, ch in enumerate(text):
        if units == off:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text) if units == off else None


def _fix_span(text: str, start: int, end: int, want: str | None) -> tuple[int, int] | None:
    if want is None or text[start:end] == want:
        return (start, end) if 0 <= start < end <= len(text) else None
    s, e = _utf16_to_cp(text, start), _utf16_to_cp(text, end)
    if s is not None and e is not None and text[s:e] == want:
        return s, e
    hits, i = [], text.find(want)
    while i >= 0 and want:
        hits.append(i)
        i = text.find(want, i + 1)
    if hits:
        s = min(hits, key=lambda h: abs(h - start))
        return s, s + len(want)
    return None


def latest_annotation(task: dict) -> dict | None:
    """The task's latest annotation that is not cancelled (by updated_at, created_at, id), or None."""
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not anns:
        return None
    return max(anns, key=lambda a: (str(a.get("updated_at") or ""), str(a.get("created_at") or ""), a.get("id") or 0))


def from_label_studio(tasks: list[dict], text_key: str = "text") -> tuple[list[dict], dict]:
    """Label Studio export tasks -> one record per reviewed task, ``{"doc_id", "text", "spans":
    [[start, end, label], ...]}`` (code-point offsets into ``text``, sorted); and counts (tasks,
    corrected, unannotated, spans, fixed_offsets, dropped_spans)."""
    if not isinstance(tasks, list):
        raise ValueError("expected a Label Studio JSON export: a list of tasks")
    out, facts = [], {"tasks": len(tasks), "corrected": 0, "unannotated": 0, "spans": 0, "fixed_offsets": 0,
                      "dropped_spans": 0}
    for task in tasks:
        data = task.get("data") or {}
        text = data.get(text_key)
        ann = latest_annotation(task)
        if ann is None or not isinstance(text, str):
            facts["unannotated"] += 1
            continue
        spans = []
        for r in ann.get("result") or []:
            v = r.get("value") or {}
            if r.get("type") != "labels" or "start" not in v or "end" not in v or not v.get("labels"):
                continue
            fixed = _fix_span(text, int(v["start"]), int(v["end"]), v.get("text"))
            if fixed is None:
                facts["dropped_spans"] += 1
                continue
            if fixed != (int(v["start"]), int(v["end"])):
                facts["fixed_offsets"] += 1
            spans.append([fixed[0], fixed[1], str(v["labels"][0])])
        spans.sort()
        facts["corrected"] += 1
        facts["spans"] += len(spans)
        out.append({"doc_id": data.get("doc_id", task.get("id")), "text": text, "spans": spans})
    return out, facts


def predicted_spans(task: dict) -> list[tuple[int, int, str]] | None:
    """The (start, end, label) spans of the task's last prediction, as exported; None without one."""
    preds = task.get("predictions") or []
    if not preds:
        return None
    pred = preds[-1]
    spans = []
    for r in pred.get("result") or []:
        v = r.get("value") or {}
        if r.get("type") == "labels" and "start" in v and "end" in v and v.get("labels"):
            spans.append((int(v["start"]), int(v["end"]), str(v["labels"][0])))
    return spans
