// Lane math build for the avx512 instruction set (see lane_math.h). Standard headers come first so that
// only our own (anonymous-namespace) code is compiled for the target below.
#include <cmath>
#include <cstdint>
#include <limits>

#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#include "lane_math.h"

namespace poolswap {
namespace cpu {

LaneKernels<float> lane_kernels_float_avx512() { return lane_kernels_here<float>(); }
LaneKernels<double> lane_kernels_double_avx512() { return lane_kernels_here<double>(); }

}  // namespace cpu
}  // namespace poolswap
