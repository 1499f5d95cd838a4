// How the CPU kernels walk a pooling problem: work items, blocks of kLanes windows, and the element
// offsets of every tap, so that one gather/scatter serves all ops and both memory layouts.
//
//   contiguous (N, C, *S):    a work item is one (n, c) plane; lanes are kLanes consecutive outputs along
//                             the last spatial axis (each lane checks its own taps along that axis).
//   channels_last (N, *S, C): a work item is (n, block of kLanes channels); lanes are those channels at one
//                             output position (all lanes share the valid taps; loads are contiguous).
//
// A work item owns every input and output element it touches, so scatter-adds need no atomics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../geometry.h"
#include "lane_api.h"

namespace poolswap {
namespace cpu {

struct WindowProblem {
  PoolGeometry g;
  bool channels_last;
  int64_t beta_stride[4] = {0, 0, 0, 0};  // (c, d, h, w) element strides of an expanded β

  int64_t channel_blocks() const { return (g.C + kLanes - 1) / kLanes; }
  int64_t items() const { return channels_last ? g.N * channel_blocks() : g.N * g.C; }

  int64_t in_offset(int64_t n, int64_t c, int64_t i, int64_t j, int64_t k) const {
    const Axis* a = g.ax;
    return channels_last ? (((n * a[0].in + i) * a[1].in + j) * a[2].in + k) * g.C + c
                         : ((n * g.C + c) * a[0].in + i) * a[1].in * a[2].in + j * a[2].in + k;
  }
  int64_t out_offset(int64_t n, int64_t c, int64_t i, int64_t j, int64_t k) const {
    const Axis* a = g.ax;
    return channels_last ? (((n * a[0].out + i) * a[1].out + j) * a[2].out + k) * g.C + c
                         : ((n * g.C + c) * a[0].out + i) * a[1].out * a[2].out + j * a[2].out + k;
  }
  int64_t beta_offset(int64_t c, int64_t i, int64_t j, int64_t k) const {
    return c * beta_stride[0] + i * beta_stride[1] + j * beta_stride[2] + k * beta_stride[3];
  }

  // Calls f(offset, length) for the runs of input elements that work item `item` owns: its whole plane
  // (contiguous), or its channels at every input position (channels_last).
  template <typename F>
  void for_each_input_run(int64_t item, F&& f) const {
    int64_t n, c0, nc;
    item_channels(item, &n, &c0, &nc);
    if (!channels_last) return f(in_offset(n, c0, 0, 0, 0), g.in_plane());
    for (int64_t pos = 0; pos < g.in_plane(); ++pos) f((n * g.in_plane() + pos) * g.C + c0, nc);
  }

  // First channel and channel count of a work item: (c, 1) for a plane, (c0, ≤ kLanes) for a block.
  void item_channels(int64_t item, int64_t* n, int64_t* c0, int64_t* nc) const {
    if (channels_last) {
      *n = item / channel_blocks();
      *c0 = (item % channel_blocks()) * kLanes;
      *nc = std::min<int64_t>(kLanes, g.C - *c0);
    } else {
      *n = item / g.C;
      *c0 = item % g.C;
      *nc = 1;
    }
  }
};

// Bit mask of the first n lanes.
inline uint32_t lanes_mask(int64_t n) { return n >= kLanes ? (uint32_t(1) << kLanes) - 1 : (uint32_t(1) << n) - 1; }
constexpr uint32_t kAllLanes = (uint32_t(1) << kLanes) - 1;

// One block of windows. Slot (t, l) — tap t of lane l — is input element tap[t] + l * lane_stride when
// bit l of mask[t] is set, and absent (padding, idle lane) otherwise. Lane l writes output element
// out + l and reads β element beta + l * beta_stride; lanes ≥ `lanes` are idle.
// Base + stride instead of one offset per slot: the common all-valid tap costs one offset, and the
// gathers and scatters below run as plain strided loops.
struct Block {
  int taps = 0;
  int lanes = 0;
  int64_t lane_stride = 1, beta_stride = 0;
  int64_t out = 0, beta = 0;
  std::vector<int64_t> tap;    // [max_taps]
  std::vector<uint32_t> mask;  // [max_taps]

  explicit Block(const PoolGeometry& g) : tap(static_cast<size_t>(g.max_taps())), mask(tap.size()) {}

