#!/usr/bin/env bash
# A three-node Ray cluster on this one machine, the batch job submitted to it, one worker node
# killed mid-job, and the output checked:
#
#   scripts/cluster_check.sh INPUT OUTPUT [--set key=value ...]
#
# - head: 0 CPUs (no task or actor runs there; the job's driver does, as `ray job submit` puts it
#   on the head), two workers: 2 logical CPUs each, so the node that survives can hold both
#   restarted model actors (0.75 CPU each) and the CPU stages beside them. Every node is a `ray start --block` in its own process
#   group (setsid), with its own free ports and a private --temp-dir under /tmp, so other Rays on the
#   machine are neither joined nor disturbed. Nodes register under the machine's own address (Ray
#   uses the eth0 address even when told 127.0.0.1; mixing the two hangs); the traffic stays here.
# - The job goes in with `ray job submit` and no --working-dir: the nodes share this filesystem, this
#   checkout and its venv (the project is installed editable), and the entrypoint runs in the
#   head's working directory, the project root. Shipping the tree would only add a zip and upload.
# - Once docs/part-*.parquet files appear, a worker node whose MapWorker actor is busy with a shard
#   is SIGKILLed (its raylet, agents and workers, in whatever process group), as if the machine
#   died. The job must still finish: run.json complete and every input record exactly once in
#   docs/ (JSONL: one record per non-blank line).
# - On exit (also on failure or Ctrl-C) every node this script started is stopped by its process
#   group: SIGTERM, then SIGKILL. Nothing else is touched. Exit 0 only when the job completed
#   correctly. Logs stay in the printed folder on failure. CLUSTER_CHECK_TIMEOUT (s, default 600)
#   bounds the job; CLUSTER_CHECK_DRIVER_ENV="K=V ..." sets environment variables for the job's
#   driver only (to try Ray settings, e.g. RAY_task_actor_unavailable_retry_delay_base_ms=2000).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 INPUT OUTPUT [--set key=value ...]" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. .venv/bin/activate
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
INPUT=$(realpath -m -- "$1")
OUTPUT=$(realpath -m -- "$2")  # absolute: every "node" writes to the same place
shift 2
TIMEOUT=${CLUSTER_CHECK_TIMEOUT:-600}
HELPER=(python "$ROOT/scripts/cluster_check_helper.py")
TMP=$(mktemp -d /tmp/nercc.XXXXXX)  # short: Ray's socket paths live under it
PGIDS=()
SUBMIT_PID=
OK=0
T0=$(date +%s.%N)

say() { printf '[cluster_check %6.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }

descendants() {  # every process below pid $1, one a line
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q in parent && q != root && q > 1) q = parent[q]; if (q == root && p != root) print p } }'
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SUBMIT_PID" ]; then kill "$SUBMIT_PID" 2>/dev/null || true; fi
  local pg alive pids
  # Ray workers and the job's driver run in process groups of their own, under the raylets:
  # take every descendant of the nodes' leaders, not only their groups.
  pids=$(for pg in "${PGIDS[@]}"; do descendants "$pg"; done)
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for _ in $(seq 10); do  # up to 5 s for a graceful stop
    alive=0
    for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$OK" = 1 ] && [ $rc = 0 ]; then
    rm -rf "$TMP"
    say "cluster stopped"
  else
    say "cluster stopped; FAILED (rc=$rc); node logs: $TMP"
    [ $rc = 0 ] && rc=1
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t P < <("${HELPER[@]}" ports 6)
GCS_PORT=${P[0]} DASH_PORT=${P[1]} CLIENT_PORT=${P[2]}
IP=$("${HELPER[@]}" ip)
GCS="$IP:$GCS_PORT"
DASH="http://127.0.0.1:$DASH_PORT"
COMMON=(--block --disable-usage-stats --temp-dir "$TMP/ray" --min-worker-port 0 --max-worker-port 0
        --object-store-memory 200000000 --num-gpus 0)

start_node() {  # name agent_port args...: a `ray start --block` leading its own process group
  local name=$1 agent=$2
  shift 2
  setsid ray start "${COMMON[@]}" --dashboard-agent-listen-port "$agent" "$@" >"$TMP/$name.log" 2>&1 &
  NODE_PGID=$!  # bash without job control does not make it a group leader, so setsid does not fork
  disown "$NODE_PGID"  # no "Killed" notice from bash when a node is killed
  PGIDS+=("$NODE_PGID")
}

start_node head "${P[3]}" --head --num-cpus 0 --port "$GCS_PORT" --ray-client-server-port "$CLIENT_PORT" \
  --include-dashboard true --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT"
