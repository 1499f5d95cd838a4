#!/usr/bin/env bash
# Installs mmengine 0.10.7, mmcv 2.1.0 (with its compiled CPU ops) and mmdet 3.3.0 into .venv, then poolswap's
# `mmdet` extra. Run after scripts/bootstrap.sh (it needs .venv with torch); safe to re-run.
#
# mmdet 3.3.0 needs mmcv < 2.2.0, and mmcv 2.1.0 has no wheel for torch 2.14: it is built from its source
# distribution, whose setup.py asks for C++17 while torch 2.14's headers need C++20 (the only change made).
# The build takes 11+ minutes on 2 cores, so the wheel is cached outside the clone
# ($POOLSWAP_WHEEL_CACHE, default ~/.cache/poolswap/wheels/torch-<version>/) and reused by later runs on the
# same machine; a lock keeps two concurrent runs from building it twice.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_python=.venv/bin/python
cache=${POOLSWAP_WHEEL_CACHE:-$HOME/.cache/poolswap/wheels}
torch_tag=$("$venv_python" -c "import torch; print(torch.__version__.replace('+', '_'))")
py_tag=$("$venv_python" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
dir="$cache/torch-$torch_tag"
mkdir -p "$dir"

if "$venv_python" -c "import mmcv, mmdet, mmengine, mmcv.ops" 2>/dev/null; then
  exit 0
fi
"$venv_python" -m pip install -q "setuptools>=77.0.3,<82" "mmengine==0.10.7"

find_wheel() { ls "$dir"/mmcv-2.1.0-"$py_tag"-*.whl 2>/dev/null | head -n 1 || true; }
exec 9>"$dir/.lock"
flock 9 2>/dev/null || true   # another run building the same wheel: wait for it
wheel=$(find_wheel)
if [ -z "$wheel" ]; then
  echo "poolswap: building mmcv 2.1.0 from source for torch $torch_tag / $py_tag (11+ minutes on 2 cores; cached in $dir)"
  start=$(date +%s)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$venv_python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$work"
  tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
  sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
  grep -q -- '-std=c++20' "$work/mmcv-2.1.0/setup.py" || { echo "poolswap: mmcv's setup.py has no -std=c++17 to patch" >&2; exit 1; }
  # build into the work dir, then move into the cache: the cache never holds a partial wheel
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    "$venv_python" -m pip wheel -q --no-build-isolation --no-deps "$work/mmcv-2.1.0" -w "$work/dist"
  mv "$work"/dist/mmcv-2.1.0-*.whl "$dir/"
  echo "poolswap: mmcv wheel built in $(( $(date +%s) - start )) s"
  wheel=$(find_wheel)
fi
flock -u 9 2>/dev/null || true
"$venv_python" -m pip install -q --no-deps "$wheel"
# mmdet 3.3.0 and mmcv's own dependencies (mmcv==2.1.0 is satisfied by the wheel above, never rebuilt)
POOLSWAP_SKIP_EXT=1 "$venv_python" -m pip install -q --no-build-isolation -e ".[mmdet]"
"$venv_python" -c "import mmcv.ops, mmdet; print('poolswap: mmcv', mmcv.__version__, '+ mmdet', mmdet.__version__, 'ready')"
