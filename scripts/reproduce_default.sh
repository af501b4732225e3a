#!/usr/bin/env bash
# Reproduce data/models/default (the fine-tuned 6-layer model of issue 2) from the committed config.
# ~20 min of training on 2 cores, then calibration, fp16 export and a dev evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m training finetune --config configs/finetune_conll.yaml "$@"
python scripts/release_model.py --model runs/finetune_conll/best --out data/models/default
python -m training evaluate --model data/models/default --data ../shared/data/conll2003/valid.txt \
  --out runs/finetune_conll/eval_default
