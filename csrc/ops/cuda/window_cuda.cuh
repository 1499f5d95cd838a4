// Device-side window walking shared by the CUDA kernels (pool_kernel.cu, unpool_kernel.cu).
//
// All per-tap and per-window math comes from poolswap/window.h (the same functions the CPU kernels run);
// this header only adds what the GPU formulation needs on top:
//   * index decomposition of contiguous NC(D)HW tensors (64-bit throughout),
//   * for_each_tap:    the valid taps of one output window, row-major (the CPU's tap order),
//   * for_each_window: the windows containing one input element, in increasing output order (the order in
//                      which the CPU scatter-adds them), so backward passes gather instead of scatter,
//   * window_stats / window_sums: pass 1 and pass 2 of cpu/lane_math.h's WindowBlock for a single window,
//   * tap_eval / tap_weight / tap_vjp: one tap's weight and VJP from the stored window scalars.
// Only valid taps are visited, so the CPU's masking by `valid` is implicit.
#pragma once

#include <cstdint>

#include <poolswap/window.h>

#include "../geometry.h"

namespace poolswap {
namespace cuda {

constexpr int kThreads = 256;

// Number of blocks of a grid-stride launch over n items (n >= 1).
inline unsigned int grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < (int64_t(1) << 20) ? blocks : (int64_t(1) << 20));
}

#define PS_GRID_STRIDE_LOOP(i, n)                                                                  \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);           \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// The dispatcher picks these kernels when any tensor argument is on CUDA; x must be too.
inline void check_x_on_cuda(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), op, ": x is on ", x.device(),
              " but another tensor argument is on a CUDA device; all tensors must be on the same device");
}

// The geometry as the kernels see it (a plain struct passed by value).
struct Geom {
  Axis ax[3];
  int64_t C;
  int64_t in_plane, out_plane;
};

inline Geom make_geom(const PoolGeometry& g) {
  Geom r;
  for (int a = 0; a < 3; ++a) r.ax[a] = g.ax[a];
  r.C = g.C;
  r.in_plane = g.in_plane();
  r.out_plane = g.out_plane();
  return r;
}

// Element strides (c, d, h, w) of β expanded to (C, *out) (see beta_strides in geometry.h).
struct BetaIdx {
  int64_t c, d, h, w;
};

inline BetaIdx make_beta_idx(const at::Tensor& beta_expanded, const PoolGeometry& g) {
  int64_t s[4];
  beta_strides(beta_expanded, g, s);
  return BetaIdx{s[0], s[1], s[2], s[3]};
}

// A position (n*C + c, d, h, w) of an output or input element.
struct Pos {
  int64_t nc, d, h, w;
};

__device__ __forceinline__ Pos out_pos(const Geom& g, int64_t idx) {
  Pos p;
  p.w = idx % g.ax[2].out;
  int64_t r = idx / g.ax[2].out;
  p.h = r % g.ax[1].out;
  r /= g.ax[1].out;
  p.d = r % g.ax[0].out;
  p.nc = r / g.ax[0].out;
  return p;
}

__device__ __forceinline__ Pos in_pos(const Geom& g, int64_t idx) {
  Pos p;
  p.w = idx % g.ax[2].in;
  int64_t r = idx / g.ax[2].in;
  p.h = r % g.ax[1].in;
  r /= g.ax[1].in;
  p.d = r % g.ax[0].in;
  p.nc = r / g.ax[0].in;
  return p;
}

// Offset of output (od, oh, ow) inside its (n, c) plane.
__device__ __forceinline__ int64_t out_offset(const Geom& g, int64_t od, int64_t oh, int64_t ow) {
  return (od * g.ax[1].out + oh) * g.ax[2].out + ow;
}

template <typename T>
__device__ __forceinline__ T beta_at(const T* beta, const BetaIdx& b, const Geom& g, const Pos& o) {
  return beta[(o.nc % g.C) * b.c + o.d * b.d + o.h * b.h + o.w * b.w];
}

// f(in_offset) for every valid tap of output window (od, oh, ow), row-major over (jd, jh, jw);
// in_offset is relative to the window's (n, c) input plane.
template <typename F>
__device__ __forceinline__ void for_each_tap(const Geom& g, int64_t od, int64_t oh, int64_t ow, F&& f) {
  const Axis& A = g.ax[0];
  const Axis& B = g.ax[1];
  const Axis& W = g.ax[2];
  int64_t d0, d1, h0, h1, w0, w1;
  tap_range(A, od, &d0, &d1);
  tap_range(B, oh, &h0, &h1);
  tap_range(W, ow, &w0, &w1);
  const int64_t sd = od * A.s - A.p, sh = oh * B.s - B.p, sw = ow * W.s - W.p;
  for (int64_t jd = d0; jd < d1; ++jd) {
    const int64_t id = sd + jd * A.d;
    for (int64_t jh = h0; jh < h1; ++jh) {
      const int64_t row = (id * B.in + sh + jh * B.d) * W.in;
      for (int64_t jw = w0; jw < w1; ++jw) f(row + sw + jw * W.d);
    }
  }
}

