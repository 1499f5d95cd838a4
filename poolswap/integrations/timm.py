"""timm wrapper (DESIGN.md §4): ``poolswap.timm.create_model(name, pool="adapool", pretrained=False, ...)``.

Creates the model with ``timm.create_model`` (timm's pretrained weights when asked; ``features_only`` and
every other timm argument pass through), converts it at the model's own ``pretrained_cfg["input_size"]``,
and adds the β names to ``model.no_weight_decay()``, which timm's ``create_optimizer_v2`` reads. Importing
this module imports timm.
"""

from __future__ import annotations

from typing import Any

import timm as _timm
from torch import nn

from ._common import convert_model

__all__ = ["create_model"]


def create_model(
    model_name: str,
    pool: Any = "adapool",
    pretrained: bool = False,
    *,
    pool_rules: dict | None = None,
    example_inputs: Any = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """``timm.create_model(model_name, pretrained=pretrained, **timm_kwargs)`` converted with method
    ``pool`` and ``pool_rules`` (rules of :func:`poolswap.plan`, e.g. ``dict(beta_mode="channel")``)."""
    model = _timm.create_model(model_name, pretrained=pretrained, **timm_kwargs)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    input_size = tuple(cfg["input_size"]) if cfg.get("input_size") else None
    return convert_model(model, pool, input_size, example_inputs, dict(pool_rules or {}))