HEAD_PGID=$NODE_PGID
wait_started() {  # name pgid: until its `ray start` says the node is up
  for _ in $(seq 180); do
    grep -q "Ray runtime started" "$TMP/$1.log" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.5
  done
  cat "$TMP/$1.log" >&2
  say "node $1 did not start"
  exit 1
}
wait_started head "$HEAD_PGID"
# One at a time: nodes sharing a session folder pick socket names (raylet.1, raylet.2) as they start.
start_node worker1 "${P[4]}" --address "$GCS" --num-cpus 2
W1=$NODE_PGID
wait_started worker1 "$W1"
start_node worker2 "${P[5]}" --address "$GCS" --num-cpus 2
W2=$NODE_PGID
wait_started worker2 "$W2"
say "head $GCS (pgid $HEAD_PGID, dashboard $DASH), workers pgid $W1 $W2, temp dir $TMP"

python - "$GCS" <<'PY'
import sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
t0 = time.time()
while time.time() - t0 < 90:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) == 3 and ray.cluster_resources().get("CPU", 0) >= 4:
        break
    time.sleep(0.5)
else:
    sys.exit(f"only {len(alive)} of 3 nodes joined")
ray.shutdown()
PY
for _ in $(seq 60); do  # the job API answers once the dashboard is up
  ray job list --address "$DASH" >/dev/null 2>&1 && break
  sleep 1
done
say "3 nodes alive (2 CPUs on each worker); submitting"

JOB=nercc-$(date +%s)-$$
ENTRY=(python -m extract run --config configs/extract.yaml --set "input.path=$INPUT" --set "output.path=$OUTPUT"
       --set ray.num_actors=2 --set ray.cpus_per_actor=0.75 --set show_progress=false "$@")
read -ra DRIVER_ENV <<<"${CLUSTER_CHECK_DRIVER_ENV:-}"
[ ${#DRIVER_ENV[@]} = 0 ] || ENTRY=(env "${DRIVER_ENV[@]}" "${ENTRY[@]}")
ray job submit --address "$DASH" --submission-id "$JOB" -- "${ENTRY[@]}" &
SUBMIT_PID=$!

node_of_actor() {  # the worker node (its leader's pid) where a MapWorker actor is running a shard now
  local w pid title
  for w in "$W1" "$W2"; do
    for pid in $(descendants "$w"); do
      title=$(ps -o args= -p "$pid" 2>/dev/null || true)
      if [[ "$title" == "ray::MapWorker"*".submit"* ]]; then  # Ray titles a busy actor ...submit
        echo "$w"
        return
      fi
    done
  done
}

KILLED=
DEADLINE=$(( $(date +%s) + TIMEOUT ))
NEXT_NOTE=$(( $(date +%s) + 20 ))
while kill -0 "$SUBMIT_PID" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$NEXT_NOTE" ]; then
    say "$(compgen -G "$OUTPUT/docs/part-*.parquet" | wc -l) docs parts done"
    NEXT_NOTE=$(( $(date +%s) + 20 ))
  fi
  if [ -z "$KILLED" ] && compgen -G "$OUTPUT/docs/part-*.parquet" >/dev/null; then
    target=$(node_of_actor)
    if [ -n "$target" ]; then
      done_parts=$(compgen -G "$OUTPUT/docs/part-*.parquet" | wc -l)
      victims=$(descendants "$target")  # raylet, agents, and the workers in their own groups
      kill -KILL -- "-$target" $victims 2>/dev/null || true
      KILLED=$target
      say "SIGKILLed worker node $target ($(echo $victims | wc -w) processes, one a MapWorker busy with a shard) with $done_parts docs parts done"
    fi
  fi
  if [ "$(date +%s)" -gt "$DEADLINE" ]; then
    say "job still running after ${TIMEOUT}s: stopping it"
    ray job stop --address "$DASH" "$JOB" >/dev/null 2>&1 || true
    exit 1
  fi
  sleep 0.2
done
SUBMIT_RC=0
wait "$SUBMIT_PID" || SUBMIT_RC=$?
SUBMIT_PID=
ray job status --address "$DASH" "$JOB" >"$TMP/status.txt" 2>&1 || true
STATUS=$(grep -oiE "Job '$JOB' (succeeded|failed|stopped)" "$TMP/status.txt" | awk '{print toupper($NF)}' | tail -1 || true)
[ -n "$STATUS" ] || cat "$TMP/status.txt"
say "job $JOB: ${STATUS:-unknown} (ray job submit rc=$SUBMIT_RC)"
[ -n "$KILLED" ] || { say "no worker node was killed (the job ended before any shard was done?)"; exit 1; }
[ "$SUBMIT_RC" = 0 ] && [ "$STATUS" = SUCCEEDED ] || exit 1
"${HELPER[@]}" check "$INPUT" "$OUTPUT"
OK=1
say "PASS"
