#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then runs pytest (slow sweeps included;
# CUDA tests run when a GPU is present and show as skipped otherwise). Extra arguments go to pytest,
# e.g. `scripts/test.sh -m "not slow"` for the quick local loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
