"""Integrations with timm, torchvision and mmdetection. Each is imported lazily: ``import poolswap`` never
imports timm/mmdet/mmcv; ``poolswap.timm`` / ``poolswap.torchvision`` import the wrapper (and the library) on
first access through :func:`__getattr__` (PEP 562), which ``poolswap/__init__.py`` re-exports."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"timm": "poolswap.integrations.timm", "torchvision": "poolswap.integrations.torchvision"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module 'poolswap' has no attribute {name!r}")
