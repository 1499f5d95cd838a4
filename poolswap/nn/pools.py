"""Pooling modules: drop-in replacements for ``torch.nn.MaxPool{1,2,3}d``.

Every module takes exactly MaxPool's geometry arguments ``(kernel_size, stride=None, padding=0, dilation=1,
ceil_mode=False)`` followed by keyword-only extras, gives MaxPool's output shape for every input, accepts
batched (N, C, *S) and unbatched (C, *S) input like torch's pools, and can be built from an existing pool
with :meth:`from_pool` (AvgPool's ``count_include_pad`` and ``divisor_override`` have no meaning for
weighted pools and are ignored). MaxPool's ``return_indices`` has no weighted equivalent and is not
accepted, so ``ceil_mode`` is the fifth positional argument here (pass it by keyword in shared code).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import ops
from ..ops._geometry import IntOrTuple, make_geometry
from ._beta import BetaMask

__all__ = [
    "EMPool1d", "EMPool2d", "EMPool3d", "SoftPool1d", "SoftPool2d", "SoftPool3d",
    "EDSCWPool1d", "EDSCWPool2d", "EDSCWPool3d", "IDWPool1d", "IDWPool2d", "IDWPool3d",
    "AdaPool1d", "AdaPool2d", "AdaPool3d",
]  # fmt: skip

_TORCH_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def pool_geometry_kwargs(module: nn.Module) -> dict:
    """MaxPool-style geometry arguments of a torch max/avg pool (dilation 1 for AvgPool)."""
    if not isinstance(module, _TORCH_POOLS):
        raise TypeError(f"from_pool needs a torch MaxPool/AvgPool module, got {type(module).__name__}")
    if getattr(module, "return_indices", False):
        raise ValueError("from_pool: a MaxPool with return_indices=True has no weighted equivalent")
    return dict(
        kernel_size=module.kernel_size,
        stride=module.stride,
        padding=module.padding,
        dilation=getattr(module, "dilation", 1),
        ceil_mode=module.ceil_mode,
    )


class _WindowPoolNd(nn.Module):
    """Shared geometry handling; subclasses set ``nd`` and implement ``_pool(x)`` on batched input."""

    nd: int

    def __init__(
        self,
        kernel_size: IntOrTuple,
        stride: IntOrTuple | None = None,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.geometry = make_geometry(self.nd, kernel_size, stride, padding, dilation, ceil_mode)
        # the same attributes torch's pools expose, so code that inspects a pool keeps working
        self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode = self.geometry

    @classmethod
    def from_pool(cls, module: nn.Module, **extras):
        """Builds this pool with the geometry of a torch MaxPool/AvgPool ``module``."""
        return cls(**pool_geometry_kwargs(module), **extras)

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for a spatial input size (MaxPool's)."""
        return self.geometry.output_size(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, *S) or (C, *S) -> (N, C, *O) or (C, *O)."""
        if x.dim() == self.nd + 1:
            return self._pool(x.unsqueeze(0)).squeeze(0)
        if x.dim() != self.nd + 2:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (N, C, *S) or (C, *S) with {self.nd} spatial dims, "
                f"got shape {tuple(x.shape)}"
            )
        return self._pool(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        g = self.geometry
        return (
            f"kernel_size={g.kernel_size}, stride={g.stride}, padding={g.padding}, dilation={g.dilation}, "
            f"ceil_mode={g.ceil_mode}"
        )


class _EMPoolNd(_WindowPoolNd):
    """eMPool (SoftPool): y = Σ softmax(x)_i x_i over each window (DESIGN §2.1)."""

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return ops.empool(x, *self.geometry)


class _EpsPoolNd(_WindowPoolNd):
    """A window pool with an ``eps`` keyword (eDSCW, IDW, adaPool)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, eps: float = ops.DEFAULT_EPS):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps:g}"


class _EDSCWPoolNd(_EpsPoolNd):
    """eDSCWPool: softmax of the Dice–Sørensen coefficient of each tap and its window mean (DESIGN §2.2)."""

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return ops.edscwpool(x, *self.geometry, eps=self.eps)


