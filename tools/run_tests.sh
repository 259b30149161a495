#!/usr/bin/env bash
# Set up .venv if needed (idempotent), then run the CPU test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh tests/ops -k fusion`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest "${@:-tests}"
