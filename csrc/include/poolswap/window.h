// Window geometry and per-tap weight rules shared by the CPU and CUDA kernels.
//
// Everything here is plain arithmetic on scalars, callable from host and device code, so the CPU tests
// vouch for the math the CUDA kernels run. Functions are `static inline` (always inlined, internal
// linkage): the CPU kernels are compiled several times with different instruction sets, and an
// out-of-line copy shared between those translation units would break that.
//
// Notation (DESIGN.md §2): a window R(o) holds the *valid* taps of output o (padding taps do not exist);
// n = |R|, m = max_R x, a = mean_R x. Every weight family w is normalised over R and the pooled value is
// y = Σ w_i x_i. For a window we also need the vector-Jacobian product of the weights,
//     VJP_j(h) = ∂(Σ_i w_i h_i) / ∂x_j   with the coefficients h held fixed,
// because  ∂y/∂x_j = w_j + VJP_j(x)  (pool backward) and adaUnPool's backward is VJP_j(g z scale / c).
// All three families reduce to per-tap terms plus one per-window sum, accumulated in a single pass.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define PS_HD __host__ __device__ __forceinline__
#else
#define PS_HD __attribute__((always_inline)) static inline
#endif

namespace poolswap {

// Mode of the fused window kernel. The integer values are part of the op schema of the backward ops.
enum Mode : int { kEM = 0, kEDSCW = 1, kIDW = 2, kADA = 3 };

// ---------------------------------------------------------------------------------------------------------
// Geometry: exactly torch.nn.MaxPool{1,2,3}d.

// Output length of one spatial axis (ATen's pooling_output_shape).
PS_HD int64_t pooled_length(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  // floor division (num may be negative for invalid geometry; callers reject out < 1)
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  // the last window must start inside the input or the left padding
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// One spatial axis of a pooling geometry.
struct Axis {
  int64_t in, out, k, s, p, d;
};

// Valid taps j ∈ [*j0, *j1) of window `o` along an axis: position o*s - p + j*d lies in [0, in).
PS_HD void tap_range(const Axis& ax, int64_t o, int64_t* j0, int64_t* j1) {
  const int64_t start = o * ax.s - ax.p;
  const int64_t lo = start < 0 ? (-start + ax.d - 1) / ax.d : 0;  // first j with start + j*d >= 0
  const int64_t last = ax.in - 1 - start;                          // need j*d <= last
  int64_t hi = last < 0 ? 0 : last / ax.d + 1;
  if (hi > ax.k) hi = ax.k;
  *j0 = lo;
  *j1 = hi > lo ? hi : lo;
}

// Number of windows whose valid taps include input position i along an axis (adaUnPool "mean" mode).
PS_HD int64_t coverage(const Axis& ax, int64_t i) {
  int64_t count = 0;
  for (int64_t j = 0; j < ax.k; ++j) {  // i = o*s - p + j*d  =>  o = (i + p - j*d) / s
    const int64_t num = i + ax.p - j * ax.d;
    if (num >= 0 && num % ax.s == 0 && num / ax.s < ax.out) ++count;
  }
  return count;
}

// Nearest window of an uncovered position along an axis (adaUnPool "mean" mode fallback).
PS_HD int64_t nearest_window(const Axis& ax, int64_t i) {
  const int64_t o = (i + ax.p) / ax.s;
  return o < ax.out ? o : ax.out - 1;
}

// ---------------------------------------------------------------------------------------------------------
// Numerics.

// exp for arguments the kernels guarantee to lie in [exp_floor, 1]. On the host a branch-free polynomial
// (Cephes expf, ≈1 ulp) that compilers vectorise; on the device the hardware expf.
PS_HD float exp_floor(float) { return -87.0f; }  // exp(-87) is still a normal float
PS_HD double exp_floor(double) { return -700.0; }

PS_HD float bounded_exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  // round(x / ln2) by the 1.5·2^23 trick (no floor(): keeps the loop vectorisable without SSE4.1)
  const float magic = 12582912.0f;
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float er = poly * r2 + r + 1.0f;
  // scale by 2^n: n ∈ [-126, 2] here, so the biased exponent stays in the normal range
  const int32_t biased = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &biased, sizeof(scale));
  return er * scale;
#endif
}
PS_HD double bounded_exp(double x) { return exp(x); }

template <typename T>
PS_HD T sign_of(T v) {
  return static_cast<T>((v > T(0)) - (v < T(0)));
}

