#!/usr/bin/env bash
# Reproduce the fine-tuned 6-layer model (issue 2; it was data/models/default until the distilled
# student replaced it, and it is the seed-13 member of the teacher). ~20-25 min on 2 cores:
# training, then calibration, fp16 export and a dev evaluation of the stored weights.
#   scripts/reproduce_finetuned.sh [release dir, default runs/release_finetuned]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/release_finetuned}
python -m training finetune --config configs/finetune_conll.yaml
python -m training release --model runs/finetune_conll/best --out "$OUT"
python -m training evaluate --model "$OUT" --data ../shared/data/conll2003/valid.txt --out "$OUT/eval"
