#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, then runs `poolswap demo`.
# Extra arguments go to the demo (e.g. --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh demo
exec .venv/bin/python -m poolswap demo "$@"
