#!/usr/bin/env bash
# Build the default model on 2 CPU cores, every step resumable: rerun after a stop and each step
# skips what is done (a finished run), or resumes (training checkpoints, labelled shards).
#   1. two MiniLM teachers (configs/teacher_minilm.yaml, seeds 13 and 14; side by side, 1 thread each)
#   2. label Reuters-21578 and BBC News with the pair (configs/label_silver.yaml), kept in data/silver/
#      (commit data/silver/ as soon as it exists: it is the step that takes longest)
#   3. distil the 3- and 2-layer students on gold + kept silver (configs/distill_robust.yaml)
#   4. case variants of dev and the frontier table (scripts/frontier_table.py)
# Logs: runs/<step>.log. The release is `python -m training release` on the chosen student.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PREV=15cd8f8  # the commit whose data/models/default is the previous default (the students' warm start)

done_run() { [ -f "$1/summary.json" ] && [ -f "$1/best/model.safetensors" ]; }

for s in 13 14; do
  done_run runs/teacher_s$s || python -m training finetune --config configs/teacher_minilm.yaml \
    --set run.seed=$s --set run.output=runs/teacher_s$s > runs/teacher_s$s.log 2>&1 &
done
wait

python -m training label --config configs/label_silver.yaml >> runs/label_reuters.log 2>&1
python -m training label --config configs/label_silver.yaml --set 'input.path=[../shared/data/corpus/bbc]' \
  --set output.path=runs/silver_bbc --set keep.name=bbc --set input.shard_size=100 >> runs/label_bbc.log 2>&1

if [ ! -f runs/prev_default/model.safetensors ]; then
  mkdir -p runs/prev_default
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json training_config.yaml metrics.json; do
    git show "$PREV:data/models/default/$f" > "runs/prev_default/$f"
  done
fi
done_run runs/student_l3 || python -m training distill --config configs/distill_robust.yaml >> runs/student_l3.log 2>&1
done_run runs/student_l2 || python -m training distill --config configs/distill_robust.yaml \
  --set 'model.layers=[0,2]' --set run.output=runs/student_l2 >> runs/student_l2.log 2>&1

python scripts/case_variants.py ../shared/data/conll2003/valid.txt --out runs/case_dev
