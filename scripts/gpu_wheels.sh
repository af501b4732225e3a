#!/usr/bin/env bash
# Download here (with the package index) the pure-Python wheels scripts/gpu_check.sh needs on a
# bare GPU machine that lacks them: pytest and its dependencies. They are not committed; carry the
# folder with the working tree (a few MB).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-scripts/gpu_wheels}
PY=${PYTHON:-python3}
"$PY" -m pip download --quiet --only-binary=:all: --no-deps -d "$DEST" pytest==9.2.0 iniconfig==2.3.1 pluggy==1.7.0 packaging==26.4 pygments==2.21.0
ls -la "$DEST"
