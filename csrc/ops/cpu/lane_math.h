// Lane-parallel window math for the CPU kernels: the implementation behind lane_api.h.
//
// kLanes independent windows ("lanes") are evaluated together. Every per-tap loop runs over contiguous
// lanes and compiles to SIMD code (the exp in window.h is a branch-free polynomial for exactly this
// reason). Lanes are either consecutive channels at one output position (channels_last) or consecutive
// outputs along the last spatial axis (contiguous NC(D)HW); window_kernels.cpp gathers taps into the
// buffers and scatters the results back.
//
// Included only by lane_math_<isa>.cpp, each after its own `#pragma GCC target`. Everything is in an
// anonymous namespace so the builds for different instruction sets never share a symbol.
#pragma once

#include <limits>

#include <poolswap/window.h>

#include "lane_api.h"

namespace poolswap {
namespace cpu {
namespace {

template <typename T, int kMode>
struct WindowBlock {
  static constexpr bool kUsesE = kMode == kEM || kMode == kADA;
  static constexpr bool kUsesD = kMode == kEDSCW || kMode == kADA;
  static constexpr bool kUsesI = kMode == kIDW;

  const BlockArgs<T>& a;
  // per-window statistics
  T count[kLanes], maxv[kLanes], mean[kLanes], scale[kLanes];
  // Σ exp(x - m) (eM); Σ exp(D) (eDSCW) or Σ v (IDW)
  T sum_e[kLanes], sum_d[kLanes];
  // Σ w h per branch for the coefficients h of the last compute_weights
  T hbar_e[kLanes], hbar_d[kLanes];
  // window term of the eDSCW / IDW VJP (mean_term in window.h)
  T term_d[kLanes];

  explicit WindowBlock(const BlockArgs<T>& args) : a(args) { compute_stats(); }

