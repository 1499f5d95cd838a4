"""Pure-PyTorch reference implementation of poolswap's pooling operators.

This module is the test oracle for the C++/CUDA kernels (their gradients are compared with
``torch.autograd`` gradients of the code below) and the fallback when ``poolswap._C`` is missing.
It follows DESIGN.md sections 2.1-2.5 literally; clarity comes before speed.

Shapes: ``x`` is ``(N, C, *S)`` with ``nd = x.dim() - 2`` spatial dims, nd in {1, 2, 3}. Geometry
arguments (``kernel_size, stride, padding, dilation``) arrive normalised as tuples of ``nd`` ints;
the caller validates them. Pooled outputs are ``(N, C, *O)`` with ``O`` exactly
``torch.nn.MaxPool{nd}d``'s output size.

Windows. Output index ``o`` has, per spatial dim, taps at ``o*s - p + j*d`` for ``j = 0..k-1``; a
tap is valid iff ``0 <= pos < S``. Multi-dim windows are the Cartesian product. Padding taps do
not exist: they are excluded from every max, mean, sum and softmax (never zero-filled). A window
with no valid tap (only possible in degenerate dilated cases) has all weights 0 and outputs 0.

Implementation: windows are gathered with one precomputed index tensor of shape ``(*O, K)``
(``K = prod(kernel_size)``) into the flattened input, whose extra trailing slot holds a 0 that
every invalid tap points to; a boolean mask of the same shape marks valid taps. The adjoint of
that gather (``index_add`` with the same index) is used by adaUnPool, so pooling and unpooling
share one geometry.

Numerics: float16/bfloat16 inputs are computed in float32 and the result is cast back; float32
and float64 are kept. Every masked quantity is built with ``torch.where`` whose branches are
finite for any finite input, so no inf/NaN enters the autograd graph (the ``where``
NaN-gradient trap). Softmaxes subtract the per-window maximum, which is detached: softmax is
shift-invariant, so the gradient stays exact and the exponentials cannot overflow.
eDSCW squares the inputs (``x**2 + a**2``), so in float32 it overflows for ``|x| > ~1.8e19``.
"""

import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["empool", "edscwpool", "idwpool", "adapool", "adaunpool"]

_NORMALIZE_MODES = ("mean", "mass")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for reduced-precision floats, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch MaxPool output size of one spatial dim."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    # In ceil mode the last window must start inside the input or the left padding.
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(
    spatial: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
    device: torch.device,
) -> Tuple[Tuple[int, ...], Tensor, Tensor]:
    """Window geometry of an input of spatial size ``spatial``.

    Returns ``(out_size, index, mask)``:
      * ``out_size``: tuple ``O`` of pooled sizes;
      * ``index``: int64 ``(*O, K)``, flat (row-major) input position of every tap, or
        ``prod(spatial)`` (the dummy slot) for invalid taps;
      * ``mask``: bool ``(*O, K)``, True for valid taps.
    Tap order within a window is row-major over the kernel dims.
    """
    nd = len(spatial)
    out_size = tuple(
        _output_size(spatial[t], kernel_size[t], stride[t], padding[t], dilation[t], ceil_mode)
        for t in range(nd)
    )
    flat = torch.zeros((1,) * (2 * nd), dtype=torch.long, device=device)
    mask = torch.ones((1,) * (2 * nd), dtype=torch.bool, device=device)
    row_stride = math.prod(spatial)
    for t in range(nd):
        row_stride //= spatial[t]
        o = torch.arange(out_size[t], device=device)
        j = torch.arange(kernel_size[t], device=device)
        pos = o[:, None] * stride[t] - padding[t] + j[None, :] * dilation[t]  # (O_t, k_t)
        # Place O_t on axis t and k_t on axis nd + t, so the product over dims broadcasts.
        shape = [1] * (2 * nd)
        shape[t], shape[nd + t] = out_size[t], kernel_size[t]
        pos = pos.reshape(shape)
        valid = (pos >= 0) & (pos < spatial[t])
        flat = flat + pos.clamp(0, spatial[t] - 1) * row_stride
        mask = mask & valid
    num_taps = math.prod(kernel_size)
    flat = flat.reshape(*out_size, num_taps)
    mask = mask.reshape(*out_size, num_taps)
    index = torch.where(mask, flat, math.prod(spatial))
    return out_size, index, mask


