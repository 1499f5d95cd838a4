"""Functional API of poolswap's pooling operators.

Every function takes batched input ``x`` of shape (N, C, *S) with 1, 2 or 3 spatial dims and pooling
geometry exactly as ``torch.nn.functional.max_pool{1,2,3}d`` (``stride=None`` means ``kernel_size``);
the output has MaxPool's shape (N, C, *O). Padding taps are excluded from every window, never
zero-filled. Half and bfloat16 inputs are computed in float32. Gradients are exact (see DESIGN.md §2).

They run the compiled ``torch.ops.poolswap.*`` operators (torch.compile/export friendly custom ops),
or the pure-PyTorch reference when the extension is unavailable for x's device, or inside
:func:`reference_mode` (e.g. for ONNX export, which cannot see custom ops).

``eps`` regularises eDSCW's ratio (an all-zero window gets uniform weights) and IDW's inverse distance
(a tap equal to the window mean gets weight 1/eps rather than infinity); default 1e-6.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .. import _extension
from . import _reference
from . import _registrations  # noqa: F401  (fake kernels and autograd of the compiled ops)
from ._geometry import IntOrTuple, check_beta, check_fits, check_input, check_same_device, make_geometry

__all__ = ["empool", "softpool", "edscwpool", "idwpool", "adapool", "adaunpool", "reference_mode"]

DEFAULT_EPS = 1e-6
_NORMALIZE = ("mean", "mass")
_force_reference = False


@contextlib.contextmanager
def reference_mode(enabled: bool = True) -> Iterator[None]:
    """Within this context the functional API uses the pure-PyTorch reference instead of the custom ops
    (traceable by ONNX export and any tool that cannot see custom ops)."""
    global _force_reference
    previous, _force_reference = _force_reference, enabled
    try:
        yield
    finally:
        _force_reference = previous


def _use_compiled(x: torch.Tensor) -> bool:
    if _force_reference:
        return False
    usable = _extension.has_ops() and (
        x.device.type == "cpu" or (x.device.type == "cuda" and _extension.has_cuda_kernels())
    )
    if not usable:
        _extension.warn_fallback()
    return usable


def _prepare(x: torch.Tensor, kernel_size, stride, padding, dilation, ceil_mode):
    check_input("x", x, x.dim() - 2 if x.dim() in (3, 4, 5) else 2)
    g = make_geometry(x.dim() - 2, kernel_size, stride, padding, dilation, ceil_mode)
    return g, check_fits(x, g)


def empool(
    x: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> torch.Tensor:
    """eMPool (SoftPool): y = Σ softmax(x)_i x_i over each window. (N, C, *S) -> (N, C, *O)."""
    g, _ = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    if _use_compiled(x):
        return torch.ops.poolswap.empool(x, *g)
    return _reference.empool(x, *g)


softpool = empool


def edscwpool(
    x: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    *,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """eDSCWPool: weights softmax(D), D_i = 2|x_i a| / (x_i² + a² + eps), a the window mean.
    (N, C, *S) -> (N, C, *O)."""
    g, _ = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    if _use_compiled(x):
        return torch.ops.poolswap.edscwpool(x, *g, eps)
    return _reference.edscwpool(x, *g, eps)


def idwpool(
    x: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    *,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """IDWPool: weights ∝ 1 / (|x_i − a| + eps), a the window mean. (N, C, *S) -> (N, C, *O)."""
    g, _ = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    if _use_compiled(x):
        return torch.ops.poolswap.idwpool(x, *g, eps)
    return _reference.idwpool(x, *g, eps)


def adapool(
    x: torch.Tensor,
    beta: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    *,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """adaPool: y = beta · y_eDSCW + (1 − beta) · y_eM, fused in one pass.

    ``beta`` holds values in [0, 1] (not logits) broadcastable to (C, *O): a spatial mask of shape O, a
    channel mask (C, 1, ..., 1) or a scalar; it is broadcast over N. (N, C, *S) -> (N, C, *O).
    """
    g, out = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_beta(beta, x, out)
    if _use_compiled(x):
        return torch.ops.poolswap.adapool(x, beta, *g, eps)
    return _reference.adapool(x, beta, *g, eps)


def adaunpool(
    z: torch.Tensor,
    x: torch.Tensor,
    beta: torch.Tensor,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    *,
    normalize: str = "mean",
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """adaUnPool: upsamples z (N, C, *O) to the paired pool's input resolution (N, C, *S) with adaPool's
    weights W = beta·wD + (1 − beta)·wE recomputed from that pool's input x.

    ``normalize="mean"`` (default): u_i = (1/c_i) Σ_{o ∋ i} z_o n_o W_i(o), with n_o the window's valid
    taps and c_i the windows covering i: each window's mean is z_o, and with uniform weights and
    kernel == stride this is nearest upsampling (a drop-in for ``nn.Upsample(mode="nearest")``).
    Positions no window covers copy z of the nearest window, o = clamp((i + padding) // stride).
    ``normalize="mass"``: u_i = Σ_{o ∋ i} z_o W_i(o): each window's sum is z_o (paper Eq. 7);
    uncovered positions are 0.
    """
    g, out = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_input("z", z, g.nd)
    check_same_device("z", z, x)
    if z.dtype != x.dtype:
        raise TypeError(f"z has dtype {z.dtype} but x has dtype {x.dtype}")
    if tuple(z.shape) != (x.shape[0], x.shape[1], *out):
        raise ValueError(f"z must have the pooled shape {(x.shape[0], x.shape[1], *out)} of x, got {tuple(z.shape)}")
    check_beta(beta, x, out)
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    if _use_compiled(x):
        return torch.ops.poolswap.adaunpool(z, x, beta, *g, normalize, eps)
    return _reference.adaunpool(z, x, beta, *g, normalize, eps)
