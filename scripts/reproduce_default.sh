#!/usr/bin/env bash
# Reproduce data/models/default, the distilled 3-layer student (issue 4), end to end on 2 cores:
#   fine-tune seed 13 (~20 min) -> seeds 14, 15 (~40 min) -> label Reuters with the 3-model
#   ensemble (~10 min) -> distil (~20 min) -> calibrate, fp16, model card -> comparison table.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
[ -f runs/finetune_conll/best/model.safetensors ] || python -m training finetune --config configs/finetune_conll.yaml
scripts/train_teachers.sh
python -m training label --config configs/label_corpus.yaml
python -m training distill --config configs/distill.yaml
python scripts/distill_table.py --teacher runs/finetune_conll/best runs/teacher_s14/best runs/teacher_s15/best \
  --single runs/finetune_conll/best --student runs/distill/best --out runs/distill_table.json
python scripts/release_model.py --model runs/distill/best --out data/models/default \
  --extra "$(python -c 'import json; print("## Teacher, single model and student (dev, one run, 2 cores)\n\n" + json.load(open("runs/distill_table.json"))["table"])')"
