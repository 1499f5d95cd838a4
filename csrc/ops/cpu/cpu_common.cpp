#include "cpu_common.h"

namespace poolswap {
namespace cpu {

namespace {

enum class Isa { kDefault, kAvx2, kAvx512 };

Isa best_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kDefault;
}

}  // namespace

template <>
const LaneKernels<float>& lane_kernels<float>() {
  static const LaneKernels<float> kernels = [] {
    switch (best_isa()) {
      case Isa::kAvx512: return lane_kernels_float_avx512();
      case Isa::kAvx2: return lane_kernels_float_avx2();
      default: return lane_kernels_float_default();
    }
  }();
  return kernels;
}

template <>
const LaneKernels<double>& lane_kernels<double>() {
  static const LaneKernels<double> kernels = [] {
    switch (best_isa()) {
      case Isa::kAvx512: return lane_kernels_double_avx512();
      case Isa::kAvx2: return lane_kernels_double_avx2();
      default: return lane_kernels_double_default();
    }
  }();
  return kernels;
}

WindowProblem make_problem(const PoolGeometry& g, const at::Tensor& x) {
  WindowProblem P;
  P.g = g;
  const auto format = g.nd == 3 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
  // Half-empty lanes waste more than the copy to NC(D)HW costs.
  P.channels_last = g.nd >= 2 && g.C >= kLanes / 2 && !x.is_contiguous() && x.is_contiguous(format);
  return P;
}

namespace {
at::MemoryFormat format_of(const WindowProblem& P) {
  if (!P.channels_last) return at::MemoryFormat::Contiguous;
  return P.g.nd == 3 ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::ChannelsLast;
}
}  // namespace

at::Tensor in_layout(const WindowProblem& P, const at::Tensor& t) { return t.contiguous(format_of(P)); }

at::Tensor empty_in_layout(const WindowProblem& P, at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options.memory_format(format_of(P)));
}

at::Tensor zeros_in_layout(const WindowProblem& P, at::IntArrayRef sizes, const at::TensorOptions& options) {
  // not at::zeros: its schema has no memory format, and the option would be dropped silently
  return empty_in_layout(P, sizes, options).zero_();
}

at::Tensor like_input(const at::Tensor& result, const at::Tensor& x) {
  return result.contiguous(x.suggest_memory_format());
}

}  // namespace cpu
}  // namespace poolswap
