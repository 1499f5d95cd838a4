#include "geometry.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace poolswap {

namespace {

int64_t at_or(c10::IntArrayRef values, int i, int64_t fallback) { return values.empty() ? fallback : values[i]; }

}  // namespace

std::vector<int64_t> PoolGeometry::out_sizes() const {
  std::vector<int64_t> sizes{N, C};
  for (int i = 3 - nd; i < 3; ++i) sizes.push_back(ax[i].out);
  return sizes;
}

std::vector<int64_t> PoolGeometry::in_sizes() const {
  std::vector<int64_t> sizes{N, C};
  for (int i = 3 - nd; i < 3; ++i) sizes.push_back(ax[i].in);
  return sizes;
}

PoolGeometry make_geometry(const char* op, const at::Tensor& x, c10::IntArrayRef kernel_size,
                           c10::IntArrayRef stride, c10::IntArrayRef padding, c10::IntArrayRef dilation,
                           bool ceil_mode) {
  const int64_t nd = static_cast<int64_t>(kernel_size.size());
  TORCH_CHECK(nd >= 1 && nd <= 3, op, ": kernel_size must have 1, 2 or 3 elements, got ", kernel_size);
  TORCH_CHECK(x.dim() == nd + 2, op, ": x must have shape (N, C, *spatial) with ", nd,
              " spatial dims for a kernel_size of ", nd, " elements, got x of shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": x must be a floating point tensor, got ",
              x.scalar_type());
  TORCH_CHECK(stride.empty() || static_cast<int64_t>(stride.size()) == nd, op, ": stride must have ", nd,
              " elements (or be empty for stride = kernel_size), got ", stride);
  TORCH_CHECK(static_cast<int64_t>(padding.size()) == nd, op, ": padding must have ", nd, " elements, got ",
              padding);
  TORCH_CHECK(static_cast<int64_t>(dilation.size()) == nd, op, ": dilation must have ", nd,
              " elements, got ", dilation);
  PoolGeometry g;
  g.nd = static_cast<int>(nd);
  g.N = x.size(0);
  g.C = x.size(1);
  for (int i = 0; i < 3; ++i) g.ax[i] = Axis{1, 1, 1, 1, 0, 1};
  for (int i = 0; i < nd; ++i) {
    Axis& a = g.ax[3 - nd + i];
    a.in = x.size(2 + i);
    TORCH_CHECK(a.in >= 1, op, ": x must have non-empty spatial dims, got shape ", x.sizes());
    a.k = kernel_size[i];
    a.s = at_or(stride, i, a.k);
    a.p = padding[i];
    a.d = dilation[i];
    TORCH_CHECK(a.k >= 1, op, ": kernel_size must be positive, got ", kernel_size);
    TORCH_CHECK(a.s >= 1, op, ": stride must be positive, got ", stride);
    TORCH_CHECK(a.d >= 1, op, ": dilation must be positive, got ", dilation);
    TORCH_CHECK(a.p >= 0 && a.p <= a.k / 2, op,
                ": padding must be non-negative and at most half of kernel_size, got padding ", padding,
                " for kernel_size ", kernel_size);
    a.out = pooled_length(a.in, a.k, a.s, a.p, a.d, ceil_mode);
    TORCH_CHECK(a.out >= 1, op, ": kernel_size ", kernel_size, " with dilation ", dilation, " and padding ",
                padding, " is larger than the padded input of spatial size ", x.sizes().slice(2),
                " (output size would be ", a.out, ")");
  }
  return g;
}

at::Tensor expand_beta(const char* op, const at::Tensor& beta, const at::Tensor& x, const PoolGeometry& g,
                       at::ScalarType dtype) {
  TORCH_CHECK(at::isFloatingType(beta.scalar_type()), op, ": beta must be a floating point tensor, got ",
              beta.scalar_type());
  TORCH_CHECK(beta.device() == x.device(), op, ": beta is on ", beta.device(), " but x is on ", x.device());
  std::vector<int64_t> target = g.out_sizes();
  target.erase(target.begin());  // (C, *out)
  bool ok = beta.dim() <= static_cast<int64_t>(target.size());
  for (int64_t i = 1; ok && i <= beta.dim(); ++i) {
    const int64_t b = beta.size(-i), t = target[target.size() - i];
    ok = b == 1 || b == t;
  }
  TORCH_CHECK(ok, op, ": beta of shape ", beta.sizes(), " does not broadcast to (C, *output) = ",
              c10::IntArrayRef(target), " (use a spatial mask of the output size, a (C, 1, ...) channel mask ",
              "or a scalar)");
  return beta.to(dtype).contiguous().expand(target);
}

void check_pooled_shape(const char* op, const char* name, const at::Tensor& tensor, const at::Tensor& x,
                        const PoolGeometry& g) {
  TORCH_CHECK(tensor.device() == x.device(), op, ": ", name, " is on ", tensor.device(), " but x is on ",
              x.device());
  TORCH_CHECK(tensor.scalar_type() == x.scalar_type(), op, ": ", name, " has dtype ", tensor.scalar_type(),
              " but x has dtype ", x.scalar_type());
  const std::vector<int64_t> expected = g.out_sizes();
  TORCH_CHECK(tensor.sizes() == c10::IntArrayRef(expected), op, ": ", name, " must have the pooled shape ",
              c10::IntArrayRef(expected), " of x under this geometry, got ", tensor.sizes());
}

at::Tensor reduce_to_beta(const at::Tensor& grad_full, const at::Tensor& beta) {
  return at::sum_to(grad_full.sum(0), beta.sizes()).to(beta.scalar_type()).contiguous();
}

void beta_strides(const at::Tensor& beta_expanded, const PoolGeometry& g, int64_t out[4]) {
  out[0] = beta_expanded.stride(0);
  for (int i = 0; i < 3; ++i) {
    const int dim = i - (3 - g.nd);  // spatial index of padded axis i, or negative if unused
    out[1 + i] = dim >= 0 ? beta_expanded.stride(1 + dim) : 0;
  }
}

bool parse_normalize(const char* op, c10::string_view normalize) {
  TORCH_CHECK(normalize == "mean" || normalize == "mass", op,
              ": normalize must be \"mean\" or \"mass\", got \"", std::string(normalize), "\"");
  return normalize == "mean";
}

}  // namespace poolswap
