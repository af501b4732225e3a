"""Helpers shared by the end-to-end tests: run the batch job's CLI in-process and read its tables."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset as pads
import yaml

from extract.__main__ import main
from extract.core import schema

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "reuters_sample.jsonl"
FIXTURES = ROOT / "tests" / "fixtures"
FAULT_INJECTION = ROOT / "tests" / "fault_injection"  # a sitecustomize.py: see kill_on_env


def run_cli(*args: str) -> int:
    return main(["run", "--config", str(ROOT / "configs" / "extract.yaml"), *args])


def tables(out: Path):
    ents = pads.dataset(str(out / "entities"), schema=schema.ENTITIES).to_table()
    docs = pads.dataset(str(out / "docs"), schema=schema.DOCS).to_table()
    return ents, docs


def source_texts(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        out[d["id"]] = "\n\n".join(x for x in (d["title"], d["body"]) if x)
    return out


def check_sample_output(out: Path) -> None:
    ents, docs = tables(out)
    assert ents.schema.equals(schema.ENTITIES) and docs.schema.equals(schema.DOCS)
    texts = source_texts(SAMPLE)
    ids = docs.column("doc_id").to_pylist()
    assert sorted(ids) == sorted(texts)  # every record exactly once
    assert set(docs.column("status").to_pylist()) <= {"ok", "empty"}
    for row in ents.to_pylist():
        assert texts[row["doc_id"]][row["start"]:row["end"]] == row["text"]
        assert row["label"] in {"PER", "LOC", "ORG", "MISC"} and 0.0 <= row["score"] <= 1.0
    per_doc = {}
    for d in ents.column("doc_id").to_pylist():
        per_doc[d] = per_doc.get(d, 0) + 1
    for row in docs.to_pylist():
        assert row["n_entities"] == per_doc.get(row["doc_id"], 0)
    report = json.loads((out / "run.json").read_text())
    assert report["documents"] == len(texts) and report["complete"]
    assert report["entities"] == ents.num_rows
    assert sum(report["by_status"].values()) == len(texts)
    assert report["this_run"]["words_per_second"] > 0


def sorted_entities(out: Path):
    ents, _ = tables(out)
    return ents.sort_by([("doc_id", "ascending"), ("start", "ascending"), ("label", "ascending")])


def common(model: Path, out: Path, runner: str) -> list[str]:
    # tiny windows (max_length 32 from the tiny model) force many window borders
    return ["--set", f"model.path={model}", "--set", f"output.path={out}", "--set", f"runner={runner}",
            "--set", "inference.threads=1", "--set", "show_progress=false",
            "--set", "model.labels=[PER, LOC, ORG, MISC]"]


def kill_on_env(marker: str, env: dict | None = None) -> dict:
    """The environment for a subprocess (and the embedded Ray it starts) in which predicting a record
    whose text holds ``marker`` kills the process (exit code 137), as a record that runs a worker out
    of memory would: tests/fault_injection/sitecustomize.py patches the predict step there."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FAULT_INJECTION), str(ROOT), env.get("PYTHONPATH")) if p)
    env["NERBATCH_TEST_KILL_ON"] = marker
    return env


def write_config(tmp_path: Path, backbone: Path, **over) -> Path:
    """A fine-tuning config on the tiny CoNLL fixture; ``section__key=value`` overrides a setting."""
    conll = str(FIXTURES / "tiny_conll.txt")
    cfg = {
        "data": {"train": conll, "dev": conll, "context": "document"},
        "model": {"backbone": str(backbone), "max_length": 32, "stride": 8, "dropout": 0.0},
        "optim": {"lr": "1e-3", "batch_size": 2, "epochs": 50, "max_steps": 6, "warmup": 0.0,
                  "schedule": "constant"},
        "run": {"output": str(tmp_path / "run"), "eval_every": 3, "log_every": 1, "device": "cpu",
                "threads": 1, "seed": 3},
    }
    for dotted, value in over.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
