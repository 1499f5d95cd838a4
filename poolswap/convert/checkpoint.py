"""The plan travels with the model: save/load, revert, no_weight_decay (DESIGN.md §3).

A poolswap checkpoint is a plain dict — ``{"format": "poolswap/1", "plan": Plan.to_dict(), "state_dict": …}``
— so ``torch.load(path, weights_only=True)`` opens it (no pickled code). :func:`checkpoint` builds it for
embedding in your own checkpoint; :func:`load` accepts it, a path, or a plain state_dict.

    poolswap.save(model, "model.pt")
    model = poolswap.load(torchvision.models.resnet50(), "model.pt")   # re-applies the plan, loads strictly
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..nn._beta import BetaMask
from . import apply as _apply
from .core import _STATE, apply_plan, is_converted, plan_of
from .plan import Plan

__all__ = ["checkpoint", "save", "load", "revert", "no_weight_decay", "FORMAT"]

FORMAT = "poolswap/1"


def checkpoint(model: nn.Module) -> dict[str, Any]:
    """``{"format", "plan", "state_dict"}`` of a converted model (plan None for an unconverted one)."""
    p = plan_of(model)
    return {"format": FORMAT, "plan": p.to_dict() if p is not None else None, "state_dict": model.state_dict()}


def save(model: nn.Module, f: Any) -> None:
    """``torch.save(checkpoint(model), f)``."""
    torch.save(checkpoint(model), f)


def same_conversion(a: Plan, b: dict) -> bool:
    """Whether plan ``a`` and plan data ``b`` (``Plan.to_dict()``) convert the same sites with the same
    methods and arguments (what a checkpoint's parameters depend on)."""
    key = lambda sites: sorted((s["name"], s["method"], repr(s["kwargs"]), s.get("same_padding", False))  # noqa: E731
                               for s in sites if s["status"] == "convert")
    return key(a.to_dict()["sites"]) == key(b["sites"])


def load(model: nn.Module, ckpt: Any, *, map_location: Any = "cpu") -> nn.Module:
    """Loads a poolswap checkpoint (dict, path or file) into ``model``: an unconverted model is converted with
    the checkpoint's plan first, a converted one must carry the same conversion; then ``load_state_dict``
    strictly. A checkpoint of a converted model without its plan (a plain state_dict with β keys) and a plain
    checkpoint for a converted model raise ``ValueError``. Returns ``model``."""
    if isinstance(ckpt, (str, os.PathLike)) or hasattr(ckpt, "read"):
        ckpt = torch.load(ckpt, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict):
        raise TypeError(f"checkpoint must be a dict, a path or a file, got {type(ckpt).__name__}")
    if ckpt.get("format") == FORMAT:
        plan_data, state = ckpt.get("plan"), ckpt["state_dict"]
    else:
        plan_data, state = None, ckpt
    if plan_data is None:
        if is_converted(model):
            raise ValueError("checkpoint has no poolswap plan but the model is converted: load it into an unconverted model")
        foreign = [k for k in state if k.endswith("beta_mask.logit") or ".poolswap_" in k]
        if foreign:
            raise ValueError(f"checkpoint has poolswap parameters ({foreign[0]}, ...) but no plan: save it with poolswap.save")
    elif is_converted(model):
        if not same_conversion(plan_of(model), plan_data):
            raise ValueError("the model was converted with a different plan than the checkpoint's; revert it first")
    else:
        apply_plan(model, plan_data)
    model.load_state_dict(state, strict=True)
    return model


def revert(model: nn.Module) -> nn.Module:
    """Restores the original layers and forwards of a converted model in place (its β and other added
    parameters are dropped). Returns ``model``."""
    state = model.__dict__.get(_STATE)
    if state is None:
        raise ValueError("model is not converted by poolswap")
    plan = state["plan"]
    for site in plan.converted:
        if site.kind == "module":
            current = _apply.get_module(model, site.path)
            _apply.swap_module(model, current, state["originals"][site.path])
    for path in state["functional"]:
        _apply.undo_functional(_apply.get_module(model, path))
    restore = model.__dict__.pop("_poolswap_nwd", None)
    if restore is not None:
        if restore[0] is None:
            model.__dict__.pop("no_weight_decay", None)
        else:
            model.__dict__["no_weight_decay"] = restore[0]
    del model.__dict__[_STATE]
    return model


def no_weight_decay(model: nn.Module) -> list[str]:
    """Names of the β parameters (``….beta_mask.logit``) of ``model``, for optimizer groups without weight
    decay, e.g. ``[p for n, p in model.named_parameters() if n not in set(poolswap.no_weight_decay(model))]``."""
    names = []
    for prefix, module in model.named_modules():
        if isinstance(module, BetaMask):
            names.append(f"{prefix}.logit" if prefix else "logit")
    return names