  // Pass 1: count, max, mean and overflow scale of every window.
  void compute_stats() {
    const T* __restrict x = a.x;
    const T* __restrict valid = a.valid;
    T sum[kLanes], absmax[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      count[l] = sum[l] = absmax[l] = T(0);
      maxv[l] = std::numeric_limits<T>::lowest();
    }
    for (int t = 0; t < a.taps; ++t) {
      const int o = t * kLanes;
      for (int l = 0; l < kLanes; ++l) {
        const bool ok = valid[o + l] > T(0);
        const T v = x[o + l];
        const T av = v < T(0) ? -v : v;
        maxv[l] = ok && v > maxv[l] ? v : maxv[l];
        absmax[l] = ok && av > absmax[l] ? av : absmax[l];
        count[l] += valid[o + l];
        sum[l] += valid[o + l] * v;
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      maxv[l] = count[l] > T(0) ? maxv[l] : T(0);
      mean[l] = count[l] > T(0) ? sum[l] / count[l] : T(0);
      scale[l] = absmax[l] > T(1) ? T(1) / absmax[l] : T(1);
    }
  }

  // Pass 2: per-tap weights (with their derivatives when kGrad) and the contraction of the weights with
  // coefficients h: hbar = Σ w h per branch, plus the window terms of the VJP.
  // kHIsX: h = x − mean (the pooled value, relative to the window mean); otherwise h = the given buffer.
  template <bool kGrad, bool kHIsX>
  void compute_weights(const T* __restrict h) {
    const T* __restrict x = a.x;
    const T* __restrict valid = a.valid;
    T* __restrict e_buf = a.scratch.e;
    T* __restrict d_buf = a.scratch.eD;
    T* __restrict dDx_buf = a.scratch.dDx;
    T* __restrict dDa_buf = a.scratch.dDa;
    T acc_e[kLanes], acc_d[kLanes], acc_qh[kLanes], acc_q[kLanes];
    for (int l = 0; l < kLanes; ++l)
      sum_e[l] = sum_d[l] = acc_e[l] = acc_d[l] = acc_qh[l] = acc_q[l] = T(0);
    for (int t = 0; t < a.taps; ++t) {
      const int o = t * kLanes;
      for (int l = 0; l < kLanes; ++l) {
        const T ok = valid[o + l];
        const T xv = x[o + l];
        const T hc = kHIsX ? xv - mean[l] : h[o + l];
        if (kUsesE) {
          const T e = ok * em_weight(xv, maxv[l]);
          e_buf[o + l] = e;
          sum_e[l] += e;
          acc_e[l] += e * hc;
        }
        if (kUsesD) {
          const DscwTap<T> tap = dscw_tap(xv, mean[l], scale[l], a.eps);
          const T eD = ok * bounded_exp(tap.D);
          d_buf[o + l] = eD;
          sum_d[l] += eD;
          acc_d[l] += eD * hc;
          if (kGrad) {
            dDx_buf[o + l] = tap.dDx;
            acc_qh[l] += eD * tap.dDa * hc;
            acc_q[l] += eD * tap.dDa;
          }
        }
        if (kUsesI) {
          const IdwTap<T> tap = idw_tap(xv - mean[l], a.eps);
          const T v = ok * tap.v;
          d_buf[o + l] = v;
          sum_d[l] += v;
          acc_d[l] += v * hc;
          if (kGrad) {
            const T sv2 = ok * tap.sv2;
            dDa_buf[o + l] = sv2;
            acc_qh[l] += sv2 * hc;
            acc_q[l] += sv2;
          }
        }
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      // an empty window (degenerate dilated geometry only) has all sums 0: keep its outputs 0
      sum_e[l] = sum_e[l] > T(0) ? sum_e[l] : T(1);
      sum_d[l] = sum_d[l] > T(0) ? sum_d[l] : T(1);
      hbar_e[l] = acc_e[l] / sum_e[l];
      hbar_d[l] = acc_d[l] / sum_d[l];
      const T n = count[l] > T(0) ? count[l] : T(1);
      term_d[l] = kGrad ? mean_term(acc_qh[l], acc_q[l], hbar_d[l], sum_d[l], n) : T(0);
    }
  }

  // adaPool mixes its two branches with β; the single-branch modes use their own.
  T mix(int l, T e_part, T d_part) const {
    if (kMode == kADA) return a.beta[l] * d_part + (T(1) - a.beta[l]) * e_part;
    return kUsesE ? e_part : d_part;
  }

  // Mixed normalised weight of tap slot o + l (0 for invalid slots).
  T weight(int o, int l) const {
    const T we = a.scratch.e[o + l] / sum_e[l];
    const T wd = a.scratch.eD[o + l] / sum_d[l];
    return mix(l, kUsesE ? we : T(0), kUsesE && !kUsesD ? T(0) : wd);
  }

  // VJP of the mixed weights against the coefficients of the last compute_weights<true, *>.
  T vjp(int o, int l, T hc) const {
    T ve = T(0), vd = T(0);
    if (kUsesE) ve = em_vjp(a.scratch.e[o + l], sum_e[l], hc, hbar_e[l]);
    if (kUsesD) vd = dscw_vjp(a.scratch.eD[o + l], sum_d[l], a.scratch.dDx[o + l], hc, hbar_d[l], term_d[l]);
    if (kUsesI) vd = idw_vjp(a.scratch.dDa[o + l], sum_d[l], hc, hbar_d[l], term_d[l]);
    return a.valid[o + l] * mix(l, ve, vd);
  }
};

template <typename T, int kMode>
void pool_forward_mode(const BlockArgs<T>& a, T* y) {
  WindowBlock<T, kMode> b(a);
  b.template compute_weights<false, true>(nullptr);
  for (int l = 0; l < kLanes; ++l) y[l] = b.mean[l] + b.mix(l, b.hbar_e[l], b.hbar_d[l]);
}

// ∂y/∂x_t = w_t + VJP_t(x − mean)
template <typename T, int kMode>
void pool_backward_mode(const BlockArgs<T>& a, const T* g, T* gx, T* gbeta) {
  WindowBlock<T, kMode> b(a);
  b.template compute_weights<true, true>(nullptr);
  for (int t = 0; t < a.taps; ++t) {
    const int o = t * kLanes;
    for (int l = 0; l < kLanes; ++l)
      gx[o + l] = g[l] * (b.weight(o, l) + b.vjp(o, l, a.x[o + l] - b.mean[l]));
  }
  if (kMode == kADA)
    for (int l = 0; l < kLanes; ++l) gbeta[l] = g[l] * (b.hbar_d[l] - b.hbar_e[l]);
}

template <typename T>
void unpool_weights_ada(const BlockArgs<T>& a, T* w) {
  WindowBlock<T, kADA> b(a);
  b.template compute_weights<false, true>(nullptr);  // the contraction is unused here
  for (int t = 0; t < a.taps; ++t)
    for (int l = 0; l < kLanes; ++l) w[t * kLanes + l] = b.weight(t * kLanes, l);
}

template <typename T>
void unpool_backward_ada(const BlockArgs<T>& a, const T* q, const T* zs, T* gx, T* qbar, T* qgap) {
  WindowBlock<T, kADA> b(a);
  b.template compute_weights<true, false>(q);
  for (int t = 0; t < a.taps; ++t) {
    const int o = t * kLanes;
    for (int l = 0; l < kLanes; ++l) gx[o + l] = zs[l] * b.vjp(o, l, q[o + l]);
  }
  for (int l = 0; l < kLanes; ++l) {
    qbar[l] = b.mix(l, b.hbar_e[l], b.hbar_d[l]);
    qgap[l] = b.hbar_d[l] - b.hbar_e[l];
  }
}

template <typename T>
void pool_forward_any(const BlockArgs<T>& a, T* y) {
  switch (a.mode) {
    case kEM: return pool_forward_mode<T, kEM>(a, y);
    case kEDSCW: return pool_forward_mode<T, kEDSCW>(a, y);
    case kIDW: return pool_forward_mode<T, kIDW>(a, y);
    default: return pool_forward_mode<T, kADA>(a, y);
  }
}

template <typename T>
void pool_backward_any(const BlockArgs<T>& a, const T* g, T* gx, T* gbeta) {
  switch (a.mode) {
    case kEM: return pool_backward_mode<T, kEM>(a, g, gx, gbeta);
    case kEDSCW: return pool_backward_mode<T, kEDSCW>(a, g, gx, gbeta);
    case kIDW: return pool_backward_mode<T, kIDW>(a, g, gx, gbeta);
    default: return pool_backward_mode<T, kADA>(a, g, gx, gbeta);
  }
}

template <typename T>
LaneKernels<T> lane_kernels_here() {
  return {&pool_forward_any<T>, &pool_backward_any<T>, &unpool_weights_ada<T>, &unpool_backward_ada<T>};
}

}  // namespace
}  // namespace cpu
}  // namespace poolswap
