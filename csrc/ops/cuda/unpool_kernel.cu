// CUDA kernels of adaUnPool (DESIGN §2.5); the semantic spec is cpu/unpool_kernel.cpp:
//   u_i = (1 / c_i) Σ_{o ∋ i} z_o · n_o · W_i(o)   ("mean": c_i windows cover i; uncovered i copy z of the
//                                                   nearest window)
//   u_i =           Σ_{o ∋ i} z_o · W_i(o)         ("mass")
// with W(o) = β_o wD(o) + (1 − β_o) wE(o), adaPool's weights recomputed from the paired pool's input x.
// Backward: with q_i = g_i / c_i ("mean", covered), g_i ("mass"), 0 (uncovered) and s_o = n_o or 1,
//   ∂L/∂z_o = s_o Σ_i q_i W_i (+ g_i of the uncovered i whose nearest window is o),
//   ∂L/∂β_o = z_o s_o Σ_i q_i (wD_i − wE_i),   ∂L/∂x = Σ_o z_o s_o VJP(q).
//
// Gather formulation throughout, no atomics: a per-output kernel computes the window scalars (struct-of-
// arrays, WinRow) and a per-input kernel sums over the windows containing each input element. The uncovered
// positions of "mean" mode are gathered per output: the inputs whose nearest window is o form a box
// (nearest_range along each axis).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "launch.h"
#include "window_cuda.cuh"

namespace poolswap {
namespace cuda {

namespace {

// Number of windows containing input element i ("mean" mode divisor; 0: uncovered).
__device__ __forceinline__ int64_t coverage_of(const Geom& g, const Pos& i) {
  return coverage(g.ax[0], i.d) * coverage(g.ax[1], i.h) * coverage(g.ax[2], i.w);
}

// Forward A: per-output window scalars (the weights' normalisers; the contraction is unused) and
// zs = z_o s_o in row kRowZs.
template <typename scalar_t, typename T>
__global__ void unpool_window_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ z, Geom g,
                                     int64_t n_out, bool mean_mode, T eps, T* __restrict__ win) {
  PS_GRID_STRIDE_LOOP(idx, n_out) {
    const Pos o = out_pos(g, idx);
    const scalar_t* xp = x + o.nc * g.in_plane;
    const Stats<T> st = window_stats<T>(g, xp, o);
    const Sums<T> s = window_sums<kADA, false>(g, xp, o, st, eps, [](int64_t, T) { return T(0); });
    store_window(win, n_out, idx, st, s);
    const T scale = mean_mode ? st.count : T(1);
    win[kRowZs * n_out + idx] = static_cast<T>(z[idx]) * scale;
  }
}

// Forward B: u_i = Σ_{o ∋ i} zs_o W_i(o), divided by the coverage ("mean") or z at the nearest window when
// uncovered.
template <typename scalar_t, typename T>
__global__ void unpool_input_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ z,
                                    const T* __restrict__ beta, BetaIdx bidx, Geom g, int64_t n_in, int64_t n_out,
                                    bool mean_mode, T eps, const T* __restrict__ win, scalar_t* __restrict__ u) {
  PS_GRID_STRIDE_LOOP(idx, n_in) {
    const Pos i = in_pos(g, idx);
    const T xv = static_cast<T>(x[idx]);
    const int64_t out_base = i.nc * g.out_plane;
    T acc = T(0);
    for_each_window(g, i.d, i.h, i.w, [&](int64_t od, int64_t oh, int64_t ow) {
      const int64_t o = out_base + out_offset(g, od, oh, ow);
      const Stats<T> st = load_stats(win, n_out, o);
      const Sums<T> s = load_sums(win, n_out, o);
      const T b = beta_at(beta, bidx, g, Pos{i.nc, od, oh, ow});
      const Tap<T> t = tap_eval<kADA, false>(xv, st, eps);
      acc += win[kRowZs * n_out + o] * tap_weight<kADA>(t, s, b);
    });
    if (mean_mode) {
      const int64_t c = coverage_of(g, i);
      if (c > 0) {
        acc = acc / static_cast<T>(c);
      } else {
        const int64_t nearest = out_base + out_offset(g, nearest_window(g.ax[0], i.d), nearest_window(g.ax[1], i.h),
                                                      nearest_window(g.ax[2], i.w));
        acc = static_cast<T>(z[nearest]);
      }
    }
    u[idx] = static_cast<scalar_t>(acc);
  }
}

// Backward 1: q_i = g_i / c_i ("mean", covered), g_i ("mass"), 0 (uncovered; see backward A).
template <typename scalar_t, typename T>
__global__ void unpool_q_kernel(const scalar_t* __restrict__ grad, Geom g, int64_t n_in, bool mean_mode,
                                T* __restrict__ q) {
  PS_GRID_STRIDE_LOOP(idx, n_in) {
    const T gi = static_cast<T>(grad[idx]);
    if (!mean_mode) {
      q[idx] = gi;
    } else {
      const int64_t c = coverage_of(g, in_pos(g, idx));
      q[idx] = c > 0 ? gi / static_cast<T>(c) : T(0);
    }
  }
}

// Backward A: per output, the contraction of the weights with h = q: grad_z = (uncovered g_i whose nearest
// window is o) + s Σ q W, gbeta_full = z s (Σ q wD − Σ q wE), and the window scalars (zs in row kRowZs).
template <typename scalar_t, typename T>
__global__ void unpool_backward_window_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ z,
                                              const scalar_t* __restrict__ grad, const T* __restrict__ q,
                                              const T* __restrict__ beta, BetaIdx bidx, Geom g, int64_t n_out,
                                              bool mean_mode, T eps, T* __restrict__ win,
                                              scalar_t* __restrict__ grad_z, T* __restrict__ gbeta_full) {
  PS_GRID_STRIDE_LOOP(idx, n_out) {
    const Pos o = out_pos(g, idx);
    const int64_t in_base = o.nc * g.in_plane;
    const scalar_t* xp = x + in_base;
    const T* qp = q + in_base;
    const Stats<T> st = window_stats<T>(g, xp, o);
    const Sums<T> s = window_sums<kADA, true>(g, xp, o, st, eps, [qp](int64_t off, T) { return qp[off]; });
    store_window(win, n_out, idx, st, s);
    const T so = mean_mode ? st.count : T(1);
    const T zs = static_cast<T>(z[idx]) * so;
    win[kRowZs * n_out + idx] = zs;
    // uncovered inputs ("mean" mode) send their whole gradient to their nearest window
    T gz = T(0);
    if (mean_mode) {
      const Axis& A = g.ax[0];
      const Axis& B = g.ax[1];
      const Axis& W = g.ax[2];
      int64_t d0, d1, h0, h1, w0, w1;
      nearest_range(A, o.d, &d0, &d1);
      nearest_range(B, o.h, &h0, &h1);
      nearest_range(W, o.w, &w0, &w1);
      for (int64_t id = d0; id < d1; ++id) {
        if (nearest_window(A, id) != o.d) continue;
        const int64_t cd = coverage(A, id);
        for (int64_t ih = h0; ih < h1; ++ih) {
          if (nearest_window(B, ih) != o.h) continue;
          const int64_t cdh = cd * coverage(B, ih);
          for (int64_t iw = w0; iw < w1; ++iw) {
            if (nearest_window(W, iw) != o.w) continue;
            if (cdh * coverage(W, iw) == 0) gz += static_cast<T>(grad[in_base + (id * B.in + ih) * W.in + iw]);
          }
        }
      }
    }
    const T b = beta_at(beta, bidx, g, o);
    grad_z[idx] = static_cast<scalar_t>(gz + so * mix<kADA>(b, s.hbar_e, s.hbar_d));
    gbeta_full[idx] = zs * (s.hbar_d - s.hbar_e);
  }
}