  // Number of taps of lane l (its window's |R|).
  int64_t count(int l) const {
    int64_t c = 0;
    for (int t = 0; t < taps; ++t) c += (mask[t] >> l) & 1;
    return c;
  }
};

// Calls f(block) for every block of windows of work item `item`.
template <typename F>
void for_each_block(const WindowProblem& P, int64_t item, Block& B, F&& f) {
  const Axis* a = P.g.ax;
  int64_t n, c0, nc;
  P.item_channels(item, &n, &c0, &nc);
  std::vector<uint32_t> col_mask(P.channels_last ? 0 : a[2].k);  // contiguous: lanes in range per tap column
  for (int64_t od = 0; od < a[0].out; ++od) {
    int64_t d0, d1;
    tap_range(a[0], od, &d0, &d1);
    const int64_t id0 = od * a[0].s - a[0].p;
    for (int64_t oh = 0; oh < a[1].out; ++oh) {
      int64_t h0, h1;
      tap_range(a[1], oh, &h0, &h1);
      const int64_t ih0 = oh * a[1].s - a[1].p;
      if (P.channels_last) {
        // every lane (channel) shares the window: enumerate its valid taps only
        B.lanes = static_cast<int>(nc);
        B.lane_stride = 1;
        B.beta_stride = P.beta_stride[0];
        const uint32_t mask = lanes_mask(nc);
        for (int64_t ow = 0; ow < a[2].out; ++ow) {
          int64_t w0, w1;
          tap_range(a[2], ow, &w0, &w1);
          const int64_t iw0 = ow * a[2].s - a[2].p;
          int t = 0;
          for (int64_t jd = d0; jd < d1; ++jd)
            for (int64_t jh = h0; jh < h1; ++jh)
              for (int64_t jw = w0; jw < w1; ++jw, ++t) {
                B.tap[t] = P.in_offset(n, c0, id0 + jd * a[0].d, ih0 + jh * a[1].d, iw0 + jw * a[2].d);
                B.mask[t] = mask;
              }
          B.taps = t;
          B.out = P.out_offset(n, c0, od, oh, ow);
          B.beta = P.beta_offset(c0, od, oh, ow);
          f(B);
        }
      } else {
        // lanes are outputs ow0 + l along W; each tap column jw has its own lanes in range
        B.lane_stride = a[2].s;
        B.beta_stride = P.beta_stride[3];
        for (int64_t ow0 = 0; ow0 < a[2].out; ow0 += kLanes) {
          B.lanes = static_cast<int>(std::min<int64_t>(kLanes, a[2].out - ow0));
          for (int64_t jw = 0; jw < a[2].k; ++jw) {
            col_mask[jw] = 0;
            for (int l = 0; l < B.lanes; ++l) {
              const int64_t iw = (ow0 + l) * a[2].s - a[2].p + jw * a[2].d;
              col_mask[jw] |= uint32_t(iw >= 0 && iw < a[2].in) << l;
            }
          }
          int t = 0;
          for (int64_t jd = d0; jd < d1; ++jd)
            for (int64_t jh = h0; jh < h1; ++jh) {
              const int64_t row = P.in_offset(n, c0, id0 + jd * a[0].d, ih0 + jh * a[1].d, 0);
              for (int64_t jw = 0; jw < a[2].k; ++jw)
                if (col_mask[jw] != 0) {
                  B.tap[t] = row + ow0 * a[2].s - a[2].p + jw * a[2].d;  // lane 0's column, maybe outside
                  B.mask[t++] = col_mask[jw];
                }
            }
          B.taps = t;
          B.out = P.out_offset(n, c0, od, oh, ow0);
          B.beta = P.beta_offset(c0, od, oh, ow0);
          f(B);
        }
      }
    }
  }
}

// Calls f(in_offset, nearest_out_offset, coverage) for every input element of work item `item`
// (adaUnPool "mean" mode: coverage = number of windows containing the element; 0 means uncovered and
// nearest_out_offset is the window it copies).
template <typename F>
void for_each_input(const WindowProblem& P, int64_t item, const std::vector<int64_t> (&cov)[3], F&& f) {
  const Axis* a = P.g.ax;
  int64_t n, c0, nc;
  P.item_channels(item, &n, &c0, &nc);
  for (int64_t i = 0; i < a[0].in; ++i)
    for (int64_t j = 0; j < a[1].in; ++j)
      for (int64_t k = 0; k < a[2].in; ++k) {
        const int64_t c = cov[0][i] * cov[1][j] * cov[2][k];
        const int64_t oi = nearest_window(a[0], i), oj = nearest_window(a[1], j), ok = nearest_window(a[2], k);
        for (int64_t l = 0; l < nc; ++l) f(P.in_offset(n, c0 + l, i, j, k), P.out_offset(n, c0 + l, oi, oj, ok), c);
      }
}

}  // namespace cpu
}  // namespace poolswap
