#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite: lint, type check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check ocibuild tests benchmarks examples
"$PY" -m mypy
"$PY" -m pytest -q --durations=25 tests "$@"