// Window o along an axis whose tap j is input position i, if any (coverage() in window.h counts these).
__device__ __forceinline__ bool window_of_tap(const Axis& ax, int64_t i, int64_t j, int64_t* o) {
  const int64_t num = i + ax.p - j * ax.d;  // i = o*s - p + j*d
  if (num < 0 || num % ax.s != 0) return false;
  *o = num / ax.s;
  return *o < ax.out;
}

// f(od, oh, ow) for every window containing input element (id, ih, iw), in increasing (row-major) output
// order: along each axis o = (i + p - j d) / s decreases with j, so j runs downwards.
template <typename F>
__device__ __forceinline__ void for_each_window(const Geom& g, int64_t id, int64_t ih, int64_t iw, F&& f) {
  for (int64_t jd = g.ax[0].k - 1; jd >= 0; --jd) {
    int64_t od;
    if (!window_of_tap(g.ax[0], id, jd, &od)) continue;
    for (int64_t jh = g.ax[1].k - 1; jh >= 0; --jh) {
      int64_t oh;
      if (!window_of_tap(g.ax[1], ih, jh, &oh)) continue;
      for (int64_t jw = g.ax[2].k - 1; jw >= 0; --jw) {
        int64_t ow;
        if (!window_of_tap(g.ax[2], iw, jw, &ow)) continue;
        f(od, oh, ow);
      }
    }
  }
}

// Input positions [*lo, *hi) along an axis whose nearest_window() is o (adaUnPool "mean" fallback):
// (i + p) / s == o, and every i beyond the last window for the last one.
__device__ __forceinline__ void nearest_range(const Axis& ax, int64_t o, int64_t* lo, int64_t* hi) {
  const int64_t a = o * ax.s - ax.p;
  const int64_t b = o == ax.out - 1 ? ax.in : a + ax.s;
  *lo = a > 0 ? a : 0;
  *hi = b < ax.in ? b : ax.in;
}

// ---------------------------------------------------------------------------------------------------------
// Window math: cpu/lane_math.h's WindowBlock, one window per thread.

template <int kMode>
struct ModeTraits {
  static constexpr bool kUsesE = kMode == kEM || kMode == kADA;
  static constexpr bool kUsesD = kMode == kEDSCW || kMode == kADA;
  static constexpr bool kUsesI = kMode == kIDW;
};

// Pass 1: count, max, mean and overflow scale of a window.
template <typename T>
struct Stats {
  T count, maxv, mean, scale;
};

template <typename T, typename scalar_t>
__device__ __forceinline__ Stats<T> window_stats(const Geom& g, const scalar_t* xp, const Pos& o) {
  T count = T(0), sum = T(0), absmax = T(0), maxv = T(0);
  for_each_tap(g, o.d, o.h, o.w, [&](int64_t off) {
    const T v = static_cast<T>(xp[off]);
    const T av = v < T(0) ? -v : v;
    maxv = (count == T(0) || v > maxv) ? v : maxv;
    absmax = av > absmax ? av : absmax;
    count += T(1);
    sum += v;
  });
  Stats<T> st;
  st.count = count;
  st.maxv = count > T(0) ? maxv : T(0);
  st.mean = count > T(0) ? sum / count : T(0);
  st.scale = absmax > T(1) ? T(1) / absmax : T(1);
  return st;
}

// One tap's weight terms: e = exp(x − m) (eM); eD = exp(D) (eDSCW) or v (IDW); dDx = ∂D/∂x (eDSCW);
// q = the mean-term coefficient exp(D) ∂D/∂a (eDSCW) or sgn(d) v² (IDW).
template <typename T>
struct Tap {
  T e, eD, dDx, q;
};

template <int kMode, bool kGrad, typename T>
__device__ __forceinline__ Tap<T> tap_eval(T xv, const Stats<T>& st, T eps) {
  using M = ModeTraits<kMode>;
  Tap<T> t{T(0), T(0), T(0), T(0)};
  if (M::kUsesE) t.e = em_weight(xv, st.maxv);
  if (M::kUsesD) {
    const DscwTap<T> tap = dscw_tap(xv, st.mean, st.scale, eps);
    t.eD = bounded_exp(tap.D);
    if (kGrad) {
      t.dDx = tap.dDx;
      t.q = t.eD * tap.dDa;
    }
  }
  if (M::kUsesI) {
    const IdwTap<T> tap = idw_tap(xv - st.mean, eps);
    t.eD = tap.v;
    if (kGrad) t.q = tap.sv2;
  }
  return t;
}

// Pass 2 sums: Σ e and Σ w h (eM), Σ eD and Σ w h (eDSCW / IDW), and the window term of the VJP.
template <typename T>
struct Sums {
  T sum_e, hbar_e, sum_d, hbar_d, term_d;
};

