"""mmdetection integration (DESIGN.md §4): poolswap backbones built, trained and checkpointed by mmengine.

In a config that inherits one of mmdet's (``_base_ = "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"``)::

    model = dict(backbone=dict(_delete_=True, type="poolswap.PoolSwap", backbone={{_base_.model.backbone}},
                               method="adapool"))
    custom_hooks = [dict(type="poolswap.PoolSwapHook")]
    optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"beta_mask": dict(decay_mult=0.0)}))

* ``PoolSwap`` (registered in the scoped registry ``poolswap`` under mmdet's ``MODELS``, and in mmdet's
  ``MODELS`` itself) builds the inner backbone through mmdet's registry, converts it at build time
  (:func:`poolswap.convert`) and returns **that same object**: the detector's checkpoint keys stay
  ``backbone.*``, the backbone's ``init_cfg`` (``Pretrained``) still loads its weights, and β exists before
  mmengine builds the optimizer and wraps the model in DDP (a hook would be too late). β defaults to
  ``beta_mode="channel"``: see :func:`PoolSwap`.
* Sites in frozen stages follow ``frozen_stages`` (ResNet family: the stem, i.e. ``maxpool``, is frozen when
  ``frozen_stages >= 0``; ``layerK`` when ``frozen_stages >= K``): their added parameters get
  ``requires_grad=False``, also after every ``model.train()``. ``norm_eval`` is untouched. The backbone's
  ``init_weights`` (e.g. the default Kaiming init of every ``Conv2d``) leaves poolswap's added parameters at
  their own initialisation (LiftPool's zero-initialised predictors, β = ``beta_init``).
* ``PoolSwapHook`` writes the plans into checkpoint ``meta["poolswap"]`` (plain data) and, when a checkpoint
  is loaded or resumed (``after_load_checkpoint``, before mmengine's non-strict ``load_state_dict``), refuses
  one whose plans do not match the model's: a converted checkpoint into an unconverted model, a plain one
  into a converted model, a different conversion, or poolswap parameters without a plan.
* Importing this module allow-lists mmengine's checkpoint globals (``HistoryBuffer`` and the numpy
  array/dtype/scalar reconstructors) for ``torch.load(weights_only=True)``, the default of torch >= 2.6, so
  ``resume`` / ``load_from`` work without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` and without unpickling code.

``type="poolswap.PoolSwap"`` resolves with no ``custom_imports``: mmengine falls back to importing
``poolswap`` and reading its (lazy) ``PoolSwap`` attribute, which imports this module and registers the
``poolswap`` scope; ``custom_imports=dict(imports=["poolswap.integrations.mmdet"])`` works as well (then
``type="PoolSwap"`` also resolves). Importing this module imports mmengine, mmcv and mmdet.
"""

from __future__ import annotations

import logging
import pickle
import types
from typing import Any

import numpy as np
import torch
from mmdet.registry import HOOKS as _MMDET_HOOKS
from mmdet.registry import MODELS as _MMDET_MODELS
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import Registry
from torch import nn

from ..convert import is_converted, plan_of
from ..convert.checkpoint import same_conversion
from ..convert.plan import Plan
from ._common import convert_model

__all__ = [
    "MODELS", "HOOKS", "PoolSwap", "PoolSwapHook", "PARAMWISE_CFG", "DEFAULT_INPUT_SIZE", "converted_modules",
    "check_checkpoint",
]  # fmt: skip

# the scope "poolswap": children of mmdet's registries, so "poolswap.PoolSwap" is found from mmdet's scope
MODELS = Registry("model", parent=_MMDET_MODELS, scope="poolswap", locations=["poolswap.integrations.mmdet"])
HOOKS = Registry("hook", parent=_MMDET_HOOKS, scope="poolswap", locations=["poolswap.integrations.mmdet"])

# β (adaPool's mixing logit) is a mixing weight, not a filter: no weight decay. For optim_wrapper.paramwise_cfg.
PARAMWISE_CFG = {"custom_keys": {"beta_mask": {"decay_mult": 0.0}}}
# the example forward's size, (H, W): the stock 1x schedule's scale (1333×800, landscape)
DEFAULT_INPUT_SIZE = (800, 1333)
_META_KEY = "poolswap"


