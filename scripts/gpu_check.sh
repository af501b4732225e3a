#!/usr/bin/env bash
# One prepared check for a lent GPU machine (never run by default; GPU is never the default):
#   1. the gpu-marked tests (CUDA job vs CPU spans in fp32/bf16/fp16, a GPU actor on Ray),
#   2. the bench with --device cuda --dtype bf16 on >= 20,000 documents, with GPU utilisation
#      sampled every second by nvidia-smi, summarised under the bench's table.
# Usage: scripts/gpu_check.sh [DOCS]   (writes logs under ${OUT:-runs/gpu_check})
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${1:-20000}
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if [ -x .venv/bin/python ]; then . .venv/bin/activate; else scripts/setup.sh && . .venv/bin/activate; fi
export RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$OUT/gpu_util.csv" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
python scripts/bench_extract.py --docs "$DOCS" --device cuda --dtype bf16 --gpus-per-actor 1 --actors 1 \
  --batch-tokens 65536 --skip-planning 2>&1 | tee "$OUT/bench.log"
kill $SMI 2>/dev/null || true
python - "$OUT/gpu_util.csv" <<'PY'
import sys
rows = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]) if l.strip() and "," in l]
busy = [u for u, _ in rows]
if rows:
    print(f"\nGPU utilisation over {len(rows)} s of the bench: mean {sum(busy) / len(busy):.0f}%, "
          f"max {max(busy):.0f}%, time above 50%: {sum(u > 50 for u in busy) / len(busy):.0%}; "
          f"memory used max {max(m for _, m in rows):,.0f} MiB")
PY