// ---------------------------------------------------------------------------------------------------------
// eMPool (DESIGN §2.1): w_i ∝ exp(x_i - m).
// The argument is clamped at exp_floor: taps more than 87 below the max weigh < 1e-38 of it, and the clamp
// keeps x - m finite even when x spans the whole float range.

template <typename T>
PS_HD T em_weight(T x, T m) {
  T t = x - m;
  const T floor_t = exp_floor(T(0));
  t = t > floor_t ? t : floor_t;
  return bounded_exp(t);
}

// ---------------------------------------------------------------------------------------------------------
// eDSCWPool (DESIGN §2.2): D_i = 2|x_i a| / (x_i² + a² + ε) ∈ [0, 1], w_i ∝ exp(D_i) ∈ [1, e] — no
// stabiliser needed. D is invariant to scaling (x, a, √ε) together, so it is evaluated on x·scale,
// a·scale with ε·scale², scale = 1 / max(1, max_R |x|): the squares cannot overflow. The window scale is a
// constant of differentiation, so ∂D/∂x = scale · ∂D/∂(x·scale).

template <typename T>
struct DscwTap {
  T D;    // Dice–Sørensen coefficient of the tap and the window mean
  T dDx;  // ∂D/∂x_i (through the tap itself)
  T dDa;  // ∂D/∂a   (through the window mean; a = Σx / n adds dDa / n to every tap)
};

template <typename T>
PS_HD DscwTap<T> dscw_tap(T x, T a, T scale, T eps) {
  const T u = x * scale, v = a * scale;
  T den = u * u + v * v + eps * scale * scale;
  den = den > T(0) ? den : T(1);  // den = 0 only when u = v = 0, where the numerator is 0 too
  const T abs_u = u < T(0) ? -u : u, abs_v = v < T(0) ? -v : v;
  DscwTap<T> tap;
  tap.D = T(2) * abs_u * abs_v / den;
  // ∂D/∂u = (2 sgn(u)|v| − 2 D u) / den, and symmetrically for v
  tap.dDx = scale * (T(2) * sign_of(u) * abs_v - T(2) * tap.D * u) / den;
  tap.dDa = scale * (T(2) * sign_of(v) * abs_u - T(2) * tap.D * v) / den;
  return tap;
}

// ---------------------------------------------------------------------------------------------------------
// IDWPool (DESIGN §2.3): v_i = 1 / (|x_i − a| + ε), w_i = v_i / Σ v. Written around d_i = x_i − a, the
// pooled value y = a + Σ v_i d_i / Σ v sums terms |v_i d_i| < 1, so it cannot overflow.

template <typename T>
struct IdwTap {
  T v;    // inverse distance
  T sv2;  // sgn(d_i) v_i²: ∂v_i/∂x_i = −sv2 (direct), ∂v_i/∂a = +sv2
};

template <typename T>
PS_HD IdwTap<T> idw_tap(T d, T eps) {
  IdwTap<T> tap;
  const T abs_d = d < T(0) ? -d : d;
  tap.v = T(1) / (abs_d + eps);
  tap.sv2 = sign_of(d) * tap.v * tap.v;
  return tap;
}

// ---------------------------------------------------------------------------------------------------------
// Vector-Jacobian products of the normalised weights, per tap j (coefficients h relative to any common
// reference; hbar = Σ w h in the same reference).
//
//   softmax of x (eM):        VJP_j = w_j (h_j − hbar)
//   softmax of D (eDSCW):     VJP_j = w_j (h_j − hbar) dDx_j + (1/n) Σ_k w_k (h_k − hbar) dDa_k
//   inverse distance (IDW):   VJP_j = −(h_j − hbar) sv2_j / V + (1/n) Σ_k (h_k − hbar) sv2_k / V
//
// The window terms are accumulated as two sums (Σ q h and Σ q, with q = w dDa or sv2) so one pass
// suffices: Σ_k q_k (h_k − hbar) = Σ q h − hbar Σ q.

template <typename T>
PS_HD T mean_term(T sum_qh, T sum_q, T hbar, T norm, T count) {
  return (sum_qh - hbar * sum_q) / (norm * count);
}

template <typename T>
PS_HD T em_vjp(T e, T sum_e, T h, T hbar) {
  return e / sum_e * (h - hbar);
}

template <typename T>
PS_HD T dscw_vjp(T eD, T sum_eD, T dDx, T h, T hbar, T window_term) {
  return eD / sum_eD * (h - hbar) * dDx + window_term;
}

template <typename T>
PS_HD T idw_vjp(T sv2, T sum_v, T h, T hbar, T window_term) {
  return -(h - hbar) * sv2 / sum_v + window_term;
}

}  // namespace poolswap
