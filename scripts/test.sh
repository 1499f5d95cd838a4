#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then runs pytest (slow sweeps included;
# CUDA tests run when a GPU is present and show as skipped otherwise; the mmdetection tests need mmcv, which
# scripts/install_mmdet.sh builds once per machine and caches). Extra arguments go to pytest, e.g.
# `scripts/test.sh -m "not slow"` for the quick local loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
bash scripts/install_mmdet.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
