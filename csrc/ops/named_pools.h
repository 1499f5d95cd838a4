// The four pooling ops (empool, edscwpool, idwpool, adapool) are one forward that takes a mode
// (poolswap::Mode). NamedPools adapts such a forward to each op's schema (pool.cpp), so the CPU and the
// CUDA registrations share one mapping from op to mode.
#pragma once

#include <torch/library.h>

#include <poolswap/window.h>

namespace poolswap {

using PoolForward = at::Tensor (*)(const char* op, int mode, const at::Tensor& x,
                                   const c10::optional<at::Tensor>& beta, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                   bool ceil_mode, double eps);

template <PoolForward forward>
struct NamedPools {
  static at::Tensor empool(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p,
                           at::IntArrayRef d, bool ceil_mode) {
    return forward("poolswap::empool", kEM, x, c10::nullopt, k, s, p, d, ceil_mode, 0.0);
  }
  static at::Tensor edscwpool(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p,
                              at::IntArrayRef d, bool ceil_mode, double eps) {
    return forward("poolswap::edscwpool", kEDSCW, x, c10::nullopt, k, s, p, d, ceil_mode, eps);
  }
  static at::Tensor idwpool(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p,
                            at::IntArrayRef d, bool ceil_mode, double eps) {
    return forward("poolswap::idwpool", kIDW, x, c10::nullopt, k, s, p, d, ceil_mode, eps);
  }
  static at::Tensor adapool(const at::Tensor& x, const at::Tensor& beta, at::IntArrayRef k, at::IntArrayRef s,
                            at::IntArrayRef p, at::IntArrayRef d, bool ceil_mode, double eps) {
    return forward("poolswap::adapool", kADA, x, beta, k, s, p, d, ceil_mode, eps);
  }

  // Registers the four ops for the library fragment's dispatch key.
  static void impl(torch::Library& m) {
    m.impl("empool", &empool);
    m.impl("edscwpool", &edscwpool);
    m.impl("idwpool", &idwpool);
    m.impl("adapool", &adapool);
  }
};

}  // namespace poolswap