class _IDWPoolNd(_EpsPoolNd):
    """IDWPool: weights ∝ 1 / (|x_i − mean| + eps) (DESIGN §2.3)."""

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return ops.idwpool(x, *self.geometry, eps=self.eps)


class _AdaPoolNd(_EpsPoolNd):
    """adaPool: y = β·y_eDSCW + (1 − β)·y_eM with a learnable β mask (DESIGN §2.4).

    Keyword-only extras:
        beta_mode: ``"spatial"`` (default; one β per output position), ``"channel"`` or ``"scalar"``.
        beta_shape: output spatial size a spatial β is sized for; or give ``input_size`` (spatial input
            size) and it is computed with the layer's geometry. One of the two is required for spatial β.
        channels: channel count (required for ``beta_mode="channel"``).
        beta_init: initial β in [0, 1] (default 0.5: an even mix).
        beta_resize: ``"bilinear"`` (default) resamples a spatial β's logit at other output sizes;
            ``"error"`` raises.
        eps: eDSCW's regulariser (default 1e-6).

    The parameter is ``beta_logit`` (β = sigmoid(beta_logit)).
    """

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode=False,
        *,
        beta_mode: str = "spatial",
        beta_shape: Sequence[int] | None = None,
        input_size: Sequence[int] | None = None,
        channels: int | None = None,
        beta_init: float = 0.5,
        beta_resize: str = "bilinear",
        eps: float = ops.DEFAULT_EPS,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, eps=eps)
        if beta_shape is None and input_size is not None:
            if len(tuple(input_size)) != self.nd:
                raise ValueError(f"input_size must have {self.nd} elements, got {input_size!r}")
            beta_shape = self.geometry.output_size(input_size)
        self.beta_mask = BetaMask(self.nd, beta_mode, beta_shape, channels, beta_init, beta_resize)

    @property
    def beta_logit(self) -> nn.Parameter:
        return self.beta_mask.logit

    def beta(self, channels: int, out_size: Sequence[int]) -> torch.Tensor:
        """β in [0, 1] for this many channels and this output size (resampled if needed)."""
        return self.beta_mask(channels, out_size)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta(x.shape[1], self.geometry.output_size(x.shape[2:]))
        return ops.adapool(x, beta, *self.geometry, eps=self.eps)


class EMPool1d(_EMPoolNd):
    __doc__ = _EMPoolNd.__doc__
    nd = 1


class EMPool2d(_EMPoolNd):
    __doc__ = _EMPoolNd.__doc__
    nd = 2


class EMPool3d(_EMPoolNd):
    __doc__ = _EMPoolNd.__doc__
    nd = 3


class EDSCWPool1d(_EDSCWPoolNd):
    __doc__ = _EDSCWPoolNd.__doc__
    nd = 1


class EDSCWPool2d(_EDSCWPoolNd):
    __doc__ = _EDSCWPoolNd.__doc__
    nd = 2


class EDSCWPool3d(_EDSCWPoolNd):
    __doc__ = _EDSCWPoolNd.__doc__
    nd = 3


class IDWPool1d(_IDWPoolNd):
    __doc__ = _IDWPoolNd.__doc__
    nd = 1


class IDWPool2d(_IDWPoolNd):
    __doc__ = _IDWPoolNd.__doc__
    nd = 2


class IDWPool3d(_IDWPoolNd):
    __doc__ = _IDWPoolNd.__doc__
    nd = 3


class AdaPool1d(_AdaPoolNd):
    __doc__ = _AdaPoolNd.__doc__
    nd = 1


class AdaPool2d(_AdaPoolNd):
    __doc__ = _AdaPoolNd.__doc__
    nd = 2


class AdaPool3d(_AdaPoolNd):
    __doc__ = _AdaPoolNd.__doc__
    nd = 3


# SoftPool is the name of eMPool in the authors' earlier paper.
SoftPool1d, SoftPool2d, SoftPool3d = EMPool1d, EMPool2d, EMPool3d
