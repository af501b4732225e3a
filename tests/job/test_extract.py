"""The batch job end to end through its CLI, on both runners, with the same assertions."""
from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from tests.helpers import check_sample_output, common, run_cli, sorted_entities, tables


@pytest.mark.ray
def test_local_and_ray_runners_write_identical_tables(tiny_model_dir, tmp_path, ray_local):
    for runner in ("local", "ray"):
        assert run_cli(*common(tiny_model_dir, tmp_path / runner, runner)) == 0
        check_sample_output(tmp_path / runner)
    local, ray_ = sorted_entities(tmp_path / "local"), sorted_entities(tmp_path / "ray")
    assert local.num_rows > 0
    assert local.equals(ray_)


def test_formats_csv_parquet_json_and_text_folder(tiny_model_dir, tmp_path):
    import pyarrow as pa

    src = tmp_path / "in"
    (src / "txt" / "sub").mkdir(parents=True)
    (src / "txt" / "sub" / "a.txt").write_text("Bonn\r\nJohn Smith 😀 北京", encoding="utf-8")
    (src / "txt" / "b.txt").write_bytes(b"caf\xe9")
    (src / "txt" / "empty.txt").write_bytes(b"")
    (src / "d.csv").write_text('doc,text\nc1,"Line one,\nline two"\nc2,Paris\n', encoding="utf-8")
    pq.write_table(pa.table({"doc": ["p1", "p2"], "text": ["New York", None]}), src / "e.parquet")
    (src / "f.json").write_text(json.dumps([{"doc": "j1", "text": "Reuters"}]), encoding="utf-8")
    out = tmp_path / "out"
    assert run_cli(*common(tiny_model_dir, out, "local"), "--set", f"input.path=[{src / '*.*'}, {src / 'txt'}]",
                   "--set", "input.id_column=doc", "--set", "input.text_columns=[text]") == 0
    _, docs = tables(out)
    status = {r["doc_id"]: r["status"] for r in docs.to_pylist()}
    assert status == {"c1": "ok", "c2": "ok", "p1": "ok", "p2": "empty", "j1": "ok",
                      os.path.join("sub", "a.txt"): "ok", "b.txt": "ok", "empty.txt": "empty"}


def test_config_problems_exit_2_before_any_work(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = common(tiny_model_dir, out, "local")
    assert run_cli(*base, "--set", "inference.batchsize=3") == 2
    assert "Did you mean 'batch_size'" in capsys.readouterr().err
    assert run_cli(*base, "--set", "inference.batch_size=many") == 2
    assert "inference.batch_size: expected an integer" in capsys.readouterr().err
    assert run_cli(*base, "--set", f"model.path={tmp_path / 'nope'}") == 2
    assert "Model directory not found" in capsys.readouterr().err
    assert run_cli(*base, "--set", f"input.path={tmp_path / 'none*.jsonl'}") == 2
    assert "matched no" in capsys.readouterr().err
    assert run_cli(*base, "--set", "input.text_columns=[bdy]") == 2  # found in the first records, not at the end
    err = capsys.readouterr().err
    assert "columns found: id, title, body" in err and "Did you mean 'body'" in err
    assert not (tmp_path / "never").exists()


def test_parquet_missing_column_is_a_config_error(tiny_model_dir, tmp_path, capsys):
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "x.parquet")
    rc = run_cli(*common(tiny_model_dir, tmp_path / "out", "local"), "--set", f"input.path={tmp_path / 'x.parquet'}",
                 "--set", "input.text_columns=[bdy]")
    assert rc == 2 and "Did you mean 'body'" in capsys.readouterr().err


def test_rerun_skips_done_shards_and_never_duplicates(tiny_model_dir, tmp_path):
    args = common(tiny_model_dir, tmp_path / "full", "local") + ["--set", "input.shard_bytes=20000"]
    assert run_cli(*args) == 0
    full = sorted_entities(tmp_path / "full")
    # A crash leaves some shards finished, one with entities but no docs part, and a temp file.
    out = tmp_path / "crashed"
    shutil.copytree(tmp_path / "full", out)
    parts = sorted((out / "docs").glob("part-*.parquet"))
    for p in parts[3:]:
        p.unlink()
    (out / "docs" / ".part-x.parquet.tmp").write_bytes(b"half")
    args = common(tiny_model_dir, out, "local") + ["--set", "input.shard_bytes=20000"]
    assert run_cli(*args) == 0
    report = json.loads((out / "run.json").read_text())
    assert report["this_run"]["shards"] == len(parts) - 3
    assert sorted_entities(out).equals(full)
    check_sample_output(out)
    assert run_cli(*args) == 0  # a third run has nothing to do
    assert json.loads((out / "run.json").read_text())["this_run"]["shards"] == 0
    assert sorted_entities(out).equals(full)
    # A different job into the same folder is refused; --overwrite starts fresh.
    assert run_cli(*args, "--set", "model.min_score=0.5") == 2
    assert run_cli(*args, "--set", "model.min_score=0.5", "--overwrite") == 0
    assert json.loads((out / "run.json").read_text())["this_run"]["shards"] == len(parts)
