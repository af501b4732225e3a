"""Issue 7: the job never deletes what it did not write, never mixes two jobs' outputs, and refuses
what it cannot honour (labels, settings) with exit 2 before touching anything."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.helpers import ROOT, common, run_cli, sorted_entities, tables


def _snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("path", ["", " ", ".", "/", "~", str(ROOT), str(ROOT.parent)])
def test_overwrite_refuses_dangerous_paths_before_touching_anything(tiny_model_dir, tmp_path, path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("user data")
    before = _snapshot(tmp_path)
    args = common(tiny_model_dir, tmp_path / "unused", "local")
    args[args.index(f"output.path={tmp_path / 'unused'}")] = f"output.path={path}"
    assert run_cli(*args, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "output.path" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before and (tmp_path / "precious.txt").read_text() == "user data"


def test_overwrite_deletes_only_a_folder_this_job_wrote(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    # A folder without the job marker is refused, even when empty of parquet.
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    assert run_cli(*common(tiny_model_dir, out, "local"), "--overwrite") == 2
    assert "not a folder this job wrote" in capsys.readouterr().err and (out / "thesis.docx").exists()
    # A job folder with a foreign file in it is refused too, and nothing is deleted.
    out2 = tmp_path / "out2"
    assert run_cli(*common(tiny_model_dir, out2, "local")) == 0
    (out2 / "docs" / "my-notes.txt").write_text("mine")
    parts = _snapshot(out2)
    assert run_cli(*common(tiny_model_dir, out2, "local"), "--overwrite") == 2
    assert "did not write (docs/my-notes.txt)" in capsys.readouterr().err
    assert _snapshot(out2) == parts
    # Without it, --overwrite starts fresh.
    (out2 / "docs" / "my-notes.txt").unlink()
    assert run_cli(*common(tiny_model_dir, out2, "local"), "--overwrite") == 0
    assert json.loads((out2 / "run.json").read_text())["this_run"]["shards"] > 0


def test_output_inside_the_input_is_refused(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "a", "text": "Bonn"}) + "\n")
    assert run_cli(*common(tiny_model_dir, tmp_path, "local"), "--set", f"input.path={tmp_path / 'c.jsonl'}",
                   "--set", "input.text_columns=[text]") == 2
    assert "contains the input file" in capsys.readouterr().err


def test_run_sample_script_never_passes_overwrite():
    script = (ROOT / "scripts" / "run_sample.sh").read_text()
    assert "--overwrite" not in script.split("python -m extract run", 1)[1].splitlines()[0]


@pytest.mark.parametrize("change, named", [
    (["--set", "inference.dtype=bf16"], "inference.dtype was 'fp32', now 'bf16'"),
    (["--set", "model.min_score=0.5"], "model.min_score"),
    (["--set", "model.labels=[PER]"], "model.labels"),
    (["--set", "input.joiner=' '"], "input.joiner"),
])
def test_resume_with_other_settings_is_refused_naming_them(tiny_model_dir, tmp_path, change, named, capsys):
    args = common(tiny_model_dir, tmp_path / "out", "local")
    assert run_cli(*args) == 0
    capsys.readouterr()
    assert run_cli(*args, *change) == 2
    assert named in capsys.readouterr().err


def test_resume_after_the_model_changed_is_refused(tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    args = common(model, tmp_path / "out", "local")
    assert run_cli(*args) == 0
    ents, _ = tables(tmp_path / "out")
    from extract.core.cache import file_sha256

    assert set(ents.column("model").to_pylist()) == {f"model@sha256:{file_sha256(model / 'model.safetensors')}"}
    cfg = json.loads((model / "config.json").read_text())
    cfg["ner_settings"]["temperature"] = 2.0  # same weights, other scores
    (model / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert run_cli(*args) == 2
    assert "model config.json" in capsys.readouterr().err
    # Weights changed in place (same size, same first MiB) are told apart by the full hash.
    (model / "config.json").write_text(json.dumps({**cfg, "ner_settings": {**cfg["ner_settings"], "temperature": 1.0}}))
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (model / "model.safetensors").write_bytes(bytes(data))
    assert run_cli(*args) == 2
    assert "weights (sha256)" in capsys.readouterr().err


def test_labels_the_model_cannot_produce_fail_listing_its_labels(tiny_model_dir, tmp_path, capsys):
    assert run_cli(*common(tiny_model_dir, tmp_path / "out", "local"), "--set", "model.labels=[PERSON]") == 2
    err = capsys.readouterr().err
    assert "PERSON cannot be produced" in err and "PER, LOC, ORG, MISC" in err
    assert not (tmp_path / "out").exists()


def test_records_without_the_text_columns_fail_fast_naming_the_columns(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": i, "content": "Bonn", "lang": "en"}) + "\n" for i in range(145)))
    rc = run_cli(*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={src}")
    assert rc == 2
    assert "columns found: id, content, lang" in capsys.readouterr().err


def test_duplicates_across_shards_are_settled_once_and_reruns_change_nothing(tiny_model_dir, tmp_path):
    src = tmp_path / "c.jsonl"
    rows = [{"id": f"d{i % 7}", "text": f"John Smith number {i} in Bonn."} for i in range(20)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = [*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={src}",
            "--set", "input.text_columns=[text]", "--set", "input.shard_bytes=150"]
    assert run_cli(*args) == 0
    ents, docs = tables(tmp_path / "out")
    status = docs.column("status").to_pylist()
    assert status.count("ok") == 7 and status.count("skipped") == 13
    ok = [r for r in docs.to_pylist() if r["status"] == "ok"]
    starts = [0]
    for r in rows:
        starts.append(starts[-1] + len(json.dumps(r)) + 1)
    assert [r["source"] for r in ok] == [f"{src}@{starts[i]}" for i in range(7)]  # first occurrences
    for r in docs.to_pylist():
        if r["status"] == "skipped":
            first = int(r["doc_id"][1:])
            assert r["error"] == f"duplicate id, first seen at {src}@{starts[first]}" and r["n_entities"] == 0
    assert set(ents.column("doc_id").to_pylist()) <= {r["doc_id"] for r in ok}
    assert json.loads((tmp_path / "out" / "run.json").read_text())["input"]["duplicate_ids"] == 13
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("part-*")}
    assert run_cli(*args) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("part-*")} == mtimes
    # Resuming after the shard holding first occurrences was lost settles to the same tables.
    full = sorted_entities(tmp_path / "out")
    first_part = tmp_path / "out" / "docs" / "part-00000-00000.parquet"
    n_first = pq.read_table(first_part).num_rows
    assert 1 < n_first < 7  # the shard holds some first occurrences, later shards their duplicates
    first_part.unlink()
    assert run_cli(*args) == 0
    assert sorted_entities(tmp_path / "out").equals(full)
    assert pq.read_table(first_part).num_rows == n_first


def test_a_rerun_reuses_the_saved_plan_and_a_changed_input_fails_its_shard(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Bonn {i}"}) + "\n" for i in range(50)))
    args = [*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={src}",
            "--set", "input.text_columns=[text]", "--set", "input.shard_bytes=200"]
    assert run_cli(*args) == 0
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert len(plan["shards"]) > 3 and all(s["stamps"] for s in plan["shards"])
    assert run_cli(*args) == 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["input"]["plan"] == "reused from plan.json"
    # The input changes under a half-done job: the shards still to run refuse to mix two versions.
    (tmp_path / "out" / "docs" / "part-00000-00001.parquet").unlink()
    src.write_text(src.read_text() + json.dumps({"id": "new", "text": "Paris"}) + "\n")
    capsys.readouterr()
    assert run_cli(*args) == 1
    assert "changed after this job planned it" in capsys.readouterr().err


def test_overwrite_takes_the_spill_a_stopped_ray_settle_left_and_nothing_else(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(*common(tiny_model_dir, out, "local")) == 0
    for sub, name in (("keys", "p-00000.arrow"), ("later", "r-00001.arrow")):
        (out / "_dups" / sub).mkdir(parents=True, exist_ok=True)
        (out / "_dups" / sub / name).write_bytes(b"spill")  # what a Ray job stopped mid-settle leaves
    (out / "_dups" / "notes.txt").write_text("mine")
    assert run_cli(*common(tiny_model_dir, out, "local"), "--overwrite") == 2
    assert "_dups/notes.txt" in capsys.readouterr().err and (out / "_dups" / "keys" / "p-00000.arrow").exists()
    (out / "_dups" / "notes.txt").unlink()
    assert run_cli(*common(tiny_model_dir, out, "local"), "--overwrite") == 0
    assert not (out / "_dups").exists() and (out / "run.json").exists()
