#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite: lint, type check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check ocibuild tests benchmarks examples
"$PY" -m mypy
# two workers, a test file each at a time (module fixtures are built once); the tests are mostly waiting on
# subprocesses, registries and the network, so two workers on two cores take ~2/3 of the time of one
"$PY" -m pytest -q -n "${OCIBUILD_TEST_WORKERS:-2}" --dist loadfile --durations=25 tests "$@"