def _gather(x: Tensor, out_size: Tuple[int, ...], index: Tensor) -> Tensor:
    """Window values ``(N, C, *O, K)`` of ``x`` ``(N, C, *S)``; invalid taps read 0."""
    n, c = x.shape[:2]
    x_ext = torch.nn.functional.pad(x.flatten(2), (0, 1))  # dummy slot holding 0
    return x_ext.index_select(-1, index.flatten()).reshape(n, c, *out_size, index.shape[-1])


def _masked_softmax(score: Tensor, mask: Tensor) -> Tensor:
    """Softmax of ``score`` over the last dim restricted to ``mask``; 0 at invalid taps.

    An all-invalid window gets all-zero weights.
    """
    # Detached max: softmax is shift-invariant, so this only prevents overflow.
    m = score.detach().masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
    m = torch.where(mask.any(-1, keepdim=True), m, 0)
    e = torch.where(mask, torch.exp(torch.where(mask, score - m, 0)), 0)
    total = e.sum(-1, keepdim=True)  # >= 1 for a window with a valid tap
    return e / torch.where(total > 0, total, 1)


def _window_mean(xw: Tensor, mask: Tensor) -> Tensor:
    """Mean over the valid taps, ``(..., *O, 1)``; 0 for an all-invalid window.

    Relies on invalid taps of ``xw`` being 0 (see ``_gather``).
    """
    count = mask.sum(-1, keepdim=True)
    return xw.sum(-1, keepdim=True) / count.clamp_min(1)


def _em_weights(xw: Tensor, mask: Tensor) -> Tensor:
    """eMPool weights w_i = softmax_i(x_i) over the valid taps."""
    return _masked_softmax(xw, mask)


def _edscw_weights(xw: Tensor, mask: Tensor, eps: float) -> Tensor:
    """eDSCWPool weights w_i = softmax_i(D_i), D_i = 2|x_i a| / (x_i^2 + a^2 + eps), a = mean."""
    a = _window_mean(xw, mask)
    dice = 2 * torch.abs(xw * a) / (xw * xw + a * a + eps)  # in [0, 1]; 0 for x_i = a = 0
    return _masked_softmax(dice, mask)


def _idw_weights(xw: Tensor, mask: Tensor, eps: float) -> Tensor:
    """IDWPool weights w_i proportional to 1 / (|x_i - a| + eps), a = mean, over the valid taps."""
    a = _window_mean(xw, mask)
    # eps caps the weight of a tap equal to the mean at 1/eps, so both where-branches stay finite.
    v = torch.where(mask, 1 / (torch.abs(xw - a) + eps), 0)
    total = v.sum(-1, keepdim=True)
    return v / torch.where(total > 0, total, 1)


def _prepare(x, kernel_size, stride, padding, dilation, ceil_mode):
    """Window values of ``x`` in the compute dtype, plus the geometry."""
    xc = x.to(_compute_dtype(x.dtype))
    out_size, index, mask = _windows(
        x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode, x.device
    )
    return _gather(xc, out_size, index), out_size, index, mask


