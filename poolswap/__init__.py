"""poolswap: information-retaining pooling layers and model surgery for torchvision and timm."""

from . import ops
from ._extension import has_cuda_kernels, has_ops

__version__ = "0.1.0"

__all__ = ["ops", "has_ops", "has_cuda_kernels", "__version__"]