def _allow_mmengine_checkpoints() -> None:
    """mmengine pickles its message hub (HistoryBuffer with numpy arrays and scalars) into every checkpoint;
    allow-list exactly those globals for torch.load(weights_only=True) — no code is unpickled."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:  # torch < 2.4: weights_only is not the default there
        return
    try:
        from numpy._core import multiarray  # noqa: PLC0415  (numpy 2)
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # noqa: PLC0415
    dtype_classes = [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "int16",
                                                  "int8", "uint8", "bool")]  # fmt: skip
    # numpy 2 pickles name numpy._core.multiarray, numpy 1 numpy.core.multiarray: accept both
    named = [(getattr(multiarray, fn), f"{mod}.multiarray.{fn}") for fn in ("_reconstruct", "scalar")
             for mod in ("numpy._core", "numpy.core")]  # fmt: skip
    # HistoryBuffer's statistics methods are pickled as getattr(HistoryBuffer, "min"): a getattr restricted to
    # those stands in for the builtin (allow-listing builtins.getattr itself would open every attribute)
    getattrs = [(_history_buffer_getattr, f"{mod}.getattr") for mod in ("__builtin__", "builtins")]
    add([HistoryBuffer, np.ndarray, np.dtype, *dtype_classes, *named, *getattrs])


_STATISTICS = ("min", "max", "current", "mean")


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for weights-only loads of mmengine checkpoints: only HistoryBuffer's statistics methods."""
    if obj is HistoryBuffer and (name in _STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"poolswap: getattr({obj!r}, {name!r}) is not allowed in a weights-only load")


_allow_mmengine_checkpoints()


# ----------------------------------------------------------------------------------------------- builder


def _site_stage(backbone: nn.Module, path: str) -> int | None:
    """ResNet-family stage of a module path: 0 for the stem (anything outside ``res_layers``, e.g.
    ``maxpool``), K for ``layerK``; None when the backbone has no ``res_layers``."""
    names = getattr(backbone, "res_layers", None)
    if not names:
        return None
    for k, name in enumerate(names, 1):
        if path == name or path.startswith(name + "."):
            return k
    return 0


