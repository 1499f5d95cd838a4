"""torchvision wrapper (DESIGN.md §4): ``poolswap.torchvision.get_model(name, weights=None, pool="adapool")``.

Builds the model with ``torchvision.models.get_model`` and converts it at its weights' evaluation crop size
(``weights.transforms().crop_size``; the model's DEFAULT weights' when ``weights`` is None — e.g. 299 for
inception_v3; 224×224 when unknown). β names are added to ``model.no_weight_decay()``. Importing this module
imports torchvision.
"""

from __future__ import annotations

from typing import Any

import torchvision as _tv
from torch import nn

from ._common import convert_model

__all__ = ["get_model", "input_size_of"]


def input_size_of(name: str, weights: Any = None) -> tuple[int, int] | None:
    """The evaluation crop of ``weights`` (or of the model's DEFAULT weights), None if unknown."""
    try:
        w = _tv.models.get_weight(weights) if isinstance(weights, str) else weights
        if w is None:
            w = _tv.models.get_model_weights(name).DEFAULT
        crop = getattr(w.transforms(), "crop_size", None)
    except Exception:  # no registered weights / transforms without a crop (detection)
        return None
    if not crop:
        return None
    return (crop[0], crop[-1]) if isinstance(crop, (list, tuple)) else (crop, crop)


def get_model(
    name: str,
    weights: Any = None,
    pool: Any = "adapool",
    *,
    pool_rules: dict | None = None,
    example_inputs: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """``torchvision.models.get_model(name, weights=weights, **kwargs)`` converted with method ``pool`` and
    ``pool_rules`` (rules of :func:`poolswap.plan`)."""
    model = _tv.models.get_model(name, weights=weights, **kwargs)
    return convert_model(model, pool, input_size_of(name, weights), example_inputs, dict(pool_rules or {}))
