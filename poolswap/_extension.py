"""Loads the compiled operators (``poolswap._C``).

``import poolswap._C`` registers the ``torch.ops.poolswap.*`` operators (CPU kernels always, CUDA kernels
when the extension was built with nvcc). When the extension is missing or was built against another
torch, poolswap falls back to the pure-PyTorch reference (``poolswap.ops._reference``) and says so once.
"""

from __future__ import annotations

import warnings

import torch

_LOAD_ERROR: str | None = None

try:
    from . import _C  # noqa: F401  (registers the ops)
except ImportError as exc:  # missing build, or built against another torch (undefined symbols)
    _LOAD_ERROR = str(exc)


def has_ops() -> bool:
    """True when the compiled operators are loaded."""
    return _LOAD_ERROR is None


def has_cuda_kernels() -> bool:
    """True when the compiled operators include CUDA kernels."""
    return has_ops() and torch._C._dispatch_has_kernel_for_dispatch_key("poolswap::empool", "CUDA")


def cpu_kernels_parallel() -> bool:
    """True when the compiled CPU kernels run on torch's intra-op threads: torch's parallel backend is
    OpenMP and the extension was compiled with it (at::parallel_for is inlined into the extension), or
    torch uses its native thread pool (no OpenMP needed)."""
    if not has_ops():
        return False
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return True
    return bool(torch.ops.poolswap._compiled_with_openmp())


_warned = False


def warn_fallback() -> None:
    """Warns once that the slow pure-PyTorch reference is in use, and why."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "poolswap: compiled operators unavailable, using the pure-PyTorch reference (slower, more memory). "
            f"Reason: {_LOAD_ERROR}. Rebuild with `pip install --no-build-isolation -e .` against the installed "
            f"torch {torch.__version__}.",
            RuntimeWarning,
            stacklevel=3,
        )
