"""poolswap: information-retaining pooling layers and model surgery for torchvision and timm.

    import poolswap
    model = poolswap.convert(torchvision.models.resnet50(), "adapool")
    pool = poolswap.create_pool("adapool", 3, 2, 1, input_size=(112, 112))
    y = poolswap.ops.adapool(x, beta, 3, 2, 1)

``poolswap.convert`` is a package that is also callable; ``poolswap.timm``, ``poolswap.torchvision`` and
``poolswap.mmdet`` (with ``poolswap.PoolSwap`` / ``poolswap.PoolSwapHook``) are imported on first use, so
``import poolswap`` never imports timm, mmdet or mmcv.
"""

from . import nn, ops
from ._extension import has_cuda_kernels, has_ops
from .nn.lift import aux_loss
from .registry import create_pool, get_pool, list_pools, pool_from, register_pool
from .convert import checkpoint, load, no_weight_decay, plan, plan_of, revert, save
from .integrations import __getattr__  # noqa: F401  (lazy timm / torchvision / mmdet integrations)

__version__ = "0.1.0"

__all__ = [
    "nn", "ops", "has_ops", "has_cuda_kernels", "aux_loss",
    "create_pool", "get_pool", "list_pools", "pool_from", "register_pool",
    "convert", "plan", "revert", "save", "load", "checkpoint", "no_weight_decay", "plan_of", "__version__",
]  # fmt: skip
