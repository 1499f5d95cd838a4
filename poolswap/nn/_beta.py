"""adaPool's learnable β mask (DESIGN.md §2.4).

β mixes the two branches, y = β·y_eDSCW + (1 − β)·y_eM, and is stored as a logit: β = sigmoid(logit) stays
in (0, 1) by construction and, the logit being finite, never sits at a bound with a dead gradient.

Modes:
  * ``"spatial"`` (default, the paper's proposal): one β per output position, shape = the output spatial
    size the layer was sized for (``beta_shape``). At another output size the *logit* is resampled
    (bilinear / linear / trilinear, differentiably), so multi-scale detection inputs and timm models tested at a
    larger resolution work; ``beta_resize="error"`` raises instead.
  * ``"channel"``: one β per channel (needs ``channels``).
  * ``"scalar"``: a single β.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

BETA_MODES = ("spatial", "channel", "scalar")
BETA_RESIZE = ("bilinear", "error")
_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}
# β_init at an exact bound starts this far inside it, keeping the logit (and its gradient) finite.
_BOUND_MARGIN = 1e-3


class BetaMask(nn.Module):
    """A β mask for an nd-dimensional pooling layer.

    Args:
        nd: number of spatial dims of the pooling layer.
        mode: ``"spatial"``, ``"channel"`` or ``"scalar"``.
        shape: output spatial size (``"spatial"``); ignored otherwise.
        channels: channel count (``"channel"``); ignored otherwise.
        init: initial β in [0, 1] (0 and 1 start ``1e-3`` inside the bound).
        resize: ``"bilinear"`` resamples a spatial β to the runtime output size; ``"error"`` raises.
    """

    def __init__(
        self,
        nd: int,
        mode: str = "spatial",
        shape: Sequence[int] | None = None,
        channels: int | None = None,
        init: float = 0.5,
        resize: str = "bilinear",
    ) -> None:
        super().__init__()
        if mode not in BETA_MODES:
            raise ValueError(f"beta_mode must be one of {BETA_MODES}, got {mode!r}")
        if resize not in BETA_RESIZE:
            raise ValueError(f"beta_resize must be one of {BETA_RESIZE}, got {resize!r}")
        if not isinstance(init, (int, float)) or not 0.0 <= init <= 1.0:
            raise ValueError(f"beta_init must be a number in [0, 1], got {init!r}")
        if mode == "spatial":
            if shape is None or len(tuple(shape)) != nd or any(int(s) < 1 for s in shape):
                raise ValueError(
                    f"beta_shape must be the {nd}-d output size for beta_mode='spatial' "
                    f"(or pass input_size to the layer), got {shape!r}"
                )
            param_shape: tuple[int, ...] = tuple(int(s) for s in shape)
        elif mode == "channel":
            if not isinstance(channels, int) or channels < 1:
                raise ValueError(f"channels must be a positive int for beta_mode='channel', got {channels!r}")
            param_shape = (channels,) + (1,) * nd
        else:
            param_shape = ()
        self.nd, self.mode, self.resize = nd, mode, resize
        clamped = min(max(float(init), _BOUND_MARGIN), 1.0 - _BOUND_MARGIN)
        self.logit = nn.Parameter(torch.full(param_shape, math.log(clamped / (1.0 - clamped))))

    def forward(self, channels: int, out_size: Sequence[int]) -> torch.Tensor:
        """β values for an output of ``channels`` channels and spatial size ``out_size``: shape out_size
        (spatial), (C, 1, ...) (channel) or () (scalar)."""
        logit = self.logit
        if self.mode == "channel" and logit.shape[0] != channels:
            raise ValueError(f"beta has {logit.shape[0]} channels but the input has {channels}")
        if self.mode == "spatial" and tuple(logit.shape) != tuple(out_size):
            if self.resize == "error":
                raise ValueError(
                    f"beta was sized for output {tuple(logit.shape)} but this input pools to {tuple(out_size)} "
                    "(beta_resize='error'; use beta_resize='bilinear' to resample)"
                )
            logit = F.interpolate(
                logit[None, None], size=tuple(out_size), mode=_INTERPOLATION[self.nd], align_corners=False
            )[0, 0]
        return torch.sigmoid(logit)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, shape={tuple(self.logit.shape)}, resize={self.resize!r}"
