"""Kept silver (training/silver_store.py): `training label` writes labels without text plus a
manifest; `training distill` joins them back to the corpus, and refuses a changed corpus."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from tests.training.test_distill import FIXTURE, TEXTS, read_parts, teachers  # noqa: F401 - teachers is a fixture
from training.__main__ import main


def kept_label_config(tmp_path: Path, teachers: list[Path]) -> Path:  # noqa: F811 - an argument named like the fixture
    root = tmp_path / "shared"
    corpus = root / "corpus" / "c.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text("".join(json.dumps({"id": k, "title": v[:6], "body": v}) + "\n" for k, v in TEXTS.items()),
                      encoding="utf-8")
    cfg = {"input": {"path": [str(corpus)], "text_columns": ["title", "body"], "joiner": "\n\n"},
           "output": {"path": str(tmp_path / "work")}, "show_progress": False,
           "teacher": {"models": [str(t) for t in teachers]}, "inference": {"threads": 1},
           "keep": {"dir": str(tmp_path / "kept"), "name": "tiny", "data_root": str(root)}}
    p = tmp_path / "label.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def distill_config(tmp_path: Path, teachers: list[Path], root: Path) -> Path:  # noqa: F811 - an argument named like the fixture
    cfg = {"data": {"train": str(FIXTURE), "dev": str(FIXTURE), "silver": [str(tmp_path / "kept")],
                    "silver_root": str(root), "cache_dir": str(tmp_path / "cache")},
           "model": {"backbone": str(teachers[0]), "max_length": 32, "stride": 8, "layers": [1]},
           "optim": {"lr": "1e-3", "batch_size": 4, "max_steps": 2, "epochs": 10},
           "run": {"output": str(tmp_path / "student"), "eval_every": 2, "log_every": 1, "device": "cpu",
                   "threads": 1},
           "distill": {"init_from": str(teachers[0])}}
    p = tmp_path / "distill.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_kept_silver_round_trips_without_text(tmp_path, teachers):  # noqa: F811
    assert main(["label", "--config", str(kept_label_config(tmp_path, teachers))]) == 0
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    (entry,) = manifest["sources"]
    assert entry["name"] == "tiny" and entry["docs"] == 2 and entry["sources"][0]["path"] == "corpus/c.jsonl"
    assert len(entry["sources"][0]["sha256"]) == 64 and entry["command"].startswith("python -m training label")
    assert [m["model"] for m in entry["teacher"]["members"]] == [str(t) for t in teachers]
    kept = pq.read_table(tmp_path / "kept" / "tiny.parquet")
    assert "text" not in kept.column_names and str(kept.schema.field("probs").type) == "list<element: uint8>"

    from training.silver_store import unpack

    (working,) = unpack(str(tmp_path / "kept"), str(tmp_path / "shared"), str(tmp_path / "cache"))
    back = {r["doc_id"]: r for r in pq.read_table(working).to_pylist()}
    for r in read_parts(tmp_path / "work"):
        b = back[r["doc_id"]]
        assert b["text"] == r["text"] and b["word_start"] == r["word_start"] and b["word_end"] == r["word_end"]
        p = np.asarray(b["probs"], dtype=np.float32).reshape(r["probs"].shape)
        # 8 bits on a square-root scale: |p - p'| <= (2 sqrt(p) + 1/510) / 510 (+ fp16)
        assert (np.abs(p - r["probs"]) <= (2 * np.sqrt(r["probs"]) + 1 / 510) / 510 + 2e-3).all()
        tiny = r["probs"][r["probs"] > 1e-4]
        assert (np.asarray(b["probs"]).reshape(r["probs"].shape)[r["probs"] > 1e-4] > 0).all() and len(tiny)
    assert main(["distill", "--config", str(distill_config(tmp_path, teachers, tmp_path / "shared"))]) == 0
    assert json.loads((tmp_path / "student" / "summary.json").read_text())["silver_windows"] >= 3


def test_a_changed_source_is_refused_with_the_file_named(tmp_path, teachers, capsys):  # noqa: F811
    assert main(["label", "--config", str(kept_label_config(tmp_path, teachers))]) == 0
    corpus = tmp_path / "shared" / "corpus" / "c.jsonl"
    corpus.write_text(corpus.read_text().replace("Smith", "Smyth"), encoding="utf-8")
    assert main(["distill", "--config", str(distill_config(tmp_path, teachers, tmp_path / "shared"))]) == 2
    err = capsys.readouterr().err
    assert "c.jsonl" in err and "sha256" in err and "Relabel" in err


def test_a_missing_source_says_where_it_looked(tmp_path, teachers):  # noqa: F811
    from training.silver_store import SilverSourceError, unpack

    assert main(["label", "--config", str(kept_label_config(tmp_path, teachers))]) == 0
    with pytest.raises(SilverSourceError, match="not found under .*data.silver_root"):
        unpack(str(tmp_path / "kept"), str(tmp_path / "elsewhere"), str(tmp_path / "cache"))
