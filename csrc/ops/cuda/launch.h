// Host entry points of the CUDA kernels (defined in pool_kernel.cu and unpool_kernel.cu, registered for
// the CUDA dispatch key in register_cuda.cpp). Signatures are those of the op schemas in pool.cpp and
// unpool.cpp, identical to the CPU implementations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <tuple>

namespace poolswap {
namespace cuda {

// One forward for the four pooling ops (mode: poolswap::Mode); NamedPools (named_pools.h) gives each op its
// schema.
at::Tensor pool_forward(const char* op, int mode, const at::Tensor& x, const c10::optional<at::Tensor>& beta,
                        at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, bool ceil_mode, double eps);

// Returns (grad_x, grad_beta); grad_beta is an empty tensor unless mode = 3 (adaPool).
std::tuple<at::Tensor, at::Tensor> pool_backward(const at::Tensor& grad, const at::Tensor& x,
                                                 const c10::optional<at::Tensor>& beta, int64_t mode,
                                                 at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                                                 double eps);

at::Tensor adaunpool(const at::Tensor& z, const at::Tensor& x, const at::Tensor& beta,
                     at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                     at::IntArrayRef dilation, bool ceil_mode, c10::string_view normalize, double eps);

// Returns (grad_z, grad_x, grad_beta).
std::tuple<at::Tensor, at::Tensor, at::Tensor> adaunpool_backward(
    const at::Tensor& grad, const at::Tensor& z, const at::Tensor& x, const at::Tensor& beta,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    bool ceil_mode, c10::string_view normalize, double eps);

}  // namespace cuda
}  // namespace poolswap
