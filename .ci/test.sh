#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite: lint, type check, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check ocibuild tests benchmarks examples
"$PY" -m mypy
# two workers, a test file each at a time (module fixtures are built once); the tests mostly wait on
# subprocesses, registries and the network: on 2 cores 1469 tests took 18:45 (one worker: ~28 min for 1403)
"$PY" -m pytest -q -n "${OCIBUILD_TEST_WORKERS:-2}" --dist loadfile --durations=25 tests "$@"
