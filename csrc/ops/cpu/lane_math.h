// Lane-parallel window math for the CPU kernels: the implementation behind lane_api.h.
//
// kLanes independent windows ("lanes") are evaluated together. Every per-tap loop runs over contiguous
// lanes and compiles to SIMD code (the exp in window.h is a branch-free polynomial for exactly this
// reason). Lanes are either consecutive channels at one output position (channels_last) or consecutive
// outputs along the last spatial axis (contiguous NC(D)HW); the CPU kernels gather taps into the buffers
// and scatter the results back.
//
// Vectorisation needs every lane body branch-free (selects, not `&&`), 64-bit slot indices (the
// extension is built with -fwrapv, under which an int index `t * kLanes + l` may wrap and the loads
// become gathers and scatters), per-lane values in local arrays, and `#pragma GCC ivdep` on the lane
// loops (GCC ignores `__restrict` on local pointers, so it cannot rule out that a store into scratch
// changes x). A loop that stops vectorising costs several times its speed: check with -fopt-info-vec.
//
// Included only by lane_math_<isa>.cpp, each after its own `#pragma GCC target`. Everything is in an
// anonymous namespace so the builds for different instruction sets never share a symbol.
#pragma once

#include <cstddef>
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
  // mixing factor of the eDSCW / IDW branch: β (adaPool), 1 or 0 (single-branch modes)
  T beta[kLanes];
  // 1 / Σ exp(x - m) (eM); 1 / Σ exp(D) (eDSCW) or 1 / Σ v (IDW)
  T inv_e[kLanes], inv_d[kLanes];
  // Σ w h per branch for the coefficients h of the last compute_weights
  T hbar_e[kLanes], hbar_d[kLanes];
  // window term of the eDSCW / IDW VJP (mean_term in window.h)
  T term_d[kLanes];

  explicit WindowBlock(const BlockArgs<T>& args) : a(args) {
    for (int l = 0; l < kLanes; ++l) beta[l] = kMode == kADA ? a.beta[l] : T(kUsesE ? 0 : 1);
    compute_stats();
  }

  // Pass 1: count, max, mean and overflow scale of every window.
  void compute_stats() {
    const T* __restrict x = a.x;
    const T* __restrict valid = a.valid;
    T n[kLanes], sum[kLanes], mx[kLanes], absmax[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      n[l] = sum[l] = absmax[l] = T(0);
      mx[l] = std::numeric_limits<T>::lowest();
    }
    for (int t = 0; t < a.taps; ++t) {
      const std::ptrdiff_t o = std::ptrdiff_t(t) * kLanes;
#pragma GCC ivdep
      for (int l = 0; l < kLanes; ++l) {
        const T ok = valid[o + l], v = x[o + l];  // invalid slots hold x = 0
        const T av = v < T(0) ? -v : v;
        const T cand = ok > T(0) ? v : std::numeric_limits<T>::lowest();
        mx[l] = cand > mx[l] ? cand : mx[l];
        absmax[l] = av > absmax[l] ? av : absmax[l];
        n[l] += ok;
        sum[l] += v;
      }
    }
    for (int l = 0; l < kLanes; ++l) {
      count[l] = n[l];
      maxv[l] = n[l] > T(0) ? mx[l] : T(0);
      mean[l] = n[l] > T(0) ? sum[l] / n[l] : T(0);
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
    const T eps = a.eps;
    T m[kLanes], mu[kLanes], sc[kLanes];
    T sum_e[kLanes], sum_d[kLanes], acc_e[kLanes], acc_d[kLanes], acc_qh[kLanes], acc_q[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      m[l] = maxv[l], mu[l] = mean[l], sc[l] = scale[l];
      sum_e[l] = sum_d[l] = acc_e[l] = acc_d[l] = acc_qh[l] = acc_q[l] = T(0);
    }
    for (int t = 0; t < a.taps; ++t) {
      const std::ptrdiff_t o = std::ptrdiff_t(t) * kLanes;
#pragma GCC ivdep
      for (int l = 0; l < kLanes; ++l) {
        const T ok = valid[o + l];
        const T xv = x[o + l];
        const T hc = kHIsX ? xv - mu[l] : h[o + l];
        if (kUsesE) {
          const T e = ok * em_weight(xv, m[l]);
          e_buf[o + l] = e;
          sum_e[l] += e;
          acc_e[l] += e * hc;
        }
        if (kUsesD) {
          const DscwTap<T> tap = dscw_tap(xv, mu[l], sc[l], eps);
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
          const IdwTap<T> tap = idw_tap(xv - mu[l], eps);
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
      const T se = sum_e[l] > T(0) ? sum_e[l] : T(1);
      const T sd = sum_d[l] > T(0) ? sum_d[l] : T(1);
      inv_e[l] = T(1) / se;
      inv_d[l] = T(1) / sd;
      hbar_e[l] = acc_e[l] / se;
      hbar_d[l] = acc_d[l] / sd;
      const T n = count[l] > T(0) ? count[l] : T(1);
      term_d[l] = kGrad ? mean_term(acc_qh[l], acc_q[l], hbar_d[l], sd, n) : T(0);
    }
  }

  // adaPool mixes its two branches with β; the single-branch modes use their own (beta = 0 or 1).
  T mix(int l, T e_part, T d_part) const {
    if (kMode == kADA) return beta[l] * d_part + (T(1) - beta[l]) * e_part;
    return kUsesE ? e_part : d_part;
  }

  // Visits every tap slot with the lane's normalised weights of both branches (0 for invalid slots), the
  // tap's VJP of the mixed weights against the coefficients of the last compute_weights<true, *> (when
  // kVjp), and the slot index: f(i, l, wE, wD, vjp). The VJP helpers of window.h take the sum of the
  // weights they normalise by; the weights are normalised here already (one multiply instead of a
  // division per tap), so that sum is 1.
  template <bool kVjp, typename F>
  void for_each_tap(const T* __restrict h, F&& f) const {
    const T* __restrict x = a.x;
    const T* __restrict valid = a.valid;
    const T* __restrict e_buf = a.scratch.e;
    const T* __restrict d_buf = a.scratch.eD;
    const T* __restrict dDx_buf = a.scratch.dDx;
    const T* __restrict dDa_buf = a.scratch.dDa;
    T ie[kLanes], id[kLanes], he[kLanes], hd[kLanes], td[kLanes], mu[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      ie[l] = inv_e[l], id[l] = inv_d[l], he[l] = hbar_e[l], hd[l] = hbar_d[l], td[l] = term_d[l];
      mu[l] = mean[l];
    }
    for (int t = 0; t < a.taps; ++t) {
      const std::ptrdiff_t o = std::ptrdiff_t(t) * kLanes;
#pragma GCC ivdep
      for (int l = 0; l < kLanes; ++l) {
        const std::ptrdiff_t i = o + l;
        const T we = kUsesE ? e_buf[i] * ie[l] : T(0);
        const T wd = kUsesE && !kUsesD ? T(0) : d_buf[i] * id[l];
        T vjp = T(0);
        if (kVjp) {
          const T hc = h ? h[i] : x[i] - mu[l];
          T ve = T(0), vd = T(0);
          if (kUsesE) ve = em_vjp(we, T(1), hc, he[l]);
          if (kUsesD) vd = dscw_vjp(wd, T(1), dDx_buf[i], hc, hd[l], td[l]);
          if (kUsesI) vd = idw_vjp(dDa_buf[i] * id[l], T(1), hc, hd[l], td[l]);
          vjp = valid[i] * mix(l, ve, vd);
        }
        f(i, l, we, wd, vjp);
      }
    }
  }
};

template <typename T, int kMode>
void pool_forward_mode(const BlockArgs<T>& a, T* __restrict y) {
  WindowBlock<T, kMode> b(a);
  b.template compute_weights<false, true>(nullptr);
  for (int l = 0; l < kLanes; ++l) y[l] = b.mean[l] + b.mix(l, b.hbar_e[l], b.hbar_d[l]);
}

// ∂y/∂x_t = w_t + VJP_t(x − mean)
template <typename T, int kMode>
void pool_backward_mode(const BlockArgs<T>& a, const T* __restrict g, T* __restrict gx, T* __restrict gbeta) {
  WindowBlock<T, kMode> b(a);
  b.template compute_weights<true, true>(nullptr);
  T gl[kLanes];
  for (int l = 0; l < kLanes; ++l) gl[l] = g[l];
  b.template for_each_tap<true>(nullptr, [&](std::ptrdiff_t i, int l, T we, T wd, T vjp) {
    gx[i] = gl[l] * (b.mix(l, we, wd) + vjp);
  });
  if (kMode == kADA)
    for (int l = 0; l < kLanes; ++l) gbeta[l] = g[l] * (b.hbar_d[l] - b.hbar_e[l]);
}

template <typename T>
void unpool_weights_ada(const BlockArgs<T>& a, T* __restrict w) {
  WindowBlock<T, kADA> b(a);
  b.template compute_weights<false, true>(nullptr);  // the contraction is unused here
  b.template for_each_tap<false>(nullptr, [&](std::ptrdiff_t i, int l, T we, T wd, T) { w[i] = b.mix(l, we, wd); });
}

template <typename T>
void unpool_backward_ada(const BlockArgs<T>& a, const T* __restrict q, const T* __restrict zs, T* __restrict gx,
                         T* __restrict qbar, T* __restrict qgap) {
  WindowBlock<T, kADA> b(a);
  b.template compute_weights<true, false>(q);
  T zl[kLanes];
  for (int l = 0; l < kLanes; ++l) zl[l] = zs[l];
  b.template for_each_tap<true>(q, [&](std::ptrdiff_t i, int l, T, T, T vjp) { gx[i] = zl[l] * vjp; });
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
