"""Build of poolswap's one extension, ``poolswap._C``.

CPU kernels are always built. CUDA kernels are built when nvcc is found (or ``POOLSWAP_FORCE_CUDA=1``);
``POOLSWAP_CPU_ONLY=1`` skips them. Install with ``pip install --no-build-isolation -e .`` (torch must
already be installed: it is not a build requirement, so pip never fetches a second copy).

``POOLSWAP_SKIP_EXT=1`` installs the Python package without the extension: scripts/bootstrap.sh does that
and then builds ``poolswap._C`` with ``setup.py build_ext --inplace``, which ninja keeps incremental in
build/ (pip's own editable build recompiles everything in a fresh temporary folder each time).
"""

import glob
import os
import shutil
import sys

from setuptools import find_packages, setup


def _cuda_home_from_nvcc():
    """The toolkit folder of the nvcc on PATH (torch's own guess fails for wrapper scripts)."""
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and os.path.exists(os.path.join(candidate, "bin", "nvcc")):
            return candidate
    nvcc = shutil.which("nvcc")
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None


def _want_cuda():
    if os.environ.get("POOLSWAP_CPU_ONLY") == "1":
        return False
    if os.environ.get("POOLSWAP_FORCE_CUDA") == "1":
        return True
    return _cuda_home_from_nvcc() is not None


WITH_CUDA = _want_cuda()
if WITH_CUDA:
    # Both must be set before torch.utils.cpp_extension is imported (it reads them at import time).
    os.environ.setdefault("CUDA_HOME", _cuda_home_from_nvcc() or "")
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            # No GPU to query: build for Hopper (H100/H200) plus PTX that newer GPUs JIT-compile.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0+PTX"

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _extension():
    sources = _sources("csrc/*.cpp") + _sources("csrc/ops/*.cpp") + _sources("csrc/ops/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    cxx_flags = ["-O3", "-fno-math-errno"]
    link_flags = []
    if "parallel backend: OpenMP" in torch.__config__.parallel_info() and sys.platform != "darwin":
        # at::parallel_for is an inline template: with torch's OpenMP backend its `#pragma omp parallel` is
        # compiled into *our* objects, so without -fopenmp every CPU kernel silently runs on one thread.
        cxx_flags.append("-fopenmp")
        link_flags.append("-fopenmp")  # libgomp.so.1: at run time the copy torch already loaded
    if WITH_CUDA:
        sources += _sources("csrc/ops/cuda/*.cpp") + _sources("csrc/ops/cuda/*.cu")
        print(
            f"poolswap: building CPU + CUDA kernels (CUDA_HOME={os.environ['CUDA_HOME']}, "
            f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '<detected>')})"
        )
        return CUDAExtension(
            "poolswap._C",
            sources,
            include_dirs=include_dirs,
            define_macros=[("POOLSWAP_WITH_CUDA", "1")],
            # no --use_fast_math: its flush-to-zero would turn eDSCW's 1/max|x| into 0 for |x| > 2^126 (uniform
            # weights) and its approximate exp/division would drift from the CPU kernels
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
            extra_link_args=link_flags,
        )
    print("poolswap: building CPU kernels only (no nvcc found, or POOLSWAP_CPU_ONLY=1)")
    return CppExtension(
        "poolswap._C", sources, include_dirs=include_dirs, extra_compile_args={"cxx": cxx_flags},
        extra_link_args=link_flags,
    )


setup(
    packages=find_packages(include=["poolswap", "poolswap.*"]),
    ext_modules=[] if os.environ.get("POOLSWAP_SKIP_EXT") == "1" else [_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
