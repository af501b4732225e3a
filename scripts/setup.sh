#!/usr/bin/env bash
# Create .venv (if missing) and install the project with pinned dependencies.
# pip, not uv/poetry: only pip finds the CPU torch wheel this machine keeps on disk: an unpinned torch resolves to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".[train,spacy,test,docs]"  # docs: mkdocs for the site in docs/
  touch .venv/.installed
fi
# The released model's ONNX graph (inference.engine: onnx) is derived from its safetensors, so it is
# not kept in git (70 MB fp32): export it once here (~10 s), and again if the weights changed.
# model.int8.onnx (inference.engine: onnx-int8) is quantised from it the same way (~15 s).
python - <<'PY'
from extract.model.export import export_int8, export_onnx
from extract.model.onnx import OnnxModelError, check_onnx
try:
    check_onnx("data/models/default")
except OnnxModelError:
    facts = export_onnx("data/models/default")
    print(f"setup: wrote {facts['path']} for inference.engine: onnx")
try:
    check_onnx("data/models/default", "onnx-int8")
except OnnxModelError:
    facts = export_int8("data/models/default")
    print(f"setup: wrote {facts['path']} for inference.engine: onnx-int8")
PY
