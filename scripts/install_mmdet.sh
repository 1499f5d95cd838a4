#!/usr/bin/env bash
# Installs mmengine 0.10.7, mmcv 2.1.0 (with its compiled CPU ops) and mmdet 3.3.0 into .venv.
#
# mmdet 3.3.0 needs mmcv < 2.2.0, and mmcv 2.1.0 has no wheel for torch 2.14: it is built from its source
# distribution, whose setup.py asks for C++17 while torch 2.14's headers need C++20 (the only change made).
# The build takes about 11 minutes on 2 cores, so the wheel is cached outside the clone
# ($POOLSWAP_WHEEL_CACHE, default ~/.cache/poolswap/wheels) and reused by later runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_python=.venv/bin/python
cache=${POOLSWAP_WHEEL_CACHE:-$HOME/.cache/poolswap/wheels}
torch_tag=$("$venv_python" -c "import torch; print(torch.__version__.replace('+', '_'))")
mkdir -p "$cache/torch-$torch_tag"

if "$venv_python" -c "import mmcv, mmdet, mmengine, mmcv.ops" 2>/dev/null; then
  exit 0
fi
"$venv_python" -m pip install -q "setuptools>=77.0.3,<82" "mmengine==0.10.7"
wheel=$(ls "$cache/torch-$torch_tag"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "poolswap: building mmcv 2.1.0 from source for torch $torch_tag (about 11 minutes on 2 cores; cached in $cache)"
  work=$(mktemp -d)
  "$venv_python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$work"
  tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
  sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    "$venv_python" -m pip wheel -q --no-build-isolation --no-deps "$work/mmcv-2.1.0" -w "$cache/torch-$torch_tag"
  rm -rf "$work"
  wheel=$(ls "$cache/torch-$torch_tag"/mmcv-2.1.0-*.whl | head -n 1)
fi
"$venv_python" -m pip install -q --no-deps "$wheel"
"$venv_python" -m pip install -q "mmdet==3.3.0" "mmcv==2.1.0"
"$venv_python" -c "import mmcv.ops, mmdet; print('poolswap: mmcv', mmcv.__version__, '+ mmdet', mmdet.__version__, 'ready')"
