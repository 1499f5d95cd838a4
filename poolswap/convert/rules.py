"""Conversion rules: which sites are converted, with what (DESIGN.md §3).

    poolswap.plan(model, "adapool",
                  targets=("max", "avg"),                 # kinds of site; "upsample" is added by upsample=
                  include=["layer*", "re:^features\\."],   # module-path globs, "re:" regexes, module types
                  exclude=[nn.AvgPool2d],
                  overrides={"maxpool": "idwpool", "features.pool0": None, "Mixed_5b/avg_pool2d/0": dict(method="empool")},
                  beta_mode="spatial", beta_init=0.5, beta_resize="bilinear",
                  global_pools=False, kernel1_pools=False, stride1_pools=False)

A pattern matches a site's name or its module path (``fnmatch`` globs, full match), ``re:<regex>``
(``re.search``), or a type (``isinstance`` of the original module; a functional site counts as its torch
module: ``F.max_pool2d`` is an ``nn.MaxPool2d``). Every include/exclude pattern and override key must match
at least one site, else ``ValueError``. Overrides win over every default exclusion.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..nn._beta import BETA_MODES, BETA_RESIZE
from ..registry import _resolve

__all__ = ["Rules", "TARGETS", "UPSAMPLE_METHODS"]

TARGETS = ("max", "avg", "upsample")
UPSAMPLE_METHODS = ("adaunpool", "liftpool")
Pattern = Any  # str | type


def _patterns(name: str, value: Any) -> list[Pattern]:
    if value is None:
        return []
    items = [value] if isinstance(value, (str, type)) else list(value)
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, nn.Module):
                raise TypeError(f"{name}: a type must be an nn.Module subclass, got {item.__name__}")
        elif isinstance(item, str):
            if item.startswith("re:"):
                try:
                    re.compile(item[3:])
                except re.error as exc:
                    raise ValueError(f"{name}: bad regex {item!r}: {exc}") from None
        else:
            raise TypeError(f"{name} must be globs, 're:' regexes or module types, got {item!r}")
    return items


def pattern_text(p: Pattern) -> str:
    return p.__name__ if isinstance(p, type) else p


def method_name(method: Any) -> str:
    """The registry name of ``method`` (validated), or ``callable:<qualname>``."""
    if isinstance(method, str):
        return _resolve(method)
    if callable(method):
        return "callable:" + (getattr(method, "__qualname__", None) or type(method).__name__)
    raise TypeError(f"method must be a pooling method name or a callable, got {type(method).__name__}")


@dataclass
class Rules:
    method: Any = "adapool"
    targets: tuple[str, ...] | None = None
    include: list[Pattern] = field(default_factory=list)
    exclude: list[Pattern] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    upsample: str | None = None
    beta_mode: str = "spatial"
    beta_init: float = 0.5
    beta_resize: str = "bilinear"
    normalize: str = "mean"
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    global_pools: bool = False
    kernel1_pools: bool = False
    stride1_pools: bool = False

    @classmethod
    def make(cls, method: Any = "adapool", **rules: Any) -> "Rules":
        known = set(cls.__dataclass_fields__) - {"method"}
        unknown = set(rules) - known
        if unknown:
            raise TypeError(f"unknown rule(s) {sorted(unknown)}; valid rules: {sorted(known)}")
        r = cls(method=method, **rules)
        method_name(method)
        r.include = _patterns("include", r.include)
        r.exclude = _patterns("exclude", r.exclude)
        if r.targets is not None:
            r.targets = (r.targets,) if isinstance(r.targets, str) else tuple(r.targets)
            bad = [t for t in r.targets if t not in TARGETS]
            if bad or not r.targets:
                raise ValueError(f"targets must be a non-empty selection of {TARGETS}, got {r.targets!r}")
        if r.upsample is not None and r.upsample not in UPSAMPLE_METHODS:
            raise ValueError(f"upsample must be one of {UPSAMPLE_METHODS} or None, got {r.upsample!r}")
        if r.beta_mode not in BETA_MODES:
            raise ValueError(f"beta_mode must be one of {BETA_MODES}, got {r.beta_mode!r}")
        if r.beta_resize not in BETA_RESIZE:
            raise ValueError(f"beta_resize must be one of {BETA_RESIZE}, got {r.beta_resize!r}")
        if not isinstance(r.overrides, dict):
            raise TypeError(f"overrides must be a dict of site name -> method, got {type(r.overrides).__name__}")
        for key, value in r.overrides.items():
            if not isinstance(key, str):
                raise TypeError(f"overrides keys must be site names or globs, got {key!r}")
            if value not in (None, "skip") and not isinstance(value, dict):
                method_name(value)
            if isinstance(value, dict) and "method" in value:
                method_name(value["method"])
        if not isinstance(r.method_kwargs, dict):
            raise TypeError("method_kwargs must be a dict")
        return r

    @property
    def active_targets(self) -> tuple[str, ...]:
        if self.targets is not None:
            return self.targets + (("upsample",) if self.upsample and "upsample" not in self.targets else ())
        return ("max", "avg") + (("upsample",) if self.upsample else ())

    @staticmethod
    def matches(pattern: Pattern, name: str, path: str, torch_type: type | None, module: nn.Module | None) -> bool:
        if isinstance(pattern, type):
            return (module is not None and isinstance(module, pattern)) or (
                torch_type is not None and issubclass(torch_type, pattern)
            )
        if pattern.startswith("re:"):
            rx = re.compile(pattern[3:])
            return bool(rx.search(name) or rx.search(path))
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(path, pattern)

    def override_for(self, name: str) -> tuple[str | None, Any]:
        """(the matching override key or None, its value): an exact site name first, then globs."""
        if name in self.overrides:
            return name, self.overrides[name]
        for key, value in self.overrides.items():
            if fnmatch.fnmatchcase(name, key):
                return key, value
        return None, None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data summary for the plan (types by name, callables by qualname)."""
        def plain(v: Any) -> Any:
            if isinstance(v, type):
                return v.__name__
            if callable(v) and not isinstance(v, (str, dict)):
                return method_name(v)
            if isinstance(v, dict):
                return {str(k): plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return v
        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__}


def check_matched(rules: Rules, used: dict[str, int]) -> None:
    """Raises if an include/exclude pattern or override key matched no site."""
    for kind, items in (("include", rules.include), ("exclude", rules.exclude), ("overrides", list(rules.overrides))):
        for p in items:
            if used.get(f"{kind}:{pattern_text(p)}", 0) == 0:
                raise ValueError(f"{kind} rule {pattern_text(p)!r} matched no site")

