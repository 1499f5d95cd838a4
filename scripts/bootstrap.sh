#!/usr/bin/env bash
# Installs whatever is missing into ./.venv, then builds poolswap's operators:
#   Python venv -> torch + torchvision (the pinned pair) -> poolswap (editable) with the extras named in $1
#   -> the compiled extension poolswap._C (CPU kernels, plus CUDA kernels when nvcc is found).
# Safe to re-run: installed packages are kept and the extension rebuild is incremental (ninja, build/).
# Usage: scripts/bootstrap.sh [extras, e.g. "demo" or "test"]
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-demo}
python=${PYTHON:-python3}
venv_python=.venv/bin/python

if [ ! -x "$venv_python" ]; then
  echo "poolswap: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
"$venv_python" -m pip install -q --upgrade pip "setuptools>=77.0.3,<82" wheel ninja
if ! "$venv_python" -c "import torch, torchvision" 2>/dev/null; then
  echo "poolswap: installing torch 2.14.1 + torchvision 0.29.1 (several GB; taken from the local wheel cache when present)"
  "$venv_python" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
# the package itself (editable, pure Python) and its extras; the extension is built below
POOLSWAP_SKIP_EXT=1 "$venv_python" -m pip install -q --no-build-isolation -e ".[$extras]"
MAX_JOBS=${MAX_JOBS:-2} "$venv_python" setup.py -q build_ext --inplace 2>&1 | grep -E "^poolswap:|error|Error" || true
"$venv_python" -c "import poolswap, sys; from poolswap import _extension as e; ok = e.has_ops(); print('poolswap: operators', 'loaded' if ok else 'NOT built', '| CUDA kernels:', e.has_cuda_kernels(), '| parallel CPU kernels:', e.cpu_kernels_parallel()); sys.exit(0 if ok else 1)"
