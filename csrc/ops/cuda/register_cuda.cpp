// Registers the CUDA kernels (pool_kernel.cu, unpool_kernel.cu) for the CUDA dispatch key. Compiled by the
// host compiler: the .cu files stay free of torch/library.h.
#include <torch/library.h>

#include "../named_pools.h"
#include "launch.h"

TORCH_LIBRARY_IMPL(poolswap, CUDA, m) {
  poolswap::NamedPools<&poolswap::cuda::pool_forward>::impl(m);
  m.impl("_pool_backward", &poolswap::cuda::pool_backward);
  m.impl("adaunpool", &poolswap::cuda::adaunpool);
  m.impl("_adaunpool_backward", &poolswap::cuda::adaunpool_backward);
}
