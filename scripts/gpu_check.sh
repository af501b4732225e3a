#!/usr/bin/env bash
# One prepared check for a lent GPU machine (bare: its own python3 with torch, transformers,
# tokenizers, safetensors, pyarrow, numpy, pyyaml, tqdm; no network, no venv, maybe no ray):
#   1. the gpu-marked tests (CUDA job vs CPU spans in fp32/bf16/fp16; the Ray one skips without ray),
#   2. the job (runner local, cuda, bf16, inference.batch_tokens 65536) on DOCS documents with GPU
#      utilisation sampled every second by nvidia-smi,
#   3. the model alone on random ids: wordpieces/s, the roofline beside the job's words/s,
#   4. the same job on the embedded Ray when ray is importable (else one line says it is skipped).
# Usage: scripts/gpu_check.sh [--cpu-rehearsal] [DOCS]      (logs under ${OUT:-runs/gpu_check})
#   --cpu-rehearsal: the same steps on this CPU machine (device cpu, fp32, a few hundred documents).
# Python: $PYTHON, else .venv/bin/python when there is one, else python3; the repository goes on
# PYTHONPATH (nothing is installed). Wheels missing on the machine (pytest and its dependencies:
# scripts/gpu_wheels.sh downloads them here) are carried in $GPU_WHEELS (default
# scripts/gpu_wheels/) and put on PYTHONPATH as they are (pure-Python wheels import from the zip).
set -euo pipefail
cd "$(dirname "$0")/.."
REHEARSAL=0
if [ "${1:-}" = "--cpu-rehearsal" ]; then REHEARSAL=1; shift; fi
if [ "$REHEARSAL" = 1 ]; then DOCS=${1:-300}; DEVICE=cpu; DTYPE=fp32; TOKENS=8192
else DOCS=${1:-20000}; DEVICE=cuda; DTYPE=bf16; TOKENS=65536; fi
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS=${GPU_WHEELS:-scripts/gpu_wheels}
PP="$PWD"
if [ -d "$WHEELS" ]; then for w in "$WHEELS"/*.whl; do [ -e "$w" ] && PP="$PP:$PWD/$w"; done; fi
export PYTHONPATH="$PP${PYTHONPATH:+:$PYTHONPATH}"
export RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
"$PYTHON" - <<'PY' | tee "$OUT/env.txt"
import importlib, sys
import extract
print(f"python {sys.version.split()[0]} ({sys.executable}); project {extract.__path__[0]}")
missing = []
for m in ("torch", "transformers", "tokenizers", "safetensors", "pyarrow", "numpy", "yaml", "tqdm", "pytest", "ray"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m} {getattr(mod, '__version__', '')}")
    except ImportError:
        missing.append(m)
print("  missing: " + (", ".join(missing) or "nothing"))
import torch
print(f"  cuda: {torch.cuda.is_available()}" + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
PY
if [ "$REHEARSAL" = 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
echo "== 1. gpu tests"
if "$PYTHON" -c "import pytest" 2>/dev/null; then
  "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider -rs tests/model/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" || true
else
  echo "pytest is not importable: carry its wheels in $WHEELS (scripts/gpu_wheels.sh); tests skipped" | tee "$OUT/gpu_tests.log"
fi
echo "== 2. the job: $DOCS documents, runner local, $DEVICE $DTYPE, batch_tokens $TOKENS"
SMI=""
if [ "$REHEARSAL" = 0 ]; then
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 1 > "$OUT/gpu_util.csv" &
  SMI=$!
  trap 'kill $SMI 2>/dev/null || true' EXIT
fi
"$PYTHON" scripts/gpu_check.py job --docs "$DOCS" --device "$DEVICE" --dtype "$DTYPE" --batch-tokens "$TOKENS" \
  --out "$OUT" | tee "$OUT/job.json"
if [ -n "$SMI" ]; then
  kill "$SMI" 2>/dev/null || true
  "$PYTHON" - "$OUT/gpu_util.csv" <<'PY'
import sys
rows = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]) if l.strip() and "," in l]
busy = [u for u, _ in rows]
if rows:
    print(f"GPU utilisation over {len(rows)} s of the job: mean {sum(busy) / len(busy):.0f}%, "
          f"max {max(busy):.0f}%, time above 50%: {sum(u > 50 for u in busy) / len(busy):.0%}; "
          f"memory used max {max(m for _, m in rows):,.0f} MiB")
PY
fi
echo "== 3. the model alone on random ids (roofline)"
"$PYTHON" scripts/gpu_check.py roofline --device "$DEVICE" --dtype "$DTYPE" --batch-tokens "$TOKENS" \
  --seconds "$([ "$REHEARSAL" = 1 ] && echo 3 || echo 10)" | tee "$OUT/roofline.json"
echo "== 4. the job on the embedded Ray"
if "$PYTHON" -c "import ray" 2>/dev/null; then
  "$PYTHON" scripts/gpu_check.py job --docs "$DOCS" --device "$DEVICE" --dtype "$DTYPE" --batch-tokens "$TOKENS" \
    --runner ray --out "$OUT/ray" | tee "$OUT/job_ray.json"
else
  echo "ray is not installed here: the Ray part is skipped (the local runner's numbers above stand)"
fi
echo "gpu_check: done; logs in $OUT"
