"""Registry of pooling methods by name, timm-style: ``register_pool`` / ``get_pool`` / ``create_pool``.

Built-in names: ``"adapool"``, ``"empool"`` (alias ``"softpool"``), ``"edscwpool"``, ``"idwpool"``,
``"liftpool"`` (1-D and 2-D, stride 2), and torch's own ``"max"`` and ``"avg"``. A method maps a number of
spatial dims to a module class; every class accepts MaxPool's geometry arguments and keyword extras.

    pool = poolswap.create_pool("adapool", 3, 2, 1, input_size=(112, 112))          # AdaPool2d
    pool = poolswap.pool_from("adapool", torchvision_model.maxpool, input_size=(112, 112))
"""

from __future__ import annotations

from typing import Callable, Mapping

from torch import nn

from . import nn as pnn
from .nn.pools import pool_geometry_kwargs

__all__ = ["register_pool", "get_pool", "create_pool", "pool_from", "list_pools"]

_METHODS: dict[str, Mapping[int, type]] = {}
_ALIASES: dict[str, str] = {}


def register_pool(name: str, classes: Mapping[int, type], *, aliases: tuple[str, ...] = (), overwrite: bool = False) -> None:
    """Registers a pooling method: ``classes`` maps spatial dims (1, 2, 3) to module classes taking MaxPool's
    geometry arguments (``kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False``) plus keyword
    extras."""
    key = name.lower()
    for n in [key, *(a.lower() for a in aliases)]:
        if not overwrite and (n in _METHODS or n in _ALIASES):
            raise ValueError(f"pooling method {n!r} is already registered (pass overwrite=True to replace it)")
    if not classes or not all(d in (1, 2, 3) for d in classes):
        raise ValueError(f"classes must map spatial dims 1, 2 or 3 to module classes, got {dict(classes)!r}")
    _METHODS[key] = dict(classes)
    for alias in aliases:
        _ALIASES[alias.lower()] = key


def list_pools() -> list[str]:
    """Registered method names and aliases, sorted."""
    return sorted([*_METHODS, *_ALIASES])


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"method must be a pooling method name, got {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _METHODS:
        raise ValueError(f"unknown pooling method {name!r}; valid names: {', '.join(list_pools())}")
    return key


def get_pool(name: str, nd: int = 2) -> type:
    """The module class of method ``name`` for ``nd`` spatial dims."""
    key = _resolve(name)
    classes = _METHODS[key]
    if nd not in classes:
        raise ValueError(f"pooling method {name!r} supports {sorted(classes)}-d inputs, not {nd}-d")
    return classes[nd]


def create_pool(
    name: str,
    kernel_size,
    stride=None,
    padding=0,
    dilation=1,
    ceil_mode: bool = False,
    *,
    nd: int = 2,
    **extras,
) -> nn.Module:
    """Builds method ``name`` for ``nd`` spatial dims with MaxPool-style geometry and keyword extras
    (e.g. ``input_size=`` / ``beta_mode=`` for adapool, ``channels=`` for liftpool)."""
    cls = get_pool(name, nd)
    if cls in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d):
        if dilation not in (1, (1,) * nd):
            raise ValueError(f"avg pooling has no dilation, got dilation={dilation!r}")
        return cls(kernel_size, stride, padding, ceil_mode=ceil_mode, **extras)
    return cls(kernel_size, stride, padding, dilation, ceil_mode, **extras)


def pool_from(name: str, module: nn.Module, **extras) -> nn.Module:
    """Builds method ``name`` with the geometry of an existing torch MaxPool/AvgPool ``module``."""
    return create_pool(name, **pool_geometry_kwargs(module), nd=_pool_dims(module), **extras)


def _pool_dims(module: nn.Module) -> int:
    for nd, classes in ((1, (nn.MaxPool1d, nn.AvgPool1d)), (2, (nn.MaxPool2d, nn.AvgPool2d)), (3, (nn.MaxPool3d, nn.AvgPool3d))):
        if isinstance(module, classes):
            return nd
    raise TypeError(f"pool_from needs a torch MaxPool/AvgPool module, got {type(module).__name__}")


_BUILTIN: dict[str, tuple[Mapping[int, type], tuple[str, ...]]] = {
    "adapool": ({1: pnn.AdaPool1d, 2: pnn.AdaPool2d, 3: pnn.AdaPool3d}, ()),
    "empool": ({1: pnn.EMPool1d, 2: pnn.EMPool2d, 3: pnn.EMPool3d}, ("softpool",)),
    "edscwpool": ({1: pnn.EDSCWPool1d, 2: pnn.EDSCWPool2d, 3: pnn.EDSCWPool3d}, ()),
    "idwpool": ({1: pnn.IDWPool1d, 2: pnn.IDWPool2d, 3: pnn.IDWPool3d}, ()),
    "liftpool": ({1: pnn.LiftDownPool1d, 2: pnn.LiftDownPool2d}, ()),
    "max": ({1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}, ()),
    "avg": ({1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}, ()),
}
for _name, (_classes, _aliases) in _BUILTIN.items():
    register_pool(_name, _classes, aliases=_aliases)
