// CPU kernels of adaUnPool (DESIGN §2.5):
//   u_i = (1 / c_i) Σ_{o ∋ i} z_o · n_o · W_i(o)   ("mean": c_i windows cover i; uncovered i copy z of the
//                                                   nearest window)
//   u_i =           Σ_{o ∋ i} z_o · W_i(o)         ("mass")
// with W(o) = β_o wD(o) + (1 − β_o) wE(o), adaPool's weights recomputed from the paired pool's input x.
// Backward: with q_i = g_i / c_i ("mean") or g_i ("mass") and s_o = n_o or 1,
//   ∂L/∂z_o = s_o Σ_i q_i W_i,   ∂L/∂β_o = z_o s_o Σ_i q_i (wD_i − wE_i),   ∂L/∂x = Σ_o z_o s_o VJP(q).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "cpu_common.h"

namespace poolswap {
namespace cpu {

namespace {

struct Coverage {
  std::vector<int64_t> axis[3];
  explicit Coverage(const PoolGeometry& g) {
    for (int a = 0; a < 3; ++a) {
      axis[a].resize(g.ax[a].in);
      for (int64_t i = 0; i < g.ax[a].in; ++i) axis[a][i] = coverage(g.ax[a], i);
    }
  }
};

const char* kOp = "poolswap::adaunpool";

at::Tensor adaunpool(const at::Tensor& z_in, const at::Tensor& x_in, const at::Tensor& beta,
                     at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                     at::IntArrayRef dilation, bool ceil_mode, c10::string_view normalize, double eps) {
  const PoolGeometry g = make_geometry(kOp, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(kOp, "z", z_in, x_in, g);
  const bool mean = parse_normalize(kOp, normalize);
  WindowProblem P = make_problem(g, x_in);
  const at::Tensor x = in_layout(P, x_in);
  const at::Tensor z = in_layout(P, z_in);
  const Coverage cov(g);
  at::Tensor u;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_adaunpool", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor beta_acc = expand_beta(kOp, beta, x, g, c10::CppTypeToScalarType<acc_t>::value);
    beta_strides(beta_acc, g, P.beta_stride);
    u = zeros_in_layout(P, g.in_sizes(), x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const acc_t* beta_data = beta_acc.data_ptr<acc_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* z_data = z.data_ptr<scalar_t>();
    acc_t* u_data = u.data_ptr<acc_t>();
    const LaneKernels<acc_t>& K = lane_kernels<acc_t>();
    at::parallel_for(0, P.items(), 1, [&](int64_t begin, int64_t end) {
      LaneBuffers<acc_t> buf(g);
      Block B(g);
      for (int64_t item = begin; item < end; ++item) {
        for_each_block(P, item, B, [&](const Block& b) {
          buf.gather(b, x_data);
          gather_beta(b, beta_data, buf.lane_a);
          gather_lanes(b, z_data, buf.lane_b);
          K.unpool_weights(buf.args(kADA, b.taps, buf.lane_a, eps), buf.out.data());
          for (int l = 0; l < kLanes; ++l) buf.lane_b[l] *= mean ? static_cast<acc_t>(b.count(l)) : acc_t(1);
          for (int i = 0; i < b.taps * kLanes; ++i) buf.out[i] *= buf.lane_b[i % kLanes];
          scatter_add(b, buf.out.data(), u_data);
        });
        if (mean)
          for_each_input(P, item, cov.axis, [&](int64_t in, int64_t nearest, int64_t c) {
            u_data[in] = c > 0 ? u_data[in] / static_cast<acc_t>(c) : static_cast<acc_t>(z_data[nearest]);
          });
      }
    });
  });
  return like_input(u.to(x_in.scalar_type()), x_in);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> adaunpool_backward(
    const at::Tensor& grad_in, const at::Tensor& z_in, const at::Tensor& x_in, const at::Tensor& beta,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    bool ceil_mode, c10::string_view normalize, double eps) {
  const char* op = "poolswap::_adaunpool_backward";
  const PoolGeometry g = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(op, "z", z_in, x_in, g);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), op, ": grad must have x's shape ", x_in.sizes(), ", got ",
              grad_in.sizes());
  const bool mean = parse_normalize(op, normalize);
  WindowProblem P = make_problem(g, x_in);
  const at::Tensor x = in_layout(P, x_in);
  const at::Tensor z = in_layout(P, z_in);
  const at::Tensor grad = in_layout(P, grad_in);
  const Coverage cov(g);
  at::Tensor grad_z, grad_x, grad_beta_full;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_adaunpool_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const at::Tensor beta_acc = expand_beta(op, beta, x, g, c10::CppTypeToScalarType<acc_t>::value);
    beta_strides(beta_acc, g, P.beta_stride);
    at::Tensor q = empty_in_layout(P, g.in_sizes(), acc_options);
    grad_z = zeros_in_layout(P, g.out_sizes(), acc_options);
    grad_x = zeros_in_layout(P, g.in_sizes(), acc_options);
    grad_beta_full = empty_in_layout(P, g.out_sizes(), acc_options);
    const acc_t* beta_data = beta_acc.data_ptr<acc_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* z_data = z.data_ptr<scalar_t>();
    const scalar_t* g_data = grad.data_ptr<scalar_t>();
    acc_t* q_data = q.data_ptr<acc_t>();
    acc_t* gz_data = grad_z.data_ptr<acc_t>();
    acc_t* gx_data = grad_x.data_ptr<acc_t>();
    acc_t* gbeta_data = grad_beta_full.data_ptr<acc_t>();
    const LaneKernels<acc_t>& K = lane_kernels<acc_t>();
    at::parallel_for(0, P.items(), 1, [&](int64_t begin, int64_t end) {
      LaneBuffers<acc_t> buf(g);
      Block B(g);
      for (int64_t item = begin; item < end; ++item) {
        // q = ∂L/∂(Σ_o contributions) per input element; uncovered elements send their gradient to z
        for_each_input(P, item, cov.axis, [&](int64_t in, int64_t nearest, int64_t c) {
          const acc_t gi = static_cast<acc_t>(g_data[in]);
          if (!mean) {
            q_data[in] = gi;
          } else if (c > 0) {
            q_data[in] = gi / static_cast<acc_t>(c);
          } else {
            q_data[in] = acc_t(0);
            gz_data[nearest] += gi;
          }
        });
        for_each_block(P, item, B, [&](const Block& b) {
          buf.gather(b, x_data);
          gather_taps(b, q_data, buf.h.data());
          gather_beta(b, beta_data, buf.lane_a);
          gather_lanes(b, z_data, buf.lane_b);
          acc_t* s = buf.lane_c;   // s_o
          acc_t* zs = buf.lane_b;  // z_o s_o
          for (int l = 0; l < kLanes; ++l) {
            s[l] = mean ? static_cast<acc_t>(b.count(l)) : acc_t(1);
            zs[l] *= s[l];
          }
          K.unpool_backward(buf.args(kADA, b.taps, buf.lane_a, eps), buf.h.data(), zs, buf.out.data(), buf.lane_d,
                            buf.lane_e);
          scatter_add(b, buf.out.data(), gx_data);
          for (int l = 0; l < b.lanes; ++l) {
            gz_data[b.out + l] += s[l] * buf.lane_d[l];
            gbeta_data[b.out + l] = zs[l] * buf.lane_e[l];
          }
        });
      }
    });
  });
  return {like_input(grad_z.to(z_in.scalar_type()), z_in), like_input(grad_x.to(x_in.scalar_type()), x_in),
          reduce_to_beta(grad_beta_full, beta)};
}

}  // namespace

TORCH_LIBRARY_IMPL(poolswap, CPU, m) {
  m.impl("adaunpool", &adaunpool);
  m.impl("_adaunpool_backward", &adaunpool_backward);
}

}  // namespace cpu
}  // namespace poolswap
