"""Shared by the timm and torchvision wrappers: convert at a size, and add β to ``no_weight_decay()``."""

from __future__ import annotations

import types
from typing import Any

from torch import nn

from ..convert import convert, no_weight_decay


def _no_weight_decay(self: nn.Module) -> set[str]:
    original = self.__dict__["_poolswap_nwd"][1]
    names = set(original()) if original is not None else set()
    return names | set(no_weight_decay(self))


def convert_model(model: nn.Module, pool: Any, input_size: Any, example_inputs: Any, rules: dict) -> nn.Module:
    """Converts ``model`` at ``input_size`` (unless ``example_inputs``) and makes ``model.no_weight_decay()``
    (timm's optimizer-factory hook) also return the β names."""
    if example_inputs is not None:
        convert(model, pool, example_inputs, **rules)
    else:
        convert(model, pool, input_size=input_size, **rules)
    previous = model.__dict__.get("no_weight_decay")  # an instance attribute to restore on revert
    bound = getattr(model, "no_weight_decay", None)
    model.__dict__["_poolswap_nwd"] = (previous, bound if callable(bound) else None)
    model.__dict__["no_weight_decay"] = types.MethodType(_no_weight_decay, model)
    return model
