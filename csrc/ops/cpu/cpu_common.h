// Plumbing shared by the CPU kernels: memory layout, per-thread buffers, and the lane math build for
// this CPU.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "window_blocks.h"

namespace poolswap {
namespace cpu {

// The lane math build for the best instruction set this CPU supports (AVX-512, AVX2 or baseline).
template <typename T>
const LaneKernels<T>& lane_kernels();

// Picks the layout the kernels walk: channels_last when x is stored that way and has enough channels to
// fill the lanes, contiguous NC(D)HW otherwise.
WindowProblem make_problem(const PoolGeometry& g, const at::Tensor& x);

// x in the layout of the problem (a copy only when x is in neither layout).
at::Tensor in_layout(const WindowProblem& P, const at::Tensor& t);

// A new tensor in the layout of the problem.
at::Tensor empty_in_layout(const WindowProblem& P, at::IntArrayRef sizes, const at::TensorOptions& options);
at::Tensor zeros_in_layout(const WindowProblem& P, at::IntArrayRef sizes, const at::TensorOptions& options);

// Back to x's own suggested memory format (the layout of a drop-in pool's output).
at::Tensor like_input(const at::Tensor& result, const at::Tensor& x);

// Visits every slot of block B: f(i, off, present) with i = t * kLanes + l the buffer index and off the
// input offset (meaningless when !present). All-present taps (the interior of the input) take a loop
// without masks.
template <typename F>
void for_each_slot(const Block& B, F&& f) {
  for (int t = 0; t < B.taps; ++t) {
    const int64_t base = B.tap[t], stride = B.lane_stride;
    const uint32_t mask = B.mask[t];
    const int64_t i0 = int64_t(t) * kLanes;
    if (mask == kAllLanes)
      for (int l = 0; l < kLanes; ++l) f(i0 + l, base + l * stride, true);
    else
      for (int l = 0; l < kLanes; ++l) f(i0 + l, base + l * stride, ((mask >> l) & 1) != 0);
  }
}

// dst[t, l] = src[slot (t, l)], 0 for absent slots.
template <typename T, typename scalar_t>
void gather_taps(const Block& B, const scalar_t* src, T* __restrict dst) {
  for_each_slot(B, [&](int64_t i, int64_t off, bool present) { dst[i] = present ? static_cast<T>(src[off]) : T(0); });
}

// Adds per-slot values into `dst` (a work item owns the elements it touches: no atomics).
template <typename T>
void scatter_add(const Block& B, const T* __restrict src, T* dst) {
  for_each_slot(B, [&](int64_t i, int64_t off, bool present) {
    if (present) dst[off] += src[i];
  });
}

// Per-thread buffers of one block of windows, in the accumulation type.
template <typename T>
struct LaneBuffers {
  std::vector<T> x, valid, h, out, e, eD, dDx, dDa;
  T lane_a[kLanes], lane_b[kLanes], lane_c[kLanes], lane_d[kLanes], lane_e[kLanes];

  explicit LaneBuffers(const PoolGeometry& g) {
    const size_t n = static_cast<size_t>(g.max_taps()) * kLanes;
    for (std::vector<T>* v : {&x, &valid, &h, &out, &e, &eD, &dDx, &dDa}) v->assign(n, T(0));
  }

  // Loads the taps of block B from `src` into x, and their presence into valid.
  template <typename scalar_t>
  void gather(const Block& B, const scalar_t* src) {
    gather_taps(B, src, x.data());
    T* __restrict v = valid.data();
    for_each_slot(B, [&](int64_t i, int64_t, bool present) { v[i] = present ? T(1) : T(0); });
  }

  BlockArgs<T> args(int mode, int taps, const T* beta, double eps) {
    return BlockArgs<T>{mode, taps, x.data(), valid.data(), beta, static_cast<T>(eps),
                        TapScratch<T>{e.data(), eD.data(), dDx.data(), dDa.data()}};
  }
};

// Loads one value per lane from the output-shaped tensor `src` (0 for idle lanes).
template <typename T, typename scalar_t>
void gather_lanes(const Block& B, const scalar_t* src, T* dst) {
  for (int l = 0; l < kLanes; ++l) dst[l] = l < B.lanes ? static_cast<T>(src[B.out + l]) : T(0);
}

// Loads β per lane (β expanded to (C, *out), see WindowProblem::beta_stride).
template <typename T>
void gather_beta(const Block& B, const T* beta, T* dst) {
  for (int l = 0; l < kLanes; ++l) dst[l] = l < B.lanes ? beta[B.beta + l * B.beta_stride] : T(0);
}

// Zeroes the input elements of work item `item`, just before its blocks scatter-add into them (while
// they are cached, instead of a separate pass over the whole tensor).
template <typename T>
void zero_item_inputs(const WindowProblem& P, int64_t item, T* dst) {
  P.for_each_input_run(item, [&](int64_t off, int64_t len) { std::fill(dst + off, dst + off + len, T(0)); });
}

}  // namespace cpu
}  // namespace poolswap
