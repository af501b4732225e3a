#!/usr/bin/env bash
# Exercise the cluster path of the README: start a Ray head, submit the batch job with
# `ray job submit --working-dir .`, check its output, stop the head.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export RAY_AUTH_MODE=disabled
OUT=${1:-/tmp/ner_cluster_demo}
rm -rf "$OUT"
ray start --head --num-cpus 2 --disable-usage-stats --dashboard-host 127.0.0.1 >/dev/null
trap 'ray stop --force >/dev/null 2>&1 || true' EXIT
RAY_ADDRESS=http://127.0.0.1:8265 ray job submit --working-dir . \
  --runtime-env-json '{"excludes": [".venv", "runs", "output", ".git"]}' \
  -- python -m extract run --config configs/extract.yaml --set output.path="$OUT" --set show_progress=false
python - "$OUT" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/run.json"))
assert r["complete"] and r["documents"] == 200, r["by_status"]
print("cluster run ok:", r["by_status"], r["by_label"])
PY