// Backward B: grad_x_i = Σ_{o ∋ i} zs_o VJP_i(o)(q).
template <typename scalar_t, typename T>
__global__ void unpool_backward_input_kernel(const scalar_t* __restrict__ x, const T* __restrict__ q,
                                             const T* __restrict__ beta, BetaIdx bidx, Geom g, int64_t n_in,
                                             int64_t n_out, T eps, const T* __restrict__ win,
                                             scalar_t* __restrict__ grad_x) {
  PS_GRID_STRIDE_LOOP(idx, n_in) {
    const Pos i = in_pos(g, idx);
    const T xv = static_cast<T>(x[idx]);
    const T qi = q[idx];
    const int64_t out_base = i.nc * g.out_plane;
    T acc = T(0);
    for_each_window(g, i.d, i.h, i.w, [&](int64_t od, int64_t oh, int64_t ow) {
      const int64_t o = out_base + out_offset(g, od, oh, ow);
      const Stats<T> st = load_stats(win, n_out, o);
      const Sums<T> s = load_sums(win, n_out, o);
      const T b = beta_at(beta, bidx, g, Pos{i.nc, od, oh, ow});
      const Tap<T> t = tap_eval<kADA, true>(xv, st, eps);
      acc += win[kRowZs * n_out + o] * tap_vjp<kADA>(t, s, b, qi);
    });
    grad_x[idx] = static_cast<scalar_t>(acc);
  }
}

}  // namespace

