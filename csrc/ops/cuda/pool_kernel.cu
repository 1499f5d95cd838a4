// CUDA kernels of the window pools (eMPool, eDSCWPool, IDWPool, adaPool) and their shared backward.
// The semantic spec is the CPU implementation (cpu/pool_kernel.cpp, cpu/lane_math.h); the math is
// poolswap/window.h. Layout: contiguous NC(D)HW; results go back to x's suggested memory format.
//
//   forward:   one thread per output: window stats (pass 1), weights + contraction with h = x − mean
//              (pass 2), y = mean + mix(Σ wE h, Σ wD h).
//   backward:  no atomics, gather formulation.
//              A) one thread per output recomputes the window and stores the scalars a tap needs
//                 (max, mean, scale, Σe, hbarE, Σd, hbarD, term) plus g (yD − yE) for β;
//              B) one thread per input element sums g_o (w_i(o) + VJP_i(o)) over the windows o containing it.
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

template <int kMode, typename scalar_t, typename T>
__global__ void pool_forward_kernel(const scalar_t* __restrict__ x, const T* __restrict__ beta, BetaIdx bidx,
                                    Geom g, int64_t n_out, T eps, scalar_t* __restrict__ y) {
  PS_GRID_STRIDE_LOOP(idx, n_out) {
    const Pos o = out_pos(g, idx);
    const scalar_t* xp = x + o.nc * g.in_plane;
    const Stats<T> st = window_stats<T>(g, xp, o);
    const T mean = st.mean;
    const Sums<T> s =
        window_sums<kMode, false>(g, xp, o, st, eps, [mean](int64_t, T xv) { return xv - mean; });
    const T b = kMode == kADA ? beta_at(beta, bidx, g, o) : T(0);
    y[idx] = static_cast<scalar_t>(st.mean + mix<kMode>(b, s.hbar_e, s.hbar_d));
  }
}

// Backward A: per-output window scalars (struct-of-arrays `win`, see WinRow) and, for adaPool,
// gbeta_full = g (yD − yE).
template <int kMode, typename scalar_t, typename T>
__global__ void pool_backward_window_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ grad,
                                            Geom g, int64_t n_out, T eps, T* __restrict__ win,
                                            T* __restrict__ gbeta_full) {
  PS_GRID_STRIDE_LOOP(idx, n_out) {
    const Pos o = out_pos(g, idx);
    const scalar_t* xp = x + o.nc * g.in_plane;
    const Stats<T> st = window_stats<T>(g, xp, o);
    const T mean = st.mean;
    const Sums<T> s =
        window_sums<kMode, true>(g, xp, o, st, eps, [mean](int64_t, T xv) { return xv - mean; });
    store_window(win, n_out, idx, st, s);
    if (kMode == kADA) gbeta_full[idx] = static_cast<T>(grad[idx]) * (s.hbar_d - s.hbar_e);
  }
}

// Backward B: grad_x_i = Σ_{o ∋ i} g_o (w_i(o) + VJP_i(o)(x − mean_o)), as pool_backward_mode in lane_math.h.
template <int kMode, typename scalar_t, typename T>
__global__ void pool_backward_input_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ grad,
                                           const T* __restrict__ beta, BetaIdx bidx, Geom g, int64_t n_in,
                                           int64_t n_out, T eps, const T* __restrict__ win,
                                           scalar_t* __restrict__ grad_x) {
  PS_GRID_STRIDE_LOOP(idx, n_in) {
    const Pos i = in_pos(g, idx);
    const T xv = static_cast<T>(x[idx]);
    const int64_t out_base = i.nc * g.out_plane;
    T acc = T(0);
    for_each_window(g, i.d, i.h, i.w, [&](int64_t od, int64_t oh, int64_t ow) {
      const int64_t o = out_base + out_offset(g, od, oh, ow);
      const Stats<T> st = load_stats(win, n_out, o);
      const Sums<T> s = load_sums(win, n_out, o);
      const T b = kMode == kADA ? beta_at(beta, bidx, g, Pos{i.nc, od, oh, ow}) : T(0);
      const Tap<T> t = tap_eval<kMode, true>(xv, st, eps);
      const T go = static_cast<T>(grad[o]);
      acc += go * (tap_weight<kMode>(t, s, b) + tap_vjp<kMode>(t, s, b, xv - st.mean));
    });
    grad_x[idx] = static_cast<scalar_t>(acc);
  }
}


}  // namespace

