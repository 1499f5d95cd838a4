"""Integrations with timm, torchvision and mmdetection. Each is imported lazily: ``import poolswap`` never
imports timm/mmdet/mmcv/mmengine. Through :func:`__getattr__` (PEP 562), which ``poolswap/__init__.py``
re-exports, ``poolswap.timm`` / ``poolswap.torchvision`` / ``poolswap.mmdet`` import the wrapper (and the
library) on first access, and ``poolswap.PoolSwap`` / ``poolswap.PoolSwapHook`` resolve to the mmdetection
builder and hook: that is how mmengine finds ``type="poolswap.PoolSwap"`` without ``custom_imports``."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_MODULES = {
    "timm": "poolswap.integrations.timm",
    "torchvision": "poolswap.integrations.torchvision",
    "mmdet": "poolswap.integrations.mmdet",
}
_LAZY_ATTRS = {"PoolSwap": "poolswap.integrations.mmdet", "PoolSwapHook": "poolswap.integrations.mmdet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'poolswap' has no attribute {name!r}")
