#!/usr/bin/env bash
# Set up, then run the whole test suite (no network, no GPU, tiny random models). Extra arguments
# go to pytest, e.g. scripts/test.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
export RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check .  # lint (config: pyproject.toml [tool.ruff]); a finding fails the run before the tests
python -m pytest -q "$@"
