#!/usr/bin/env bash
# Set up, then run the batch job on the bundled sample (data/sample) with the bundled model
# (data/models/default) on an embedded local Ray. Extra arguments go to the job, e.g.
#   scripts/run_sample.sh --set runner=local
# A second run resumes (nothing left to do) and prints the same summary; it never deletes files.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
python -m extract run --config configs/extract.yaml --set input.shard_bytes=40000 "$@"  # 4 shards of the 155 kB sample
