#!/usr/bin/env bash
# The teacher of issue 4: the released config trained with two more seeds (the released model is
# seed 13); `training label` averages the three. Each run ~17-20 min on 2 idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
for seed in 14 15; do
  [ -f runs/teacher_s$seed/best/model.safetensors ] && continue
  python -m training finetune --config configs/finetune_conll.yaml \
    --set run.seed=$seed --set run.output=runs/teacher_s$seed > runs/teacher_s$seed.log 2>&1
done