def _added_params(backbone: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """{site path: [(name, parameter) poolswap added there]} for the module sites of a converted backbone;
    a functional site's replacement is the child ``poolswap_<fn>_<i>`` of its enclosing module."""
    plan = plan_of(backbone)
    out: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for site in plan.converted if plan is not None else ():
        if site.kind == "module":
            paths = [site.path]
        else:
            parent = backbone.get_submodule(site.path)
            paths = [f"{site.path}.{n}" if site.path else n for n, _ in parent.named_children() if n.startswith("poolswap_")]
        for path in paths:
            module = backbone.get_submodule(path)
            out.setdefault(path, [(f"{path}.{n}", p) for n, p in module.named_parameters()])
    return out


def _freeze_sites(backbone: nn.Module) -> None:
    """Sets requires_grad=False on the added parameters of sites inside frozen stages."""
    frozen = backbone.__dict__.get("_poolswap_frozen_sites", ())
    for path, params in _added_params(backbone).items():
        if path in frozen:
            for _, p in params:
                p.requires_grad_(False)


def _freeze_stages(self: nn.Module) -> None:
    self.__dict__["_poolswap_orig_freeze"]()
    _freeze_sites(self)


def _init_weights(self: nn.Module) -> None:
    keep = {name: p.detach().clone() for params in _added_params(self).values() for name, p in params}
    self.__dict__["_poolswap_orig_init"]()
    with torch.no_grad():
        for prefix_name, p in ((n, p) for params in _added_params(self).values() for n, p in params):
            p.copy_(keep[prefix_name])


def PoolSwap(  # noqa: N802  (an mmengine type name)
    backbone: dict,
    method: Any = "adapool",
    beta_mode: str = "channel",
    input_size: Any = DEFAULT_INPUT_SIZE,
    include: Any = None,
    exclude: Any = None,
    freeze_with_stages: bool = True,
    init_cfg: Any = ...,
    **rules: Any,
) -> nn.Module:
    """Builds ``backbone`` (a config dict) with mmdet's ``MODELS``, converts it in place and returns it.

    Args:
        backbone: the inner backbone's config, e.g. the stock ``{{_base_.model.backbone}}``.
        method: poolswap method for every converted site (``"adapool"``, ``"liftpool"``, ``"softpool"``, ...).
        beta_mode: adaPool's β. Default ``"channel"`` (one β per channel): a detector's batch is resized per
            image (multi-scale) and padded bottom-right to the largest image, so a spatial β (one per output
            position, resampled to each batch's size) would tie each β entry to a different part of the image
            in every batch — a position prior that means nothing to a translation-equivariant detector.
            ``"spatial"`` (resampled bilinearly, sized at ``input_size``) and ``"scalar"`` are available.
        input_size: (H, W) or (C, H, W) of the example forward that finds the sites and sizes a spatial β.
        include, exclude: site globs / ``re:`` regexes / types (:mod:`poolswap.convert.rules`).
        freeze_with_stages: sites inside stages frozen by the backbone's ``frozen_stages`` get their added
            parameters frozen too (the stem, hence ``maxpool``, is frozen from ``frozen_stages=0``). Set False
            to train β of a new pool while keeping the stock recipe's frozen pretrained convolutions.
        init_cfg: when given, replaces the inner backbone's ``init_cfg`` (so ``model.backbone.init_cfg=None``
            in ``--cfg-options`` still reaches the backbone).
        **rules: any other rule of :func:`poolswap.plan` (``overrides``, ``beta_init``, ``stride1_pools``, ...).
    """
    if not isinstance(backbone, dict):
        raise TypeError(f"PoolSwap: backbone must be a config dict, got {type(backbone).__name__}")
    cfg = dict(backbone)
    if init_cfg is not ...:
        cfg["init_cfg"] = init_cfg
    model = _MMDET_MODELS.build(cfg)
    rules = dict(rules, beta_mode=beta_mode)
    if include is not None:
        rules["include"] = include
    if exclude is not None:
        rules["exclude"] = exclude
    convert_model(model, method, input_size, None, rules)
    plan = plan_of(model)
    if not plan.converted:
        raise ValueError(f"PoolSwap: no site of {type(model).__name__} was converted:\n{plan}")

    frozen: set[str] = set()
    frozen_stages = getattr(model, "frozen_stages", -1)
    if freeze_with_stages and isinstance(frozen_stages, int) and frozen_stages >= 0:
        for path in _added_params(model):
            stage = _site_stage(model, path)
            if stage is None:
                print_log(f"PoolSwap: {type(model).__name__} has frozen_stages={frozen_stages} but no res_layers; "
                          f"the parameters at {path!r} are not frozen", logger="current", level=logging.WARNING)
            elif stage <= frozen_stages:
                frozen.add(path)
    model.__dict__["_poolswap_frozen_sites"] = frozenset(frozen)
    if callable(getattr(model, "_freeze_stages", None)):
        model.__dict__["_poolswap_orig_freeze"] = model._freeze_stages
        model.__dict__["_freeze_stages"] = types.MethodType(_freeze_stages, model)
    if callable(getattr(model, "init_weights", None)):
        model.__dict__["_poolswap_orig_init"] = model.init_weights
        model.__dict__["init_weights"] = types.MethodType(_init_weights, model)
    _freeze_sites(model)
    print_log(f"PoolSwap: converted {type(model).__name__} (frozen sites: {sorted(frozen) or 'none'})\n{plan}",
              logger="current", level=logging.INFO)
    return model


MODELS.register_module(name="PoolSwap", module=PoolSwap)
_MMDET_MODELS.register_module(name="PoolSwap", module=PoolSwap, force=True)


# --------------------------------------------------------------------------------------------- checkpoints


def converted_modules(model: nn.Module) -> dict[str, Plan]:
    """{module path: plan} of every converted submodule (e.g. ``{"backbone": ...}``), DDP unwrapped."""
    if is_model_wrapper(model):
        model = model.module
    return {path: plan_of(m) for path, m in model.named_modules() if is_converted(m)}


def _describe(plan_data: dict) -> str:
    sites = [f"{s['name']}->{s['method']}" for s in plan_data["sites"] if s["status"] == "convert"]
    return ", ".join(sites) or "nothing"


def check_checkpoint(model: nn.Module, checkpoint: dict, *, allow_plain: bool = False) -> None:
    """Raises ``ValueError`` unless ``checkpoint`` (an mmengine checkpoint dict) was saved from a model
    converted exactly as ``model``: same converted submodules with the same plans (``meta["poolswap"]``), and
    no poolswap parameters without a plan. ``allow_plain`` accepts a checkpoint without any plan for a
    converted model (e.g. fine-tuning from a stock detector; the added parameters keep their init)."""
    ours = converted_modules(model)
    meta = (checkpoint.get("meta") or {}).get(_META_KEY) or {}
    theirs = meta.get("plans", {}) if isinstance(meta, dict) else {}
    state = checkpoint.get("state_dict", checkpoint)
    state_keys = [k[len("module."):] if k.startswith("module.") else k for k in state]
    for path, data in theirs.items():
        if path not in ours:
            raise ValueError(
                f"poolswap: the checkpoint's {path!r} was converted ({_describe(data)}) but this model's {path!r} is "
                f"not: build it with type='poolswap.PoolSwap' and the same rules (see configs/README.md), or "
                f"its poolswap parameters would be silently dropped")
        if not same_conversion(ours[path], data):
            raise ValueError(
                f"poolswap: the checkpoint's {path!r} was converted differently ({_describe(data)}) from this "
                f"model's ({_describe(ours[path].to_dict())})")
    if not theirs:
        stray = [k for k in state_keys if "beta_mask." in k or ".poolswap_" in k]
        if stray:
            raise ValueError(f"poolswap: the checkpoint has poolswap parameters ({stray[0]}, ...) but no plan in "
                             f"meta['{_META_KEY}']: it was not saved with PoolSwapHook")
    missing = [p for p in ours if p not in theirs]
    if missing and not allow_plain:
        raise ValueError(
            f"poolswap: this model's {missing[0]!r} is converted ({_describe(ours[missing[0]].to_dict())}) but the "
            f"checkpoint has no poolswap plan for it (a stock checkpoint?): its poolswap parameters would stay "
            f"at their init. Use PoolSwapHook(allow_plain_checkpoints=True) to fine-tune from it on purpose")


class PoolSwapHook(Hook):
    """Records the conversion plans in checkpoint ``meta["poolswap"]`` and refuses to load/resume a
    checkpoint whose plans do not match the model (see :func:`check_checkpoint`); logs the plans at
    ``before_run``. Add it as ``custom_hooks = [dict(type="poolswap.PoolSwapHook")]``."""

    priority = "VERY_HIGH"

    def __init__(self, allow_plain_checkpoints: bool = False) -> None:
        self.allow_plain_checkpoints = allow_plain_checkpoints

    def before_run(self, runner: Any) -> None:
        plans = converted_modules(runner.model)
        if not plans:
            runner.logger.info("poolswap: no converted module in this model")
        for path, plan in plans.items():
            runner.logger.info(f"poolswap: {path} is converted\n{plan}")

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        plans = converted_modules(runner.model)
        meta = checkpoint.setdefault("meta", {})
        meta[_META_KEY] = {"format": "poolswap/1", "plans": {path: p.to_dict() for path, p in plans.items()}}

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        check_checkpoint(runner.model, checkpoint, allow_plain=self.allow_plain_checkpoints)


HOOKS.register_module(name="PoolSwapHook", module=PoolSwapHook)
_MMDET_HOOKS.register_module(name="PoolSwapHook", module=PoolSwapHook, force=True)
