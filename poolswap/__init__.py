"""poolswap: information-retaining pooling layers and model surgery for torchvision and timm.

    import poolswap
    pool = poolswap.create_pool("adapool", 3, 2, 1, input_size=(112, 112))
    y = poolswap.ops.adapool(x, beta, 3, 2, 1)
"""

from . import nn, ops
from ._extension import has_cuda_kernels, has_ops
from .nn.lift import aux_loss
from .registry import create_pool, get_pool, list_pools, pool_from, register_pool

__version__ = "0.1.0"

__all__ = [
    "nn", "ops", "has_ops", "has_cuda_kernels", "aux_loss",
    "create_pool", "get_pool", "list_pools", "pool_from", "register_pool", "__version__",
]  # fmt: skip
