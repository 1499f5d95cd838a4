// Schemas of the window pools and their shared backward (kernels: cpu/pool_kernel.cpp,
// cuda/pool_kernel.cu; fake kernels and autograd: poolswap/ops/_registrations.py).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(poolswap, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  m.def("empool(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode) -> Tensor",
        tags);
  m.def(
      "edscwpool(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode, "
      "float eps) -> Tensor",
      tags);
  m.def(
      "idwpool(Tensor x, int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode, "
      "float eps) -> Tensor",
      tags);
  // beta: values in [0, 1] broadcastable to (C, *output); broadcast over N.
  m.def(
      "adapool(Tensor x, Tensor beta, int[] kernel_size, int[] stride, int[] padding, int[] dilation, "
      "bool ceil_mode, float eps) -> Tensor",
      tags);
  // mode: 0 eM, 1 eDSCW, 2 IDW, 3 adaPool (needs beta). Returns (grad_x, grad_beta); grad_beta is empty
  // unless mode = 3.
  m.def(
      "_pool_backward(Tensor grad, Tensor x, Tensor? beta, int mode, int[] kernel_size, int[] stride, "
      "int[] padding, int[] dilation, bool ceil_mode, float eps) -> (Tensor, Tensor)",
      tags);
}
