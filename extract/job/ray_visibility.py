"""Is the output folder shared? Before a job on a multi-node cluster writes anything, one small
task on every node writes a probe file the driver must see, and reads the driver's: a node-local
folder fails here with the nodes named, not after hours as missing parts."""
from __future__ import annotations

import os
from typing import Any


def check_output_visible(out_dir: str, *, timeout_s: float = 120.0, probe_writer: Any = None) -> None:
    """Refuse an output folder that the workers of a multi-node Ray cluster would write to their own
    disks: each alive node writes ``<out>/.probe-<node id>`` from a task pinned to it, and the driver
    must see every probe (it then deletes them). Call with Ray initialised (``init``).

    A single-node Ray (the embedded one) and object-store URIs (``s3://``, ``gs://``: shared by
    construction) are not probed; ``file://`` URIs and plain paths are. A node whose probe task
    raises (say, it cannot create the folder) is refused too; a node that dies or does not answer
    within ``timeout_s`` is left out with a warning. ``probe_writer(folder, name, token)`` replaces
    the function that writes a probe on the workers (tests; pickled by value, so define it locally).
    Raises ValueError naming the nodes.
    """
    import sys
    import uuid
    from urllib.parse import urlparse

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    scheme = urlparse(str(out_dir)).scheme
    if scheme and scheme != "file":
        return  # an object store: every node sees the same bucket
    path = urlparse(str(out_dir)).path if scheme == "file" else str(out_dir)
    folder = os.path.abspath(os.path.expanduser(path))  # the workers' working directories differ
    if not ray.is_initialized():
        raise RuntimeError("check_output_visible needs Ray initialised (runner_ray.init) first")
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}
    if len(nodes) <= 1:
        return

    def write_probe(folder: str, name: str, token: str) -> None:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(token)

    def probe(folder: str, name: str, token: str, writer: Any) -> bool:
        """On the node: write the probe; whether this node created the folder."""
        created = not os.path.isdir(folder)
        writer(folder, name, token)
        return created

    def unprobe(folder: str, name: str, created: bool) -> None:
        """On a node whose probe the driver cannot see: take back what the probe left there."""
        try:
            os.unlink(os.path.join(folder, name))
            if created:
                os.rmdir(folder)
        except OSError:
            pass

    token = uuid.uuid4().hex
    existed = os.path.isdir(folder)
    remote_probe = ray.remote(probe)
    refs = {remote_probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                node_id=node, soft=False)).remote(folder, f".probe-{node}", token, probe_writer or write_probe): node
            for node in nodes}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    for ref in pending:
        ray.cancel(ref, force=True)
    unwritable, invisible, skipped, created = [], [], [], {}
    for ref in ready:
        node = refs[ref]
        try:
            created[node] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            unwritable.append(f"{_node_name(node, nodes)}: {type(exc.cause).__name__}: {exc.cause}")
            continue
        except ray.exceptions.RayError as exc:  # the node died, or its worker did
            skipped.append(f"{_node_name(node, nodes)} ({type(exc).__name__})")
            continue
        probe_file = os.path.join(folder, f".probe-{node}")
        try:
            with open(probe_file, encoding="utf-8") as f:
                seen = f.read() == token
            os.unlink(probe_file)
        except OSError:
            seen = False
        if not seen:
            invisible.append(node)
    skipped += [f"{_node_name(refs[ref], nodes)} (no answer in {timeout_s:.0f}s)" for ref in pending]
    if skipped:
        print(f"warning: output.path {folder}: could not check worker node(s) {', '.join(skipped)}", file=sys.stderr)
    if invisible:  # take the probes back from the nodes' own disks
        remote_unprobe = ray.remote(unprobe)
        ray.wait([remote_unprobe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                      node_id=node, soft=False)).remote(folder, f".probe-{node}", created[node]) for node in invisible],
                 num_returns=len(invisible), timeout=timeout_s)
    if (invisible or unwritable) and not existed:
        try:
            os.rmdir(folder)  # made by a probe on the driver's node: leave nothing behind
        except OSError:
            pass
    if invisible:
        raise ValueError(f"output.path {folder} is not shared: files written by worker node(s) "
                         f"{', '.join(_node_name(n, nodes) for n in invisible)} are not visible to the driver. "
                         "Use shared storage (NFS, s3://...).")
    if unwritable:
        raise ValueError(f"output.path {folder} cannot be written from worker node(s) {'; '.join(unwritable)}. "
                         "Use a folder every node can write: shared storage (NFS, s3://...).")


def _node_name(node_id: str, nodes: dict) -> str:
    return f"{node_id[:12]} ({nodes.get(node_id, '?')})"
