"""One writer per output folder: a second job on the same folder is refused (exit 2) naming the
first, a lock left by a dead process of this host is taken over, and temporary files are named
per writer, so two writers never share one (extract/job/output.py ``lock``, extract/core/fs.py)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from extract.core import fs
from extract.core.config import ConfigError
from extract.job import output
from tests.helpers import ROOT, check_sample_output, common, run_cli, sorted_entities, tables
from tests.s3server import moto_endpoint, s3_bucket  # noqa: F401  (fixtures)


def _corpus(path: Path, n: int) -> Path:
    rows = [{"id": f"d{i}", "text": f"John Smith of Germany said {i} times in New York. " * 4} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "extract", "run", "--config", str(ROOT / "configs" / "extract.yaml"), *args]


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: no process has this pid now
    return p.pid


def _plant_lock(out: Path, pid: int, host: str | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    holder = {"pid": pid, "host": host or socket.gethostname(), "since": "2026-01-01T00:00:00+0000",
              "token": "planted"}
    (out / output.LOCK).write_text(json.dumps(holder))
    return holder


def _no_temps(out: Path) -> list[str]:
    return [str(p.relative_to(out)) for p in out.rglob("*.tmp")]


def test_two_jobs_started_together_one_writes_the_other_is_refused_naming_it(tiny_model_dir, tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl", 3000)  # ~10 s of work: the second job arrives while the first runs
    out = tmp_path / "out"
    args = [*common(tiny_model_dir, out, "local"), "--set", f"input.path={corpus}",
            "--set", "input.text_columns=[text]",
            "--set", "input.shard_bytes=20000", "--show", "0"]
    jobs = [subprocess.Popen(_cli(args), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(*job.communicate(timeout=300), job.returncode, job.pid) for job in jobs]
    codes = sorted(rc for _, _, rc, _ in results)
    assert codes == [0, 2], [(rc, err[-2000:]) for _, err, rc, _ in results]
    (_, _, _, winner), = [r for r in results if r[2] == 0]
    (_, err, _, _), = [r for r in results if r[2] == 2]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"is in use by another job (pid {winner} on host {socket.gethostname()}, since " in lines[0]
    # The winner's tables are whole and the same as a job's that ran alone; nothing is left behind.
    alone = tmp_path / "alone"
    assert run_cli(*[a.replace(f"output.path={out}", f"output.path={alone}") for a in args]) == 0
    assert sorted_entities(out).equals(sorted_entities(alone))
    docs, docs_alone = (tables(o)[1].sort_by([("shard", "ascending"), ("index", "ascending")]) for o in (out, alone))
    assert docs.num_rows == 3000 and docs.equals(docs_alone)
    assert not (out / output.LOCK).exists() and _no_temps(out) == []


def test_a_stale_lock_of_a_dead_process_here_is_taken_over(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    dead = _dead_pid()
    _plant_lock(out, dead)
    r = subprocess.run(_cli([*common(tiny_model_dir, out, "local"), "--show", "0"]), cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of a job that is no longer running (pid {dead} on host {socket.gethostname()}" \
        in r.stderr and "Traceback" not in r.stderr
    check_sample_output(out)
    assert not (out / output.LOCK).exists()
    # The same on a finished job's folder with --overwrite: the lock is the job's own file.
    _plant_lock(out, _dead_pid())
    (out / f".{output.LOCK}.stale-1-0badcafe.tmp").write_text("{}")  # a takeover killed half-way
    (out / ".run.json.123-0badcafe.tmp").write_text("{")  # a writer killed mid-write
    assert run_cli(*common(tiny_model_dir, out, "local"), "--overwrite") == 0
    check_sample_output(out)
    assert not (out / output.LOCK).exists() and _no_temps(out) == []


def test_a_live_lock_or_one_of_another_host_is_refused_and_left_alone(tiny_model_dir, tmp_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for out, holder in ((tmp_path / "live", _plant_lock(tmp_path / "live", sleeper.pid)),
                            (tmp_path / "remote", _plant_lock(tmp_path / "remote", _dead_pid(), "another-host"))):
            before = (out / output.LOCK).read_text()
            assert run_cli(*common(tiny_model_dir, out, "local")) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and f"(pid {holder['pid']} on host {holder['host']}, since " \
                f"{holder['since']})" in err
            assert (out / output.LOCK).read_text() == before and sorted(os.listdir(out)) == [output.LOCK]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_second_job_in_the_same_process_is_refused(tmp_path):
    held = output.lock(tmp_path / "out")
    try:
        with pytest.raises(ConfigError, match=f"pid {os.getpid()} on host"):
            output.lock(tmp_path / "out")
    finally:
        held.release()
    assert not (tmp_path / "out" / output.LOCK).exists()
    output.lock(tmp_path / "out").release()  # free again


def test_temporary_names_are_the_writers_own(tmp_path):
    path = str(tmp_path / "docs" / "part-00000-00001.parquet")
    names = {fs._tmp_name(path) for _ in range(20)}  # noqa: SLF001 - the one place temps are named
    assert len(names) == 20 and all(f".part-00000-00001.parquet.{os.getpid()}-" in n for n in names)
    code = "import sys; from extract.core import fs; print(fs._tmp_name(sys.argv[1]))"
    other = subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert other not in names and f".{os.getpid()}-" not in other
    # What the atomic writers use, and what the job's own cleaning recognises as its own.
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real(src, dst)

    os.replace = spy
    try:
        threads = [threading.Thread(target=fs.write_bytes_atomic, args=(path, b"x")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fs.write_bytes_atomic(str(tmp_path / "run.json"), b"{}")
    finally:
        os.replace = real
    assert len(set(seen)) == 5
    assert all(output.PART.match(n) for n in seen[:4]) and output.TOP_TEMP.match(seen[4])


def test_the_lock_on_an_object_store(s3_bucket, monkeypatch):  # noqa: F811 - the fixture
    monkeypatch.setattr(output, "LOCK_SETTLE_S", 0.05)
    out = s3_bucket + "/runs/out"
    held = output.lock(out)
    assert json.loads(fs.read_text(fs.join(out, output.LOCK)))["pid"] == os.getpid()
    with pytest.raises(ConfigError, match="is in use by another job"):
        output.lock(out)
    output.prepare(out, {"a": 1}, ("docs",), False)  # the lock alone does not make the folder foreign
    held.release()
    assert not fs.exists(fs.join(out, output.LOCK))
    fs.write_bytes_atomic(fs.join(out, output.LOCK), json.dumps(
        {"pid": _dead_pid(), "host": socket.gethostname(), "since": "then", "token": "old"}).encode())
    again = output.lock(out)  # stale: taken over
    assert json.loads(fs.read_text(fs.join(out, output.LOCK)))["token"] == again.holder["token"]
    output.prepare(out, {"a": 2}, ("docs",), True)  # --overwrite keeps the lock
    assert json.loads(fs.read_text(fs.join(out, output.LOCK)))["token"] == again.holder["token"]
    again.release()
    assert not fs.exists(fs.join(out, output.LOCK))
