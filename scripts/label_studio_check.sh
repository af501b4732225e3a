#!/usr/bin/env bash
# One real Label Studio round trip on 127.0.0.1:
#   job output -> `python -m extract review` tasks + labeling config -> Label Studio project (HTTP API)
#   -> a few annotations made through the API (a simulated annotator) -> JSON export
#   -> `python -m training corrections` -> counts checked.
# Label Studio lives in its own venv (runs/ls_venv, label-studio==1.23.2), never in .venv.
# Usage: scripts/label_studio_check.sh [OUT]   (no OUT: a 20-document job on the sample is run first)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LS_VENV=runs/ls_venv
WORK=runs/ls_check
mkdir -p "$WORK"

if [ ! -x "$LS_VENV/bin/label-studio" ]; then
  echo "== installing label-studio 1.23.2 into $LS_VENV (~2 minutes)"
  python3.11 -m venv "$LS_VENV"
  "$LS_VENV/bin/pip" install -q label-studio==1.23.2 label-studio-sdk
fi
echo "label-studio $("$LS_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))')"

. .venv/bin/activate
OUT=${1:-}
if [ -z "$OUT" ]; then
  OUT=$WORK/job
  head -n 20 data/sample/reuters_sample.jsonl > "$WORK/corpus.jsonl"
  echo "== extract job on 20 sample documents -> $OUT"
  python -m extract run --config configs/extract.yaml --overwrite --show 0 \
    --set input.path="$WORK/corpus.jsonl" --set output.path="$OUT" --set runner=local \
    --set inference.threads=1 --set show_progress=false
fi
echo "== review tasks"
python -m extract review "$OUT" --n 8 --strategy lowest-confidence --out "$WORK/tasks.json"

DATA=$(mktemp -d /tmp/ls_check.XXXXXX)
PORT=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
USER_EMAIL=reviewer@example.com
USER_PASS=$(python -c 'import secrets; print(secrets.token_hex(12))')
USER_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(20))')
echo "== label-studio start on 127.0.0.1:$PORT (data in $DATA)"
LABEL_STUDIO_BASE_DATA_DIR=$DATA "$LS_VENV/bin/label-studio" start --no-browser --host 127.0.0.1 --port "$PORT" \
  --username "$USER_EMAIL" --password "$USER_PASS" --user-token "$USER_TOKEN" > "$WORK/server.log" 2>&1 &
LS_PID=$!
stop() {
  if kill -0 "$LS_PID" 2>/dev/null; then
    echo "== stopping label-studio (pid $LS_PID)"
    kill "$LS_PID" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$LS_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$LS_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap stop EXIT

rc=0
"$LS_VENV/bin/python" scripts/label_studio_check_helper.py --url "http://127.0.0.1:$PORT" \
  --email "$USER_EMAIL" --password "$USER_PASS" --token "$USER_TOKEN" \
  --tasks "$WORK/tasks.json" --config "$WORK/tasks.xml" --annotate 3 --export "$WORK/export.json" || rc=$?
if [ $rc -ne 0 ]; then
  echo "== label studio API part failed (rc $rc); server log tail:"; tail -n 30 "$WORK/server.log"; exit $rc
fi
echo "== corrections"
python -m training corrections "$WORK/export.json" --out "$WORK/corrections.jsonl" | tee "$WORK/corrections_facts.json"
python - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
facts = json.load(open(f"{work}/corrections_facts.json"))
tasks = json.load(open(f"{work}/tasks.json"))
rows = [json.loads(l) for l in open(f"{work}/corrections.jsonl", encoding="utf-8")]
ann = json.load(open(f"{work}/annotated.json"))
assert facts["tasks"] == len(tasks), (facts, len(tasks))
assert facts["corrected"] == len(rows) == len(ann["doc_ids"]), (facts, len(rows), ann)
assert sorted(r["doc_id"] for r in rows) == sorted(ann["doc_ids"])
for r in rows:
    assert sorted(map(tuple, r["spans"])) == sorted(map(tuple, ann["spans"][r["doc_id"]])), r["doc_id"]
print(f"OK: {facts['tasks']} tasks exported, {facts['corrected']} corrected documents, {facts['spans']} spans, "
      f"matching what was annotated through the API")
EOF