at::Tensor pool_forward(const char* op, int mode, const at::Tensor& x_in, const c10::optional<at::Tensor>& beta,
                        at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, bool ceil_mode, double eps) {
  const PoolGeometry pg = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_x_on_cuda(op, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  at::Tensor y = at::empty(pg.out_sizes(), x.options());
  const Geom g = make_geom(pg);
  const int64_t n_out = y.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_pool_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor beta_acc;
    BetaIdx bidx{0, 0, 0, 0};
    if (mode == kADA) {
      beta_acc = expand_beta(op, *beta, x, pg, c10::CppTypeToScalarType<acc_t>::value);
      bidx = make_beta_idx(beta_acc, pg);
    }
    if (n_out == 0) return;
    const acc_t* beta_data = mode == kADA ? beta_acc.data_ptr<acc_t>() : nullptr;
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    scalar_t* y_data = y.data_ptr<scalar_t>();
    const acc_t e = static_cast<acc_t>(eps);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const unsigned int grid = grid_for(n_out);
    switch (mode) {
      case kEM:
        pool_forward_kernel<kEM><<<grid, kThreads, 0, stream>>>(x_data, beta_data, bidx, g, n_out, e, y_data);
        break;
      case kEDSCW:
        pool_forward_kernel<kEDSCW><<<grid, kThreads, 0, stream>>>(x_data, beta_data, bidx, g, n_out, e, y_data);
        break;
      case kIDW:
        pool_forward_kernel<kIDW><<<grid, kThreads, 0, stream>>>(x_data, beta_data, bidx, g, n_out, e, y_data);
        break;
      default:
        pool_forward_kernel<kADA><<<grid, kThreads, 0, stream>>>(x_data, beta_data, bidx, g, n_out, e, y_data);
        break;
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y.contiguous(x_in.suggest_memory_format());
}

template <int kMode, typename scalar_t, typename T>
void launch_pool_backward(const scalar_t* x, const scalar_t* grad, const T* beta, BetaIdx bidx, const Geom& g,
                          int64_t n_in, int64_t n_out, T eps, T* win, T* gbeta_full, scalar_t* grad_x,
                          cudaStream_t stream) {
  if (n_out > 0) {
    pool_backward_window_kernel<kMode><<<grid_for(n_out), kThreads, 0, stream>>>(x, grad, g, n_out, eps, win,
                                                                                 gbeta_full);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (n_in > 0) {
    pool_backward_input_kernel<kMode><<<grid_for(n_in), kThreads, 0, stream>>>(x, grad, beta, bidx, g, n_in,
                                                                                n_out, eps, win, grad_x);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

std::tuple<at::Tensor, at::Tensor> pool_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                 const c10::optional<at::Tensor>& beta, int64_t mode,
                                                 at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                                 at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                                                 double eps) {
  const char* op = "poolswap::_pool_backward";
  TORCH_CHECK(mode >= kEM && mode <= kADA, op, ": mode must be 0..3, got ", mode);
  TORCH_CHECK(mode != kADA || beta.has_value(), op, ": adaPool's backward needs beta");
  const PoolGeometry pg = make_geometry(op, x_in, kernel_size, stride, padding, dilation, ceil_mode);
  check_pooled_shape(op, "grad", grad_in, x_in, pg);
  check_x_on_cuda(op, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  const Geom g = make_geom(pg);
  const int64_t n_in = x.numel();
  const int64_t n_out = grad.numel();
  at::Tensor grad_x = at::empty(pg.in_sizes(), x.options());
  at::Tensor grad_beta_full;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "poolswap_pool_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    at::Tensor beta_acc;
    BetaIdx bidx{0, 0, 0, 0};
    if (mode == kADA) {
      beta_acc = expand_beta(op, *beta, x, pg, c10::CppTypeToScalarType<acc_t>::value);
      bidx = make_beta_idx(beta_acc, pg);
      grad_beta_full = at::empty(pg.out_sizes(), acc_options);
    }
    at::Tensor win = at::empty({static_cast<int64_t>(kNumRows), n_out}, acc_options);
    const acc_t* beta_data = mode == kADA ? beta_acc.data_ptr<acc_t>() : nullptr;
    acc_t* gbeta_data = mode == kADA ? grad_beta_full.data_ptr<acc_t>() : nullptr;
    const scalar_t* x_data = x.data_ptr<scalar_t>();
    const scalar_t* g_data = grad.data_ptr<scalar_t>();
    scalar_t* gx_data = grad_x.data_ptr<scalar_t>();
    acc_t* win_data = win.data_ptr<acc_t>();
    const acc_t e = static_cast<acc_t>(eps);
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    switch (mode) {
      case kEM:
        launch_pool_backward<kEM>(x_data, g_data, beta_data, bidx, g, n_in, n_out, e, win_data, gbeta_data,
                                  gx_data, stream);
        break;
      case kEDSCW:
        launch_pool_backward<kEDSCW>(x_data, g_data, beta_data, bidx, g, n_in, n_out, e, win_data, gbeta_data,
                                     gx_data, stream);
        break;
      case kIDW:
        launch_pool_backward<kIDW>(x_data, g_data, beta_data, bidx, g, n_in, n_out, e, win_data, gbeta_data,
                                   gx_data, stream);
        break;
      default:
        launch_pool_backward<kADA>(x_data, g_data, beta_data, bidx, g, n_in, n_out, e, win_data, gbeta_data,
                                   gx_data, stream);
        break;
    }
  });
  at::Tensor grad_beta = mode == kADA ? reduce_to_beta(grad_beta_full, *beta) : at::empty({0}, x.options());
  return {grad_x.contiguous(x_in.suggest_memory_format()), grad_beta};
}

}  // namespace cuda
}  // namespace poolswap
