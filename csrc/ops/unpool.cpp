// Schemas of adaUnPool and its backward (kernels: cpu/unpool_kernel.cpp, cuda/unpool_kernel.cu; fake
// kernels and autograd: poolswap/ops/_registrations.py).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(poolswap, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  // z: (N, C, *output) at pooled resolution; x: (N, C, *input), the paired pool's input; returns x's shape.
  // normalize: "mean" or "mass".
  m.def(
      "adaunpool(Tensor z, Tensor x, Tensor beta, int[] kernel_size, int[] stride, int[] padding, "
      "int[] dilation, bool ceil_mode, str normalize, float eps) -> Tensor",
      tags);
  // Returns (grad_z, grad_x, grad_beta).
  m.def(
      "_adaunpool_backward(Tensor grad, Tensor z, Tensor x, Tensor beta, int[] kernel_size, int[] stride, "
      "int[] padding, int[] dilation, bool ceil_mode, str normalize, float eps) -> (Tensor, Tensor, Tensor)",
      tags);
}
