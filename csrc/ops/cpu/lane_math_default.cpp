// Lane math build for the default instruction set (see lane_math.h). Standard headers come first so that
// only our own (anonymous-namespace) code is compiled for the target below.
#include <cmath>
#include <cstdint>
#include <limits>


#include "lane_math.h"

namespace poolswap {
namespace cpu {

LaneKernels<float> lane_kernels_float_default() { return lane_kernels_here<float>(); }
LaneKernels<double> lane_kernels_double_default() { return lane_kernels_here<double>(); }

}  // namespace cpu
}  // namespace poolswap
