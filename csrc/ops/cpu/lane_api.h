// Types shared between the CPU window kernels (window_kernels.cpp) and the lane math builds
// (lane_math_*.cpp, one per instruction set). Declarations only: no code here, so nothing can be merged
// across translation units compiled for different instruction sets.
#pragma once

namespace poolswap {
namespace cpu {

// Windows evaluated together; buffers are tap-major: buf[t * kLanes + l].
constexpr int kLanes = 16;

// Per-tap scratch of one block of windows, owned by the caller (each buffer holds taps * kLanes values).
template <typename T>
struct TapScratch {
  T* e;    // eM:    exp(x - m)
  T* eD;   // eDSCW: exp(D);    IDW: v
  T* dDx;  // eDSCW: ∂D/∂x
  T* dDa;  // eDSCW: ∂D/∂a;     IDW: sgn(d) v²
};

// One block of kLanes windows with `taps` tap slots each. Invalid slots (padding, idle lanes) have
// valid = 0 and x = 0, so every per-tap formula stays finite before it is masked.
template <typename T>
struct BlockArgs {
  int mode;         // poolswap::Mode
  int taps;
  const T* x;       // [taps * kLanes]
  const T* valid;   // [taps * kLanes], 1 or 0
  const T* beta;    // [kLanes], adaPool only
  T eps;
  TapScratch<T> scratch;
};

// y[l] = pooled value of window l.
template <typename T>
using PoolForwardFn = void (*)(const BlockArgs<T>&, T* y);
// gx[t, l] = g[l] ∂y_l/∂x_t;  gbeta[l] = g[l] (yD − yE) (adaPool only).
template <typename T>
using PoolBackwardFn = void (*)(const BlockArgs<T>&, const T* g, T* gx, T* gbeta);
// w[t, l] = mixed adaPool weight of tap t in window l.
template <typename T>
using UnpoolWeightsFn = void (*)(const BlockArgs<T>&, T* w);
// For coefficients q[t, l] of the adaPool weights and per-window factors zs[l]:
// gx[t, l] = zs[l] ∂(Σ_t w q)/∂x_t,  qbar[l] = Σ_t w q,  qgap[l] = Σ_t (wD − wE) q.
template <typename T>
using UnpoolBackwardFn = void (*)(const BlockArgs<T>&, const T* q, const T* zs, T* gx, T* qbar, T* qgap);

template <typename T>
struct LaneKernels {
  PoolForwardFn<T> pool_forward;
  PoolBackwardFn<T> pool_backward;
  UnpoolWeightsFn<T> unpool_weights;
  UnpoolBackwardFn<T> unpool_backward;
};

// One build per instruction set; window_kernels.cpp picks the best the CPU supports.
LaneKernels<float> lane_kernels_float_default();
LaneKernels<double> lane_kernels_double_default();
LaneKernels<float> lane_kernels_float_avx2();
LaneKernels<double> lane_kernels_double_avx2();
LaneKernels<float> lane_kernels_float_avx512();
LaneKernels<double> lane_kernels_double_avx512();

}  // namespace cpu
}  // namespace poolswap
