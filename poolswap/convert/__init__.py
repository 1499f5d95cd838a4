"""Conversion pass (DESIGN.md §3): find a model's pooling / upsampling sites and swap in poolswap's layers.

    plan = poolswap.plan(model, "adapool")        # analysis only: print(plan) shows the table
    model = poolswap.convert(model, "adapool")    # in place; same class, weights and state_dict keys (+ β)
    poolswap.save(model, "m.pt"); poolswap.load(fresh_model, "m.pt")
    poolswap.revert(model)                        # the original layers back

Modules: ``sites`` (discovery), ``rules``, ``plan`` (Plan/Site + table), ``build`` (replacements),
``pairing`` (upsample <-> pool), ``apply`` (module swap, FX rewrite), ``checkpoint`` (save/load/revert).
"""

import sys
import types

from .checkpoint import checkpoint, load, no_weight_decay, revert, save
from .core import apply_plan, convert, is_converted, plan, plan_of
from .plan import Plan, Site
from .rules import Rules

__all__ = [
    "plan", "convert", "apply_plan", "revert", "save", "load", "checkpoint", "no_weight_decay",
    "plan_of", "is_converted", "Plan", "Site", "Rules",
]  # fmt: skip


class _CallablePackage(types.ModuleType):
    """``poolswap.convert`` is this package *and* callable as :func:`convert`: ``poolswap.convert(model)``."""

    def __call__(self, *args, **kwargs):
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
