"""Multi-node Ray on this one machine: the batch job survives a killed worker node
(scripts/cluster_check.sh), and an output folder the workers cannot share with the driver is refused
(runner_ray.check_output_visible).

Each test starts its own cluster in a subprocess (never the session's embedded `ray_local`) and
stops exactly what it started.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], timeout: float, **kw) -> tuple[int, str]:
    """Run ``cmd``; past ``timeout`` send SIGTERM (the script's trap stops its cluster), then SIGKILL."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        out += f"\n[test] timed out after {timeout:.0f}s"
    return proc.returncode, out


@pytest.mark.slow
@pytest.mark.ray
def test_job_on_a_three_node_cluster_survives_a_killed_worker_node(tiny_model_dir, tmp_path):
    import pyarrow.parquet as pq

    from extract.core.job_config import InputConfig

    n = 2000
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": f"d{i}", "text": f"John Smith of Germany said {i} times in New York."}) + "\n"
             for i in range(n)]
    corpus.write_text("".join(lines))
    out = tmp_path / "out"
    args = ["--set", f"model.path={tiny_model_dir}", "--set", "input.shard_size=20", "--set", "inference.threads=1",
            "--set", "model.labels=[PER,LOC,ORG,MISC]", "--set", "input.text_columns=[text]"]
    if "shard_bytes" in {f.name for f in dataclasses.fields(InputConfig)}:  # JSON lines are cut by bytes
        args += ["--set", f"input.shard_bytes={sum(len(x) for x in lines[:20])}"]  # ~20 records a shard
    t0 = time.time()
    rc, log = _run(["bash", str(ROOT / "scripts" / "cluster_check.sh"), str(corpus), str(out), *args],
                   timeout=400, env={**os.environ, "CLUSTER_CHECK_TIMEOUT": "200"})
    summary = [x for x in log.splitlines() if x.startswith("[cluster_check") or x.startswith("error:")]
    print(f"\ncluster_check.sh: rc={rc} in {time.time() - t0:.1f}s\n" + "\n".join(summary))
    assert rc == 0, log[-6000:]
    assert "SIGKILLed worker node" in log and "PASS" in log
    report = json.loads((out / "run.json").read_text())
    assert report["complete"] and report["documents"] == n
    ids = [i for p in sorted((out / "docs").glob("part-*.parquet"))
           for i in pq.read_table(p, columns=["doc_id"]).column("doc_id").to_pylist()]
    assert sorted(ids) == sorted(f"d{i}" for i in range(n))  # every record exactly once


PROBES = r'''
import json, os, sys, traceback
import ray
from ray.cluster_utils import Cluster
from extract.job.runner_ray import check_output_visible

base = sys.argv[1]
results = {}
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
try:
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    results["nodes"] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    LOCAL = workers[0].node_id
    results["local_node"] = LOCAL

    def outcome(out, **kw):
        try:
            check_output_visible(out, **kw)
            return "ok"
        except ValueError as exc:
            return f"ValueError: {exc}"

    shared = os.path.join(base, "shared")
    results["shared"] = outcome(shared)
    results["shared_left"] = sorted(os.listdir(shared))
    results["file_uri"] = outcome("file://" + os.path.join(base, "via-uri"))
    results["file_uri_left"] = sorted(os.listdir(os.path.join(base, "via-uri")))
    results["s3"] = outcome("s3://bucket/never-probed")

    def node_local(folder, name, token):  # one node's "local disk" is another folder
        import os, ray
        if ray.get_runtime_context().get_node_id() == LOCAL:
            folder = os.path.join(os.path.dirname(folder), "disk-of-" + LOCAL[:8])
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            f.write(token)

    local = os.path.join(base, "local")
    results["local"] = outcome(local, probe_writer=node_local)
    results["local_exists"] = os.path.exists(local)

    def read_only(folder, name, token):
        import os, ray
        if ray.get_runtime_context().get_node_id() == LOCAL:
            raise PermissionError(13, "Permission denied", folder)
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, name), "w").write(token)

    results["readonly"] = outcome(os.path.join(base, "readonly"), probe_writer=read_only)
    results["readonly_exists"] = os.path.exists(os.path.join(base, "readonly"))
except Exception:
    results["crash"] = traceback.format_exc()
finally:
    ray.shutdown()
    cluster.shutdown()
print("RESULTS " + json.dumps(results))
'''


@pytest.mark.slow
@pytest.mark.ray
def test_output_folder_not_shared_by_every_node_is_refused(tmp_path):
    t0 = time.time()
    rc, log = _run([sys.executable, "-c", PROBES, str(tmp_path)], timeout=240, cwd=str(ROOT),
                   env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    print(f"\nprobes on a 3-node Cluster: {time.time() - t0:.1f}s")
    line = next((x for x in log.splitlines() if x.startswith("RESULTS ")), None)
    assert rc == 0 and line, log[-6000:]
    r = json.loads(line[len("RESULTS "):])
    assert "crash" not in r, r["crash"]
    assert len(r["nodes"]) == 3
    # shared: passes, and the driver took every probe back
    assert r["shared"] == "ok" and r["shared_left"] == []
    assert r["file_uri"] == "ok" and r["file_uri_left"] == []
    assert r["s3"] == "ok"  # object stores are not probed
    # one node writes to its own "disk": refused, naming that node and only that node
    assert r["local"].startswith(f"ValueError: output.path {tmp_path / 'local'} is not shared: files written by "
                                 f"worker node(s) {r['local_node'][:12]} (")
    assert r["local"].endswith("are not visible to the driver. Use shared storage (NFS, s3://...).")
    assert [n for n in r["nodes"] if n[:12] in r["local"]] == [r["local_node"]]  # that node only
    assert r["local_exists"] is False  # a folder the check created is removed again
    assert r["readonly"].startswith(f"ValueError: output.path {tmp_path / 'readonly'} cannot be written from worker "
                                    f"node(s) {r['local_node'][:12]} (")
    assert "PermissionError" in r["readonly"] and r["readonly_exists"] is False


@pytest.mark.ray
def test_output_check_is_a_no_op_on_one_node(ray_local, tmp_path):
    from extract.job.runner_ray import check_output_visible

    check_output_visible(str(tmp_path / "out"))
    check_output_visible("s3://bucket/x")
    assert not (tmp_path / "out").exists()  # one node: nothing probed, nothing written
