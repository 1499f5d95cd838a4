"""Building the replacement of one site from its plan row, and checking it reproduces the site's shapes."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..nn.lift import LiftUpPool1d, LiftUpPool2d, _LiftDownPoolNd
from ..nn.pools import _AdaPoolNd
from ..registry import get_pool, pool_from
from .modules import PairedAdaUnPool, SamePadPool
from .plan import Site

__all__ = ["torch_pool", "method_kwargs", "build_pool", "build_upsample", "check_shapes", "describe"]

_TORCH = {
    ("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
    ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d,
}  # fmt: skip


def torch_type(site: Site) -> type | None:
    if site.target == "upsample":
        return nn.Upsample
    return _TORCH.get((site.target, site.nd))


def _arg(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def torch_pool(site: Site) -> nn.Module:
    """The torch pool equivalent to a pool site's original geometry (SAME sites: padding 0)."""
    a = site.args
    if site.target == "max":
        return _TORCH["max", site.nd](
            _arg(a["kernel_size"]), _arg(a.get("stride")), _arg(a.get("padding", 0)), _arg(a.get("dilation", 1)),
            ceil_mode=bool(a.get("ceil_mode", False)),
        )  # fmt: skip
    if site.target == "avg":
        return _TORCH["avg", site.nd](
            _arg(a["kernel_size"]), _arg(a.get("stride")), _arg(a.get("padding", 0)),
            ceil_mode=bool(a.get("ceil_mode", False)),
        )  # fmt: skip
    raise TypeError(f"site {site.name!r} is not a max/avg pool")


def method_kwargs(method: str, site: Site, rules: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The keyword extras a registry method is built with at this site (plain data)."""
    shape_in, shape_out = site.input_shape, site.output_shape
    kwargs: dict[str, Any] = {}
    if method == "adapool":
        kwargs = {"beta_mode": rules.beta_mode, "beta_init": rules.beta_init, "beta_resize": rules.beta_resize}
        if rules.beta_mode == "spatial":
            kwargs["beta_shape"] = list(shape_out[2:])
        elif rules.beta_mode == "channel":
            kwargs["channels"] = int(shape_in[1])
    elif method == "liftpool":
        kwargs = {"channels": int(shape_in[1])}
    kwargs.update(rules.method_kwargs)
    kwargs.update(extra)
    return kwargs


def build_pool(site: Site, method: Any) -> nn.Module:
    """The replacement of a pool site: registry method ``site.method`` built with ``site.kwargs`` (or the
    callable ``method(torch_pool, site)``), wrapped in :class:`SamePadPool` for dynamic-SAME sites."""
    original = torch_pool(site)
    if callable(method) and not isinstance(method, str):
        module = method(original, site)
        if not isinstance(module, nn.Module):
            raise TypeError(f"method callable returned {type(module).__name__}, not an nn.Module")
    else:
        if site.method is None or site.method.startswith("callable:"):
            raise ValueError(
                f"site {site.name!r} was converted with {site.method}, which a plan cannot rebuild: convert the "
                "model with the same callable before loading"
            )
        get_pool(site.method, site.nd)  # a readable error for an unsupported dimensionality
        kwargs = {k: _arg(v) for k, v in site.kwargs.items()}
        if site.method == "liftpool" and any(s != 2 for s in _as_tuple(original.stride, site.nd)):
            raise ValueError("liftpool needs stride 2 (one lifting step halves each size)")
        module = pool_from(site.method, original, **kwargs)
    return SamePadPool(module) if site.same_padding else module


def _as_tuple(v: Any, nd: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def build_upsample(site: Site, pool: nn.Module) -> nn.Module:
    """The replacement of a paired upsample site: adaUnPool or LiftUpPool sharing the pool's parameters."""
    if site.method == "adaunpool":
        if not isinstance(pool, _AdaPoolNd):
            raise TypeError(f"adaunpool needs an AdaPool as its paired pool, got {type(pool).__name__}")
        return PairedAdaUnPool(pool, normalize=site.kwargs.get("normalize", "mean"))
    if site.method == "liftpool":
        if not isinstance(pool, _LiftDownPoolNd):
            raise TypeError(f"liftpool upsampling needs a LiftDownPool as its paired pool, got {type(pool).__name__}")
        return (LiftUpPool1d if pool._ndim == 1 else LiftUpPool2d)(pool)
    raise ValueError(f"unknown upsample method {site.method!r}")


def describe(module: nn.Module) -> tuple[str, list[int] | None, int]:
    """(class name, β logit shape or None, number of parameters) of a replacement."""
    inner = module.pool if isinstance(module, SamePadPool) else module
    name = type(inner).__name__ if inner is module else f"SamePadPool({type(inner).__name__})"
    beta = inner.beta_logit if isinstance(inner, _AdaPoolNd) else None
    return name, (list(beta.shape) if beta is not None else None), sum(p.numel() for p in module.parameters())


def check_shapes(site: Site, module: nn.Module, run: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> None:
    """Runs ``module`` on a random batch-1 input of every distinct call shape of the site and raises
    ``ValueError`` if an output shape differs from the original's."""
    seen = set()
    param = next(iter(module.parameters()), None)
    kw = {"dtype": param.dtype, "device": param.device} if param is not None else {}
    for call in site.calls:
        key = tuple(call["input"])
        if key in seen:
            continue
        seen.add(key)
        x = torch.randn(1, *call["input"][1:], **kw)
        with torch.no_grad():
            y = run(module, x) if run is not None else module(x)
        if list(y.shape[1:]) != list(call["output"][1:]):
            raise ValueError(
                f"site {site.name!r}: replacement {type(module).__name__} gives output shape "
                f"{list(y.shape[1:])} for input {call['input'][1:]}, the original gives {call['output'][1:]}"
            )
