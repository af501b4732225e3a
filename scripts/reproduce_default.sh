#!/usr/bin/env bash
# Reproduce data/models/default (issue 9) end to end on 2 cores; every step resumes or skips when
# its output is there, so the script can be rerun after a stop. Times measured on 2 cores:
#   1. fetch all-mpnet-base-v2 from PyPI, sha256-checked (scripts/fetch_mpnet.sh, ~2 min)
#   2. fine-tune the MPNet teacher (configs/teacher_mpnet.yaml, 710 steps, ~1.5-2.5 h)
#   3. the v0.1 student from git (the teacher's partner in the ensemble and the students' start)
#   4. export both to ONNX, label Reuters-21578 with the pair (configs/label_mpnet.yaml, ~85 min
#      for all 113 shards; the release used the shards done when it stopped, see the model card)
#   5. distil the 3- and 2-layer students (configs/distill_mpnet.yaml, one epoch each)
#   6. frontier table, then release the chosen student (calibration, fp16, ONNX, model card)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
V01=6c94caf  # the last commit whose data/models/default is the v0.1 student

scripts/fetch_mpnet.sh
python -m training finetune --config configs/teacher_mpnet.yaml
if [ ! -f runs/v01_student/model.safetensors ]; then
  mkdir -p runs/v01_student
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json training_config.yaml; do
    git show "$V01:data/models/default/$f" > "runs/v01_student/$f"
  done
fi
for m in runs/teacher_mpnet/best runs/v01_student; do
  python -c "from extract.model.onnx import check_onnx; check_onnx('$m')" 2>/dev/null || python -m extract export-onnx "$m"
done
python -m training label --config configs/label_mpnet.yaml
python -m training distill --config configs/distill_mpnet.yaml
python -m training distill --config configs/distill_mpnet.yaml --set 'model.layers=[0,2]' --set run.output=runs/student_l2
python scripts/frontier_table.py --out runs/frontier_table.json \
  --row "teacher: MPNet 12 layers + v0.1 student (labels the silver)=runs/teacher_mpnet/best+runs/v01_student" \
  --row "MPNet 12 layers alone=runs/teacher_mpnet/best" \
  --row "v0.1 student (3 layers)=runs/v01_student" \
  --row "student 3 layers=runs/student_l3/best" \
  --row "student 2 layers=runs/student_l2/best"
python scripts/release_model.py --model runs/student_l3/best --out data/models/default \
  --extra "$(python -c 'import json; print("## Frontier (dev, one run, 2 cores)\n\n" + json.load(open("runs/frontier_table.json"))["table"])')"