at::Tensor adaunpool(const at::Tensor& z_in, const at::Tensor& x_in, const at::Tensor& beta,
                     at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                     at::IntArrayRef dilation, bool ceil_mode, c10::string_view normalize, double eps) {
  const char* op = "poolswap::adaunpool";
  const PoolGeometry pg = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(op, "z", z_in, x_in, pg);
  const bool mean_mode = parse_normalize(op, normalize);
  check_x_on_cuda(op, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor z = z_in.contiguous();
  const Geom g = make_geom(pg);
  const int64_t n_in = x.numel();
  const int64_t n_out = z.numel();
  at::Tensor u = at::empty(pg.in_sizes(), x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_adaunpool_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const at::Tensor beta_acc = expand_beta(op, beta, x, pg, c10::CppTypeToScalarType<acc_t>::value);
    const BetaIdx bidx = make_beta_idx(beta_acc, pg);
    if (n_in == 0) return;  // then u is empty; n_in > 0 implies n_out > 0
    at::Tensor win = at::empty({static_cast<int64_t>(kNumRows), n_out}, acc_options);
    const acc_t* beta_data = beta_acc.data_ptr<acc_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* z_data = z.data_ptr<scalar_t>();
    acc_t* win_data = win.data_ptr<acc_t>();
    const acc_t e = static_cast<acc_t>(eps);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    unpool_window_kernel<<<grid_for(n_out), kThreads, 0, stream>>>(x_data, z_data, g, n_out, mean_mode, e,
                                                                   win_data);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    unpool_input_kernel<<<grid_for(n_in), kThreads, 0, stream>>>(x_data, z_data, beta_data, bidx, g, n_in, n_out,
                                                                 mean_mode, e, win_data, u.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return u.contiguous(x_in.suggest_memory_format());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> adaunpool_backward(
    const at::Tensor& grad_in, const at::Tensor& z_in, const at::Tensor& x_in, const at::Tensor& beta,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    bool ceil_mode, c10::string_view normalize, double eps) {
  const char* op = "poolswap::_adaunpool_backward";
  const PoolGeometry pg = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(op, "z", z_in, x_in, pg);
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), op, ": grad must have x's shape ", x_in.sizes(), ", got ",
              grad_in.sizes());
  TORCH_CHECK(grad_in.device() == x_in.device(), op, ": grad is on ", grad_in.device(), " but x is on ",
              x_in.device());
  TORCH_CHECK(grad_in.scalar_type() == x_in.scalar_type(), op, ": grad has dtype ", grad_in.scalar_type(),
              " but x has dtype ", x_in.scalar_type());
  const bool mean_mode = parse_normalize(op, normalize);
  check_x_on_cuda(op, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor z = z_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  const Geom g = make_geom(pg);
  const int64_t n_in = x.numel();
  const int64_t n_out = z.numel();
  at::Tensor grad_z = at::empty(pg.out_sizes(), z.options());
  at::Tensor grad_x = at::empty(pg.in_sizes(), x.options());
  at::Tensor grad_beta_full;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_adaunpool_backward_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const at::Tensor beta_acc = expand_beta(op, beta, x, pg, c10::CppTypeToScalarType<acc_t>::value);
    const BetaIdx bidx = make_beta_idx(beta_acc, pg);
    grad_beta_full = at::empty(pg.out_sizes(), acc_options);
    if (n_out == 0) return;  // then every output is empty (N = 0 or C = 0)
    at::Tensor q = at::empty({n_in}, acc_options);
    at::Tensor win = at::empty({static_cast<int64_t>(kNumRows), n_out}, acc_options);
    const acc_t* beta_data = beta_acc.data_ptr<acc_t>();
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* z_data = z.data_ptr<scalar_t>();
    const scalar_t* g_data = grad.data_ptr<scalar_t>();
    acc_t* q_data = q.data_ptr<acc_t>();
    acc_t* win_data = win.data_ptr<acc_t>();
    const acc_t e = static_cast<acc_t>(eps);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    if (n_in > 0) {
      unpool_q_kernel<<<grid_for(n_in), kThreads, 0, stream>>>(g_data, g, n_in, mean_mode, q_data);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    unpool_backward_window_kernel<<<grid_for(n_out), kThreads, 0, stream>>>(
        x_data, z_data, g_data, q_data, beta_data, bidx, g, n_out, mean_mode, e, win_data,
        grad_z.data_ptr<scalar_t>(), grad_beta_full.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (n_in > 0) {
      unpool_backward_input_kernel<<<grid_for(n_in), kThreads, 0, stream>>>(x_data, q_data, beta_data, bidx, g,
                                                                             n_in, n_out, e, win_data,
                                                                             grad_x.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {grad_z.contiguous(z_in.suggest_memory_format()), grad_x.contiguous(x_in.suggest_memory_format()),
          reduce_to_beta(grad_beta_full, beta)};
}

}  // namespace cuda
}  // namespace poolswap
