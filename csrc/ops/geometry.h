// Argument checking and geometry of the window ops, shared by the CPU and CUDA kernels.
// Defined in geometry.cpp (compiled by the host compiler only).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <vector>

#include <poolswap/window.h>

namespace poolswap {

// A pooling geometry over 1–3 spatial axes, padded to three axes (D, H, W): unused leading axes have
// in = out = k = s = d = 1, p = 0. ax[2] is always the last (fastest) spatial axis.
struct PoolGeometry {
  int nd;
  int64_t N, C;
  Axis ax[3];

  // (N, C, *out) and (N, C, *in) with nd spatial sizes.
  std::vector<int64_t> out_sizes() const;
  std::vector<int64_t> in_sizes() const;
  int64_t in_plane() const { return ax[0].in * ax[1].in * ax[2].in; }
  int64_t out_plane() const { return ax[0].out * ax[1].out * ax[2].out; }
  int64_t max_taps() const { return ax[0].k * ax[1].k * ax[2].k; }
};

// Checks x and the geometry exactly as torch.nn.MaxPool{n}d does (TORCH_CHECK naming the argument) and
// returns the padded geometry. `op` names the operator in messages.
PoolGeometry make_geometry(const char* op, const at::Tensor& x, c10::IntArrayRef kernel_size,
                           c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                           bool ceil_mode);

// Checks that `beta` is a floating tensor on x's device broadcastable to (C, *out), and returns it in
// `dtype`, expanded to (C, *out) (broadcast axes have stride 0).
at::Tensor expand_beta(const char* op, const at::Tensor& beta, const at::Tensor& x, const PoolGeometry& g,
                       at::ScalarType dtype);

// Checks that `tensor` has the pooled shape (N, C, *out) of the geometry, on x's device and dtype.
void check_pooled_shape(const char* op, const char* name, const at::Tensor& tensor, const at::Tensor& x,
                        const PoolGeometry& g);

// Sums a gradient of shape (N, C, *out) down to beta's shape and dtype.
at::Tensor reduce_to_beta(const at::Tensor& grad_full, const at::Tensor& beta);

// Strides of an expanded β as (c, d, h, w) element strides over the padded geometry.
void beta_strides(const at::Tensor& beta_expanded, const PoolGeometry& g, int64_t out[4]);

// "mean" → true, "mass" → false; anything else is an error naming `normalize`.
bool parse_normalize(const char* op, c10::string_view normalize);

}  // namespace poolswap
