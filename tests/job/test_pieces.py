"""A shard streams through the stages in pieces of at most inference.piece_chars characters
(extract/job/stages.py): the same tables as one piece, on both runners, and a job killed between
pieces resumes at the next piece.

"The same" is exact for every column but the score: a forward pass over other batches (another
padded width) sums in another order, so a score may differ in its last float32 bits (< 1e-6),
as it does for another inference.batch_size. Both runners cut the same pieces, so they agree
exactly with each other."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT, common, kill_on_env, run_cli, sorted_entities, tables

POISON = "POISON-RECORD-MARKER"


def _corpus(path: Path, n: int = 240, poison_at: int | None = None) -> Path:
    rows = [{"id": f"d{i % 200}", "text": f"John Smith of Germany met Acme Corp in New York on day {i}. " * (1 + i % 3)}
            for i in range(n)]  # ids d0..d39 come twice: the duplicate policy must hold across pieces
    if poison_at is not None:
        rows[poison_at]["text"] += f" {POISON}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(model: Path, out: Path, corpus: Path, runner: str, piece_chars: int) -> list[str]:
    # one shard for the whole corpus (~30 kB), cut into pieces of ~1 kB: ~30 pieces
    return [*common(model, out, runner), "--set", f"input.path={corpus}", "--set", "input.text_columns=[text]",
            "--set", "input.shard_bytes=100000000", "--set", f"inference.piece_chars={piece_chars}",
            "--set", "ray.num_cpus=2"]


def _same(a: Path, b: Path, exact: bool = False) -> None:
    ea, eb = sorted_entities(a), sorted_entities(b)
    if exact:
        assert ea.equals(eb)
    assert ea.drop_columns(["score"]).equals(eb.drop_columns(["score"]))
    np.testing.assert_allclose(ea.column("score").to_numpy(), eb.column("score").to_numpy(), rtol=0, atol=1e-6)
    (_, da), (_, db) = tables(a), tables(b)
    key = [("shard", "ascending"), ("index", "ascending")]
    assert da.sort_by(key).equals(db.sort_by(key))
    ra, rb = (json.loads((x / "run.json").read_text()) for x in (a, b))
    for k in ("documents", "by_status", "entities", "by_label", "words", "wordpieces"):
        assert ra[k] == rb[k], k


def _pieces(out: Path) -> int:
    (stats,) = list((out / "stats").glob("part-*.json"))
    return json.loads(stats.read_text())["pieces"]


@pytest.mark.parametrize("runner", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_a_shard_many_times_the_budget_goes_in_pieces_with_the_same_tables(tiny_model_dir, tmp_path, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_local")
    corpus = _corpus(tmp_path / "c.jsonl")
    assert run_cli(*_args(tiny_model_dir, tmp_path / "whole", corpus, "local", 10_000_000)) == 0
    assert run_cli(*_args(tiny_model_dir, tmp_path / "pieces", corpus, runner, 1000)) == 0
    assert _pieces(tmp_path / "whole") == 1 and _pieces(tmp_path / "pieces") > 10
    _same(tmp_path / "pieces", tmp_path / "whole")
    _, docs = tables(tmp_path / "pieces")
    assert docs.num_rows == 240 and docs.column("status").to_pylist().count("skipped") == 40  # duplicates
    assert not list((tmp_path / "pieces").glob("_pieces/*/*"))  # staging removed after assembly
    if runner == "ray":  # the runners cut the same pieces: identical to the last bit
        assert run_cli(*_args(tiny_model_dir, tmp_path / "local", corpus, "local", 1000)) == 0
        _same(tmp_path / "pieces", tmp_path / "local", exact=True)


def test_a_job_killed_between_pieces_resumes_at_the_next_piece(tiny_model_dir, tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl", poison_at=150)
    argv = [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"),
            *_args(tiny_model_dir, tmp_path / "out", corpus, "local", 1000)]
    env = kill_on_env(POISON)  # the process dies predicting record 150, pieces before it are staged
    assert subprocess.run(argv, cwd=ROOT, env=env, capture_output=True).returncode == 137
    staged = sorted(p.name for p in (tmp_path / "out").glob("_pieces/*/p*.docs.parquet"))
    assert len(staged) >= 5 and not list((tmp_path / "out" / "docs").glob("part-*"))
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("_pieces/*/p*.docs.parquet")}
    env.pop("NERBATCH_TEST_KILL_ON")
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert run_cli(*_args(tiny_model_dir, tmp_path / "ref", corpus, "local", 1000)) == 0
    _same(tmp_path / "out", tmp_path / "ref")
    assert all(not p.exists() for p in mtimes)  # assembled, then removed: none was rewritten in place
    assert not list((tmp_path / "out" / "_attempts").glob("*.json"))