// hc(off, xv) gives the coefficient h of the tap at input offset `off` with value xv.
template <int kMode, bool kGrad, typename T, typename scalar_t, typename H>
__device__ __forceinline__ Sums<T> window_sums(const Geom& g, const scalar_t* xp, const Pos& o,
                                               const Stats<T>& st, T eps, H&& hc) {
  using M = ModeTraits<kMode>;
  T sum_e = T(0), acc_e = T(0), sum_d = T(0), acc_d = T(0), acc_qh = T(0), acc_q = T(0);
  for_each_tap(g, o.d, o.h, o.w, [&](int64_t off) {
    const T xv = static_cast<T>(xp[off]);
    const T h = hc(off, xv);
    const Tap<T> t = tap_eval<kMode, kGrad>(xv, st, eps);
    if (M::kUsesE) {
      sum_e += t.e;
      acc_e += t.e * h;
    }
    if (M::kUsesD || M::kUsesI) {
      sum_d += t.eD;
      acc_d += t.eD * h;
      if (kGrad) {
        acc_qh += t.q * h;
        acc_q += t.q;
      }
    }
  });
  // an empty window (degenerate dilated geometry only) has all sums 0: keep its outputs 0
  Sums<T> s;
  s.sum_e = sum_e > T(0) ? sum_e : T(1);
  s.sum_d = sum_d > T(0) ? sum_d : T(1);
  s.hbar_e = acc_e / s.sum_e;
  s.hbar_d = acc_d / s.sum_d;
  const T n = st.count > T(0) ? st.count : T(1);
  s.term_d = kGrad ? mean_term(acc_qh, acc_q, s.hbar_d, s.sum_d, n) : T(0);
  return s;
}

// adaPool mixes its two branches with β; the single-branch modes use their own.
template <int kMode, typename T>
__device__ __forceinline__ T mix(T beta, T e_part, T d_part) {
  if (kMode == kADA) return beta * d_part + (T(1) - beta) * e_part;
  return ModeTraits<kMode>::kUsesE ? e_part : d_part;
}

// Mixed normalised weight of a tap.
template <int kMode, typename T>
__device__ __forceinline__ T tap_weight(const Tap<T>& t, const Sums<T>& s, T beta) {
  return mix<kMode>(beta, t.e / s.sum_e, t.eD / s.sum_d);
}

// VJP of the mixed weights at a tap with coefficient h (against the coefficients of window_sums<kGrad>).
template <int kMode, typename T>
__device__ __forceinline__ T tap_vjp(const Tap<T>& t, const Sums<T>& s, T beta, T h) {
  using M = ModeTraits<kMode>;
  T ve = T(0), vd = T(0);
  if (M::kUsesE) ve = em_vjp(t.e, s.sum_e, h, s.hbar_e);
  if (M::kUsesD) vd = dscw_vjp(t.eD, s.sum_d, t.dDx, h, s.hbar_d, s.term_d);
  if (M::kUsesI) vd = idw_vjp(t.q, s.sum_d, h, s.hbar_d, s.term_d);
  return mix<kMode>(beta, ve, vd);
}

// ---------------------------------------------------------------------------------------------------------
// Per-window scalars handed from a per-output kernel to a per-input kernel: struct-of-arrays, row r of
// window o at buf[r * n_out + o].

enum WinRow : int { kRowMax = 0, kRowMean, kRowScale, kRowSumE, kRowHbarE, kRowSumD, kRowHbarD, kRowTermD, kRowZs,
                    kNumRows };

template <typename T>
__device__ __forceinline__ void store_window(T* buf, int64_t n_out, int64_t o, const Stats<T>& st,
                                             const Sums<T>& s) {
  buf[kRowMax * n_out + o] = st.maxv;
  buf[kRowMean * n_out + o] = st.mean;
  buf[kRowScale * n_out + o] = st.scale;
  buf[kRowSumE * n_out + o] = s.sum_e;
  buf[kRowHbarE * n_out + o] = s.hbar_e;
  buf[kRowSumD * n_out + o] = s.sum_d;
  buf[kRowHbarD * n_out + o] = s.hbar_d;
  buf[kRowTermD * n_out + o] = s.term_d;
}

// The stats a tap needs (count is only used inside window_sums and is not stored).
template <typename T>
__device__ __forceinline__ Stats<T> load_stats(const T* buf, int64_t n_out, int64_t o) {
  Stats<T> st;
  st.count = T(0);
  st.maxv = buf[kRowMax * n_out + o];
  st.mean = buf[kRowMean * n_out + o];
  st.scale = buf[kRowScale * n_out + o];
  return st;
}

template <typename T>
__device__ __forceinline__ Sums<T> load_sums(const T* buf, int64_t n_out, int64_t o) {
  Sums<T> s;
  s.sum_e = buf[kRowSumE * n_out + o];
  s.hbar_e = buf[kRowHbarE * n_out + o];
  s.sum_d = buf[kRowSumD * n_out + o];
  s.hbar_d = buf[kRowHbarD * n_out + o];
  s.term_d = buf[kRowTermD * n_out + o];
  return s;
}

}  // namespace cuda
}  // namespace poolswap
