"""adaUnPool modules (DESIGN.md §2.5): upsampling with the weights of a paired adaPool layer."""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from .pools import _AdaPoolNd

__all__ = ["AdaUnPool1d", "AdaUnPool2d", "AdaUnPool3d"]

_NORMALIZE = ("mean", "mass")


class _AdaUnPoolNd(nn.Module):
    """Upsamples z (N, C, *O) to the resolution of the paired pool's input x (N, C, *S).

    The weights are adaPool's, recomputed from x at every call (nothing is stored between the pool and
    the unpool call), and the paired pool's β and geometry are *shared*: training the unpool trains the
    pool's β. The pool is referenced, not registered as a submodule, so its parameters appear once in
    ``state_dict`` (under the pool's own name).

    Args:
        pool: the paired AdaPool{n}d.
        normalize: ``"mean"`` (default) keeps each window's mean equal to z and is nearest upsampling for
            uniform weights and kernel == stride — a drop-in for ``nn.Upsample(mode="nearest")``;
            ``"mass"`` keeps each window's sum equal to z (paper Eq. 7). See :func:`poolswap.ops.adaunpool`.

    forward(z, x): z (N, C, *O) at pooled resolution, x (N, C, *S) the paired pool's input -> (N, C, *S).
    """

    nd: int

    def __init__(self, pool: _AdaPoolNd, *, normalize: str = "mean") -> None:
        super().__init__()
        if not isinstance(pool, _AdaPoolNd) or pool.nd != self.nd:
            raise TypeError(f"pool must be an AdaPool{self.nd}d, got {type(pool).__name__}")
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
        self._pool = (pool,)  # a tuple hides it from nn.Module registration
        self.normalize = normalize

    @property
    def pool(self) -> _AdaPoolNd:
        return self._pool[0]

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pool = self.pool
        beta = pool.beta(x.shape[1], pool.output_size(x.shape[2:]))
        return ops.adaunpool(z, x, beta, *pool.geometry, normalize=self.normalize, eps=pool.eps)

    def extra_repr(self) -> str:
        return f"pool={self.pool.extra_repr()}, normalize={self.normalize!r}"


class AdaUnPool1d(_AdaUnPoolNd):
    __doc__ = _AdaUnPoolNd.__doc__
    nd = 1


class AdaUnPool2d(_AdaUnPoolNd):
    __doc__ = _AdaUnPoolNd.__doc__
    nd = 2


class AdaUnPool3d(_AdaUnPoolNd):
    __doc__ = _AdaUnPoolNd.__doc__
    nd = 3
