"""Helpers for scripts/cluster_check.sh: free ports, this node's Ray address, the output check.

    python scripts/cluster_check_helper.py ports N        N free TCP ports, one a line
    python scripts/cluster_check_helper.py ip             the address Ray registers this machine under
    python scripts/cluster_check_helper.py check INPUT OUTPUT
        run.json complete, every input record exactly once in docs/ (JSONL inputs: one record a
        non-blank line); prints a one-line summary, exits 1 with the reason otherwise.
"""
from __future__ import annotations

import gzip
import json
import socket
import sys
from pathlib import Path


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):  # hold them all open so the n ports differ
        s = socket.socket()
        s.bind(("", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def jsonl_records(path: Path) -> int | None:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson")):
        opener = open
    elif name.endswith((".jsonl.gz", ".ndjson.gz")):
        opener = gzip.open
    else:
        return None
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def check(inp: str, out: str) -> str:
    import pyarrow.parquet as pq

    out_dir = Path(out)
    run = out_dir / "run.json"
    if not run.is_file():
        raise SystemExit(f"check: no {run}")
    report = json.loads(run.read_text())
    if not report.get("complete"):
        raise SystemExit(f"check: run.json says complete={report.get('complete')}")
    parts = sorted((out_dir / "docs").glob("part-*.parquet"))
    if not parts:
        raise SystemExit(f"check: no docs parts in {out_dir / 'docs'}")
    ids = [i for p in parts for i in pq.read_table(p, columns=["doc_id"]).column("doc_id").to_pylist()]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"check: {len(ids) - len(set(ids))} doc_id(s) written more than once")
    expected = jsonl_records(Path(inp)) if Path(inp).is_file() else None
    if expected is not None and len(ids) != expected:
        raise SystemExit(f"check: {len(ids)} docs rows for {expected} input records")
    if report.get("documents") != len(ids):
        raise SystemExit(f"check: run.json documents={report.get('documents')} but {len(ids)} docs rows")
    leftovers = [p.name for sub in ("docs", "entities") for p in (out_dir / sub).glob(".*.tmp")]
    if leftovers:
        raise SystemExit(f"check: temporary files left: {leftovers[:5]}")
    return (f"output ok: {len(ids)} records once each in {len(parts)} docs parts"
            + (f" (input has {expected})" if expected is not None else " (input not JSONL: count not compared)")
            + f", by_status={report.get('by_status')}")


def main(argv: list[str]) -> None:
    cmd = argv[0] if argv else ""
    if cmd == "ports":
        print("\n".join(map(str, free_ports(int(argv[1])))))
    elif cmd == "ip":
        import ray._private.services as services

        print(services.get_node_ip_address())
    elif cmd == "check":
        print(check(argv[1], argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
