// CPU kernels of the window pools (eMPool, eDSCWPool, IDWPool, adaPool) and their shared backward.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../named_pools.h"
#include "cpu_common.h"

namespace poolswap {
namespace cpu {

namespace {

at::Tensor pool_forward(const char* op, int mode, const at::Tensor& x_in, const c10::optional<at::Tensor>& beta,
                        at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, bool ceil_mode, double eps) {
  const PoolGeometry g = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  WindowProblem P = make_problem(g, x_in);
  const at::Tensor x = in_layout(P, x_in);
  at::Tensor y = empty_in_layout(P, g.out_sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_pool_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor beta_acc;
    if (mode == kADA) {
      beta_acc = expand_beta(op, *beta, x, g, c10::CppTypeToScalarType<acc_t>::value);
      beta_strides(beta_acc, g, P.beta_stride);
    }
    const acc_t* beta_data = mode == kADA ? beta_acc.data_ptr<acc_t>() : nullptr;
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    scalar_t* y_data = y.data_ptr<scalar_t>();
    const LaneKernels<acc_t>& K = lane_kernels<acc_t>();
    at::parallel_for(0, P.items(), 1, [&](int64_t begin, int64_t end) {
      LaneBuffers<acc_t> buf(g);
      Block B(g);
      for (int64_t item = begin; item < end; ++item)
        for_each_block(P, item, B, [&](const Block& b) {
          buf.gather(b, x_data);
          if (beta_data) gather_beta(b, beta_data, buf.lane_a);
          K.pool_forward(buf.args(mode, b.taps, buf.lane_a, eps), buf.lane_b);
          for (int l = 0; l < b.lanes; ++l) y_data[b.out + l] = static_cast<scalar_t>(buf.lane_b[l]);
        });
    });
  });
  return like_input(y, x_in);
}

// Returns (grad_x, grad_beta); grad_beta is an empty tensor except for adaPool.
std::tuple<at::Tensor, at::Tensor> pool_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                 const c10::optional<at::Tensor>& beta, int64_t mode,
                                                 at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                                                 double eps) {
  const char* op = "poolswap::_pool_backward";
  TORCH_CHECK(mode >= kEM && mode <= kADA, op, ": mode must be 0..3, got ", mode);
  TORCH_CHECK(mode != kADA || beta.has_value(), op, ": adaPool's backward needs beta");
  const PoolGeometry g = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(op, "grad", grad_in, x_in, g);
  WindowProblem P = make_problem(g, x_in);
  const at::Tensor x = in_layout(P, x_in);
  const at::Tensor grad = in_layout(P, grad_in);
  at::Tensor grad_x, grad_beta_parts;
  // ∂L/∂β_o = Σ_{n,c} g (yD − yE): the kernel already sums over the batch, into one (C, *out) part per
  // thread (or per image when there are no more images than threads), instead of writing an (N, C, *out)
  // tensor that a second pass reduces. The parts share the output layout, so an output offset minus its
  // image's start is the offset inside a part.
  const bool part_per_thread = g.N > at::get_num_threads() && !at::in_parallel_region();
  const int64_t parts = part_per_thread ? at::get_num_threads() : g.N;
  const int64_t image = g.C * g.out_plane();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_pool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    at::Tensor beta_acc;
    if (mode == kADA) {
      beta_acc = expand_beta(op, *beta, x, g, c10::CppTypeToScalarType<acc_t>::value);
      beta_strides(beta_acc, g, P.beta_stride);
      std::vector<int64_t> part_sizes = g.out_sizes();
      part_sizes[0] = parts;
      grad_beta_parts = zeros_in_layout(P, part_sizes, acc_options);
    }
    // accumulate in acc_t: overlapping windows add into the same element (zeroed per work item below)
    grad_x = empty_in_layout(P, g.in_sizes(), acc_options);
    const acc_t* beta_data = mode == kADA ? beta_acc.data_ptr<acc_t>() : nullptr;
    acc_t* gbeta_data = mode == kADA ? grad_beta_parts.data_ptr<acc_t>() : nullptr;
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* g_data = grad.data_ptr<scalar_t>();
    acc_t* gx_data = grad_x.data_ptr<acc_t>();
    const LaneKernels<acc_t>& K = lane_kernels<acc_t>();
    at::parallel_for(0, P.items(), 1, [&](int64_t begin, int64_t end) {
      LaneBuffers<acc_t> buf(g);
      Block B(g);
      for (int64_t item = begin; item < end; ++item) {
        zero_item_inputs(P, item, gx_data);
        int64_t n, c0, nc;
        P.item_channels(item, &n, &c0, &nc);
        const int64_t part = part_per_thread ? at::get_thread_num() : n;
        TORCH_INTERNAL_ASSERT(part < parts);
        const int64_t part_shift = (part - n) * image;  // output offset -> offset in the parts
        for_each_block(P, item, B, [&](const Block& b) {
          buf.gather(b, x_data);
          if (beta_data) gather_beta(b, beta_data, buf.lane_a);
          gather_lanes(b, g_data, buf.lane_b);
          K.pool_backward(buf.args(static_cast<int>(mode), b.taps, buf.lane_a, eps), buf.lane_b,
                          buf.out.data(), buf.lane_c);
          scatter_add(b, buf.out.data(), gx_data);
          if (gbeta_data)
            for (int l = 0; l < b.lanes; ++l) gbeta_data[part_shift + b.out + l] += buf.lane_c[l];
        });
      }
    });
  });
  at::Tensor grad_beta = mode == kADA ? reduce_to_beta(grad_beta_parts, *beta) : at::empty({0}, x.options());
  return {like_input(grad_x.to(x.scalar_type()), x_in), grad_beta};
}

}  // namespace

TORCH_LIBRARY_IMPL(poolswap, CPU, m) {
  NamedPools<&pool_forward>::impl(m);
  m.impl("_pool_backward", &pool_backward);
}

}  // namespace cpu
}  // namespace poolswap
