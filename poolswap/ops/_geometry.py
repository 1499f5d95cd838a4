"""Argument normalisation and checks shared by the functional API, the modules and the reference.

Pooling geometry is exactly ``torch.nn.MaxPool{1,2,3}d``'s: an int or a tuple per argument,
``stride=None`` meaning ``kernel_size``, padding at most half the kernel, and the same output size
(:func:`pooled_size`). Errors are ``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import torch

IntOrTuple = Union[int, Sequence[int]]


class Geometry(NamedTuple):
    """Normalised pooling geometry over ``nd`` spatial dims (tuples of length nd)."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    @property
    def nd(self) -> int:
        return len(self.kernel_size)

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for a spatial input size (torch's MaxPool formula)."""
        return tuple(
            pooled_size(i, k, s, p, d, self.ceil_mode)
            for i, k, s, p, d in zip(input_size, self.kernel_size, self.stride, self.padding, self.dilation)
        )


def pooled_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length of one axis, as ATen's ``pooling_output_shape``."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window must start inside the input or the left padding
    return out


def _tuple(name: str, value: IntOrTuple, nd: int, minimum: int) -> tuple[int, ...]:
    if isinstance(value, bool) or not isinstance(value, (int, tuple, list, torch.Size)):
        raise TypeError(f"{name} must be an int or a sequence of {nd} ints, got {type(value).__name__}")
    values = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(values) == 1 and nd > 1:
        values = values * nd
    if len(values) != nd or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a sequence of {nd} ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return values


def make_geometry(
    nd: int,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> Geometry:
    """Normalises MaxPool-style arguments for ``nd`` spatial dims and checks them."""
    kernel = _tuple("kernel_size", kernel_size, nd, 1)
    strides = kernel if stride is None else _tuple("stride", stride, nd, 1)
    pads = _tuple("padding", padding, nd, 0)
    dilations = _tuple("dilation", dilation, nd, 1)
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise ValueError(f"padding must be at most half of kernel_size, got padding={padding!r} for kernel_size={kernel_size!r}")
    return Geometry(kernel, strides, pads, dilations, bool(ceil_mode))


def check_input(name: str, x: torch.Tensor, nd: int) -> None:
    """x must be a floating (N, C, *spatial) tensor with nd spatial dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")
    if x.dim() != nd + 2:
        raise ValueError(f"{name} must have shape (N, C, *spatial) with {nd} spatial dims, got shape {tuple(x.shape)}")


def check_fits(x: torch.Tensor, g: Geometry) -> tuple[int, ...]:
    """Returns the spatial output size, or raises if the kernel does not fit the padded input."""
    if any(size < 1 for size in x.shape[2:]):
        raise ValueError(f"x must have non-empty spatial dims, got shape {tuple(x.shape)}")
    out = g.output_size(x.shape[2:])
    if any(o < 1 for o in out):
        raise ValueError(
            f"kernel_size={g.kernel_size} (dilation={g.dilation}, padding={g.padding}) is larger than the padded "
            f"input of spatial size {tuple(x.shape[2:])}"
        )
    return out


def check_beta(beta: torch.Tensor, x: torch.Tensor, out_size: Sequence[int]) -> None:
    """β must be floating, on x's device, and broadcastable to (C, *out_size)."""
    if not isinstance(beta, torch.Tensor) or not beta.is_floating_point():
        raise TypeError(f"beta must be a floating point tensor, got {getattr(beta, 'dtype', type(beta).__name__)}")
    if beta.device != x.device:
        raise ValueError(f"beta is on {beta.device} but x is on {x.device}")
    target = (x.shape[1], *out_size)
    ok = beta.dim() <= len(target) and all(b in (1, t) for b, t in zip(reversed(beta.shape), reversed(target)))
    if not ok:
        raise ValueError(
            f"beta of shape {tuple(beta.shape)} does not broadcast to (C, *output) = {target}: use a spatial mask "
            "of the output size, a (C, 1, ...) channel mask or a scalar"
        )


def check_same_device(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