def empool(x: Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> Tensor:
    """eMPool (SoftPool): ``y = sum_i softmax_i(x) x_i`` over the valid taps of each window.

    ``x``: ``(N, C, *S)`` -> ``(N, C, *O)``, same dtype as ``x``.
    """
    xw, _, _, mask = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    return (_em_weights(xw, mask) * xw).sum(-1).to(x.dtype)


def edscwpool(
    x: Tensor, kernel_size, stride, padding, dilation, ceil_mode, eps: float = 1e-6
) -> Tensor:
    """eDSCWPool: ``y = sum_i softmax_i(D) x_i``, ``D_i = 2|x_i a| / (x_i^2 + a^2 + eps)``.

    ``a`` is the per-channel mean of the valid taps. ``x``: ``(N, C, *S)`` -> ``(N, C, *O)``.
    """
    xw, _, _, mask = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    return (_edscw_weights(xw, mask, eps) * xw).sum(-1).to(x.dtype)


def idwpool(
    x: Tensor, kernel_size, stride, padding, dilation, ceil_mode, eps: float = 1e-6
) -> Tensor:
    """IDWPool: ``y = sum_i w_i x_i``, ``w_i`` proportional to ``1 / (|x_i - a| + eps)``.

    ``a`` is the per-channel mean of the valid taps. ``x``: ``(N, C, *S)`` -> ``(N, C, *O)``.
    """
    xw, _, _, mask = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    return (_idw_weights(xw, mask, eps) * xw).sum(-1).to(x.dtype)


def adapool(
    x: Tensor, beta: Tensor, kernel_size, stride, padding, dilation, ceil_mode, eps: float = 1e-6
) -> Tensor:
    """adaPool: ``y = beta * y_eDSCW + (1 - beta) * y_eM``.

    ``x``: ``(N, C, *S)`` -> ``(N, C, *O)``. ``beta``: values in [0, 1] broadcastable to
    ``(C, *O)`` (spatial ``(*O)``, channel ``(C, 1, ..., 1)`` or 0-dim scalar), broadcast over N.
    """
    xw, _, _, mask = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    y_dscw = (_edscw_weights(xw, mask, eps) * xw).sum(-1)
    y_em = (_em_weights(xw, mask) * xw).sum(-1)
    b = beta.to(xw.dtype)
    return (b * y_dscw + (1 - b) * y_em).to(x.dtype)


def _nearest_window(spatial, out_size, stride, padding, device) -> Tensor:
    """Flat pooled index ``(prod(S),)`` of each input position's nearest window.

    Per dim ``clamp(floor((i + p) / s), 0, O - 1)``, combined row-major over ``O``.
    """
    nd = len(spatial)
    flat = torch.zeros((1,) * nd, dtype=torch.long, device=device)
    row_stride = math.prod(out_size)
    for t in range(nd):
        row_stride //= out_size[t]
        i = torch.arange(spatial[t], device=device)
        o = torch.div(i + padding[t], stride[t], rounding_mode="floor").clamp(0, out_size[t] - 1)
        shape = [1] * nd
        shape[t] = spatial[t]
        flat = flat + o.reshape(shape) * row_stride
    return flat.flatten()


def adaunpool(
    z: Tensor,
    x: Tensor,
    beta: Tensor,
    kernel_size,
    stride,
    padding,
    dilation,
    ceil_mode,
    normalize: str = "mean",
    eps: float = 1e-6,
) -> Tensor:
    """adaUnPool: spread each pooled value back over its window with adaPool's weights from ``x``.

    ``z``: ``(N, C, *O)`` with ``O`` the pooled size of ``x`` under the geometry;
    ``x``: ``(N, C, *S)``; ``beta`` as in :func:`adapool`. Returns ``u``: ``(N, C, *S)`` in
    ``x.dtype``. With ``W_i(o) = beta_o wD_i(o) + (1 - beta_o) wE_i(o)`` (eDSCW and eM weights
    of ``x``) and ``n_o`` the number of valid taps of window ``o``:

    * ``"mass"``: ``u_i = sum_{o: i in R(o)} z_o W_i(o)``; positions in no window are 0.
    * ``"mean"``: ``u_i = (1 / c_i) sum_{o: i in R(o)} z_o n_o W_i(o)``, ``c_i`` = number of
      windows whose valid taps include ``i`` (uniform weights with kernel == stride give
      nearest-neighbour upsampling). A position with ``c_i = 0`` takes ``z`` of the nearest
      window, per dim ``clamp(floor((i + p) / s), 0, O - 1)``.
    """
    if normalize not in _NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {normalize!r}")
    xw, out_size, index, mask = _prepare(x, kernel_size, stride, padding, dilation, ceil_mode)
    dtype = xw.dtype
    b = beta.to(dtype).unsqueeze(-1)  # broadcast over the taps of a window
    weight = b * _edscw_weights(xw, mask, eps) + (1 - b) * _em_weights(xw, mask)
    zc = z.to(dtype).unsqueeze(-1)
    # Per-tap contributions (N, C, *O, K); 0 at invalid taps because their weights are 0.
    if normalize == "mean":
        contrib = zc * mask.sum(-1, keepdim=True).to(dtype) * weight
    else:
        contrib = zc * weight

    n, c = x.shape[:2]
    spatial = x.shape[2:]
    num_pos = math.prod(spatial)
    flat_index = index.flatten()
    # Adjoint of _gather: sum every tap's contribution into its input position (+ dummy slot).
    acc = torch.zeros(n, c, num_pos + 1, dtype=dtype, device=x.device)
    acc = acc.index_add(-1, flat_index, contrib.flatten(2))[..., :num_pos]
    if normalize == "mass":
        return acc.reshape(x.shape).to(x.dtype)

    cover = torch.zeros(num_pos + 1, dtype=dtype, device=x.device)
    cover = cover.index_add(0, flat_index, mask.flatten().to(dtype))[:num_pos]
    nearest = _nearest_window(spatial, out_size, stride, padding, x.device)
    z_near = z.to(dtype).flatten(2).index_select(-1, nearest)
    u = torch.where(cover > 0, acc / torch.where(cover > 0, cover, 1), z_near)
    return u.reshape(x.shape).to(x.dtype)

