import json

import pyarrow as pa
import pyarrow.parquet as pq

from extract.core import schema
from extract.job.summary import drift, summarize


def test_summary_counts_and_drift(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "entities").mkdir()
    docs = {f.name: [] for f in schema.DOCS}
    for i, status in enumerate(["ok", "ok", "error", "empty"]):
        row = {"doc_id": str(i), "status": status, "error": "malformed JSON: x" if status == "error" else None,
               "n_chars": 10, "n_words": 500 if status == "ok" else 0, "n_tokens": 600 if status == "ok" else 0,
               "n_entities": 0, "source": "f", "warning": None, "shard": "s", "index": i}
        for k, v in row.items():
            docs[k].append(v)
    pq.write_table(pa.table(docs, schema=schema.DOCS), tmp_path / "docs" / "part-s.parquet")
    ents = {"doc_id": ["0"] * 3, "label": ["PER", "PER", "LOC"], "text": ["a", "b", "c"], "start": [0, 1, 2],
            "end": [1, 2, 3], "score": [0.95, 0.55, 0.15], "model": ["m"] * 3}
    pq.write_table(pa.table(ents, schema=schema.ENTITIES), tmp_path / "entities" / "part-s.parquet")
    s = summarize(tmp_path)
    assert s["by_status"] == {"ok": 2, "empty": 1, "error": 1, "skipped": 0}
    assert s["by_label"] == {"LOC": 1, "PER": 2} and s["words"] == 1000
    assert s["entities_per_1k_words"] == {"LOC": 1.0, "PER": 2.0}
    assert s["confidence"]["histogram"]["0.9-1.0"] == 1 and s["confidence"]["histogram"]["0.1-0.2"] == 1
    assert s["error_reasons"] == {"malformed JSON": 1}
    model = tmp_path / "model"
    model.mkdir()
    (model / "metrics.json").write_text(json.dumps({"dev": {"words": 2000, "per_type": {"PER": {"support": 8}}},
                                                    "calibration": {"mean_score_after": 0.9}}))
    d = drift(s, model)
    assert d["PER"] == {"per_1k_words": 2.0, "dev_gold_per_1k_words": 4.0, "ratio": 0.5}
    assert "LOC" not in d and d["mean_score"] == {"here": s["confidence"]["mean"], "dev": 0.9}
