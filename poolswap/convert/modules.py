"""Small modules the conversion inserts around poolswap's layers.

* :class:`SamePadPool` — a replacement for a TensorFlow-"SAME" pool (timm's ``MaxPool2dSame`` /
  ``AvgPool2dSame``), whose padding depends on the input size: total padding P = max((⌈n/s⌉ − 1)·s +
  d·(k − 1) + 1 − n, 0) per axis, P // 2 before and the rest after. An even P is symmetric padding P/2; an
  odd P is padding (P − 1)/2 with ``ceil_mode=True`` (the last window reaches one sample further right) — the
  same windows, with padding taps excluded as everywhere in poolswap. Output size ⌈n/s⌉, as the original.
* :class:`PairedAdaUnPool` — a drop-in for ``nn.Upsample`` / ``F.interpolate`` that runs adaUnPool with the
  input of its paired adaPool. The pool pushes its input on a LIFO stash at each call (a forward pre-hook,
  :func:`install_stash`); the unpool pops the most recent one — the encoder–decoder contract of LiftPool's
  drop-in path (each pool call matched by one upsample call, nested down1, down2, …, up2, up1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import ops
from ..nn.lift import _LiftDownPoolNd
from ..nn.pools import _AdaPoolNd, _EDSCWPoolNd, _EMPoolNd, _IDWPoolNd, _WindowPoolNd
from ..nn.unpool import AdaUnPool1d, AdaUnPool2d, AdaUnPool3d
from ..ops._geometry import make_geometry

__all__ = ["SamePadPool", "PairedAdaUnPool", "install_stash", "same_geometry"]


def same_geometry(size, kernel, stride, dilation) -> tuple[tuple[int, ...], bool]:
    """(padding per axis, ceil_mode) reproducing TF-"SAME" windows for spatial ``size``. Axes whose total
    padding is odd need ceil_mode, so an input with mixed parities gets the odd axes' extra window on the
    others too only if that does not change their size (checked by the caller's shape test)."""
    pads, ceil = [], False
    for n, k, s, d in zip(size, kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
        pads.append(total // 2)
        ceil = ceil or total % 2 == 1
    return tuple(pads), ceil


class SamePadPool(nn.Module):
    """Wraps a poolswap pool built with the original's kernel/stride/dilation and applies TF-"SAME" windows
    for each input size. x (N, C, *S) -> (N, C, *⌈S/s⌉). The wrapped pool is the child ``pool``."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.pool
        dilation = getattr(pool, "dilation", (1,) * len(pool.kernel_size))
        padding, ceil = same_geometry(x.shape[2:], pool.kernel_size, pool.stride, dilation)
        if isinstance(pool, _LiftDownPoolNd):
            pool.padding, pool.ceil_mode = padding, ceil  # plain attributes, read per call by lift()
            return pool(x)
        if not isinstance(pool, _WindowPoolNd):
            raise TypeError(f"SamePadPool cannot wrap {type(pool).__name__}")
        g = make_geometry(pool.nd, pool.kernel_size, pool.stride, padding, dilation, ceil)
        if isinstance(pool, _AdaPoolNd):
            beta = pool.beta(x.shape[1], g.output_size(x.shape[2:]))
            return ops.adapool(x, beta, *g, eps=pool.eps)
        if isinstance(pool, _EDSCWPoolNd):
            return ops.edscwpool(x, *g, eps=pool.eps)
        if isinstance(pool, _IDWPoolNd):
            return ops.idwpool(x, *g, eps=pool.eps)
        if isinstance(pool, _EMPoolNd):
            return ops.empool(x, *g)
        raise TypeError(f"SamePadPool cannot wrap {type(pool).__name__}")


class _Stash(list):
    """Per-call inputs of a paired pool; copies and pickles start empty (they hold non-leaf tensors)."""

    def __deepcopy__(self, memo):
        return _Stash()

    def __reduce__(self):
        return (_Stash, ())


def _push_input(module: nn.Module, args: tuple) -> None:
    module.__dict__.setdefault("_poolswap_stash", _Stash()).append(args[0])


def install_stash(pool: nn.Module) -> None:
    """Makes ``pool`` push its input at every call for :class:`PairedAdaUnPool` (idempotent)."""
    if "_poolswap_stash" not in pool.__dict__:
        pool.__dict__["_poolswap_stash"] = _Stash()
        pool.register_forward_pre_hook(_push_input)


_UNPOOLS = {1: AdaUnPool1d, 2: AdaUnPool2d, 3: AdaUnPool3d}


class PairedAdaUnPool(nn.Module):
    """adaUnPool as a drop-in upsample: z (N, C, *O) -> (N, C, *S), S = the paired pool's input size.

    Extra positional/keyword arguments (``F.interpolate``'s size, scale_factor, mode) are ignored: the
    output size is the paired pool's input size. ``unpool`` is the :class:`~poolswap.nn.AdaUnPool2d` (no
    parameters of its own; it shares the pool's β)."""

    def __init__(self, pool: _AdaPoolNd, *, normalize: str = "mean") -> None:
        super().__init__()
        self.unpool = _UNPOOLS[pool.nd](pool, normalize=normalize)
        install_stash(pool)

    def forward(self, z: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        pool = self.unpool.pool
        stash = pool.__dict__.get("_poolswap_stash")
        if not stash:
            raise ValueError(
                "PairedAdaUnPool: the paired pool has no pending input: call the pool before its upsample, "
                "once per upsample call (encoder-decoder order)"
            )
        return self.unpool(z, stash.pop())
