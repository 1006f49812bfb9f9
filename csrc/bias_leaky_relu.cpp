// CPU host code and kernels of zoo::bias_leaky_relu.
//
// Forward: contiguous NCHW runs tasks of whole (n, c) planes, the bias a scalar per plane; channels-last and (N, C)
// inputs run over rows of C channels with the bias as a vector; without bias it is one flat elementwise pass.
// Backward: dx = dout * (out > 0 ? scale : scale * slope), with the bias gradient (sum of dx over all dims but 1)
// accumulated in the same pass (float lanes flushed into double). float16/bfloat16 go through float in chunks.
#include "bias_leaky_relu.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace zoo {
namespace {

constexpr int64_t kBlock = 4096;
constexpr int64_t kChunk = 2048;

#define ZOO_INLINE __attribute__((always_inline)) inline

template <typename T>
ZOO_INLINE void bias_act_impl(const T* __restrict__ x, T* __restrict__ out, int64_t n, T b, T slope, T scale) {
  for (int64_t i = 0; i < n; ++i) {
    const T y = x[i] + b;
    out[i] = leaky(y, slope) * scale;
  }
}

template <typename T>
ZOO_INLINE void rows_bias_act_impl(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t C,
                                   const T* __restrict__ b, T slope, T scale) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < C; ++j) {
      const T y = x[r * C + j] + b[j];
      out[r * C + j] = leaky(y, slope) * scale;
    }
  }
}

template <typename T>
ZOO_INLINE void grad_impl(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ gx, int64_t n, T pos,
                          T neg) {
  for (int64_t i = 0; i < n; ++i) gx[i] = g[i] * (o[i] > T(0) ? pos : neg);
}

template <typename T>
ZOO_INLINE void grad_sum_impl(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ gx, int64_t n, T pos,
                              T neg, double& sum) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> vpos = Vec64<T>{} + pos, vneg = Vec64<T>{} + neg, zero = {};
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    Vec64<T> s = {};
    int64_t i = start;
    for (; i + L <= end; i += L) {
      const Vec64<T> v = load64<T>(g + i) * (load64<T>(o + i) > zero ? vpos : vneg);
      std::memcpy(gx + i, &v, sizeof(v));
      s += v;
    }
    T st = lanes_sum<T>(s);
    for (; i < end; ++i) {
      const T v = g[i] * (o[i] > T(0) ? pos : neg);
      gx[i] = v;
      st += v;
    }
    total += st;
  }
  sum += total;
}

template <typename T>
ZOO_INLINE void rows_grad_sum_impl(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ gx, int64_t rows,
                                   int64_t C, T pos, T neg, T* __restrict__ s) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < C; ++j) {
      const T v = g[r * C + j] * (o[r * C + j] > T(0) ? pos : neg);
      gx[r * C + j] = v;
      s[j] += v;
    }
  }
}

// Planes [p0, p1) of S elements with bias[p % C] each, or their gradients with per-plane sums: several planes per
// ISA-dispatched call, so small planes (a few dozen elements) do not pay a dispatch and loop set-up each.
template <typename T>
ZOO_INLINE void planes_bias_act_impl(const T* __restrict__ x, T* __restrict__ out, int64_t p0, int64_t p1, int64_t S,
                                     int64_t C, const T* __restrict__ bias, T slope, T scale) {
  for (int64_t p = p0; p < p1; ++p) bias_act_impl<T>(x + p * S, out + p * S, S, bias[p % C], slope, scale);
}

template <typename T>
ZOO_INLINE void planes_grad_sum_impl(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ gx, int64_t p0,
                                     int64_t p1, int64_t S, T pos, T neg, double* __restrict__ sums) {
  for (int64_t p = p0; p < p1; ++p) {
    double s = 0;
    grad_sum_impl<T>(g + p * S, o + p * S, gx + p * S, S, pos, neg, s);
    sums[p] = s;
  }
}

#define ZOO_DEFINE_KERNELS(T)                                                                                  \
  ZOO_CLONES void planes_bias_act(const T* x, T* out, int64_t p0, int64_t p1, int64_t S, int64_t C, const T* b, \
                                  T slope, T scale) {                                                          \
    planes_bias_act_impl<T>(x, out, p0, p1, S, C, b, slope, scale);                                            \
  }                                                                                                            \
  ZOO_CLONES void planes_grad_sum(const T* g, const T* o, T* gx, int64_t p0, int64_t p1, int64_t S, T pos,      \
                                  T neg, double* sums) {                                                       \
    planes_grad_sum_impl<T>(g, o, gx, p0, p1, S, pos, neg, sums);                                              \
  }                                                                                                            \
  ZOO_CLONES void bias_act(const T* x, T* out, int64_t n, T b, T slope, T scale) {                             \
    bias_act_impl<T>(x, out, n, b, slope, scale);                                                              \
  }                                                                                                            \
  ZOO_CLONES void rows_bias_act(const T* x, T* out, int64_t rows, int64_t C, const T* b, T slope, T scale) {   \
    rows_bias_act_impl<T>(x, out, rows, C, b, slope, scale);                                                   \
  }                                                                                                            \
  ZOO_CLONES void grad(const T* g, const T* o, T* gx, int64_t n, T pos, T neg) {                               \
    grad_impl<T>(g, o, gx, n, pos, neg);                                                                       \
  }                                                                                                            \
  ZOO_CLONES void rows_grad_sum(const T* g, const T* o, T* gx, int64_t rows, int64_t C, T pos, T neg, T* s) {  \
    rows_grad_sum_impl<T>(g, o, gx, rows, C, pos, neg, s);                                                     \
  }

ZOO_DEFINE_KERNELS(float)
ZOO_DEFINE_KERNELS(double)
#undef ZOO_DEFINE_KERNELS

// One plane's gradient and sum in float: the float16 / bfloat16 path, converted in chunks.
ZOO_CLONES void grad_sum(const float* g, const float* o, float* gx, int64_t n, float pos, float neg, double& sum) {
  grad_sum_impl<float>(g, o, gx, n, pos, neg, sum);
}

// Runs f(x_chunk, out_chunk, len, offset) over [0, n) in opmath precision: directly for float/double, through
// float buffers of kChunk for float16/bfloat16. `in2` is a second input converted alongside (or nullptr).
template <typename scalar_t, typename F>
void in_opmath(const scalar_t* in1, const scalar_t* in2, scalar_t* out, int64_t n, F f) {
  using T = at::opmath_type<scalar_t>;
  if constexpr (!is_reduced<scalar_t>) {
    f(in1, in2, out, n, int64_t(0));
  } else {
    std::vector<T> a(std::min(kChunk, n)), b(in2 ? a.size() : 0), o(a.size());
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t len = std::min(kChunk, n - i);
      to_float(in1 + i, len, a.data());
      if (in2) to_float(in2 + i, len, b.data());
      f(a.data(), in2 ? b.data() : nullptr, o.data(), len, i);
      from_float(o.data(), len, out + i);
    }
  }
}

// Rows per parallel block for channels-last / (N, C): about 32K elements.
inline int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)); }

template <typename scalar_t>
void forward(const scalar_t* x, const scalar_t* bias, scalar_t* out, int64_t N, int64_t C, int64_t S, bool rows,
             double slope_d, double scale_d) {
  using T = at::opmath_type<scalar_t>;
  const T slope = static_cast<T>(slope_d), scale = static_cast<T>(scale_d);
  if (bias == nullptr) {
    at::parallel_for(0, N * C * S, 32768, [&](int64_t begin, int64_t end) {
      in_opmath<scalar_t>(x + begin, nullptr, out + begin, end - begin,
                          [&](const T* a, const T*, T* o, int64_t n, int64_t) { bias_act(a, o, n, T(0), slope, scale); });
    });
  } else if (!rows) {
    at::parallel_for(0, N * C, std::max<int64_t>(1, 32768 / S), [&](int64_t begin, int64_t end) {
      if constexpr (!is_reduced<scalar_t>) {
        planes_bias_act(x, out, begin, end, S, C, bias, slope, scale);
      } else {
        for (int64_t p = begin; p < end; ++p) {
          const T b = static_cast<T>(bias[p % C]);
          in_opmath<scalar_t>(x + p * S, nullptr, out + p * S, S, [&](const T* a, const T*, T* o, int64_t n, int64_t) {
            bias_act(a, o, n, b, slope, scale);
          });
        }
      }
    });
  } else {
    std::vector<T> bvec(C);
    for (int64_t j = 0; j < C; ++j) bvec[j] = static_cast<T>(bias[j]);
    at::parallel_for(0, N * S, row_grain(C), [&](int64_t begin, int64_t end) {
      if constexpr (!is_reduced<scalar_t>) {
        rows_bias_act(x + begin * C, out + begin * C, end - begin, C, bvec.data(), slope, scale);
      } else {
        std::vector<T> a(C), o(C);
        for (int64_t r = begin; r < end; ++r) {
          to_float(x + r * C, C, a.data());
          rows_bias_act(a.data(), o.data(), 1, C, bvec.data(), slope, scale);
          from_float(o.data(), C, out + r * C);
        }
      }
    });
  }
}

template <typename scalar_t>
void backward(const scalar_t* g, const scalar_t* o, scalar_t* gx, double* bias_sums, int64_t N, int64_t C,
              int64_t S, bool rows, double slope_d, double scale_d) {
  using T = at::opmath_type<scalar_t>;
  const T pos = static_cast<T>(scale_d), neg = static_cast<T>(scale_d * slope_d);
  if (bias_sums == nullptr) {
    at::parallel_for(0, N * C * S, 32768, [&](int64_t begin, int64_t end) {
      in_opmath<scalar_t>(g + begin, o + begin, gx + begin, end - begin,
                          [&](const T* a, const T* b, T* r, int64_t n, int64_t) { grad(a, b, r, n, pos, neg); });
    });
  } else if (!rows) {  // per-plane sums into bias_sums[N * C]
    at::parallel_for(0, N * C, std::max<int64_t>(1, 32768 / S), [&](int64_t begin, int64_t end) {
      if constexpr (!is_reduced<scalar_t>) {
        planes_grad_sum(g, o, gx, begin, end, S, pos, neg, bias_sums);
      } else {
        for (int64_t p = begin; p < end; ++p) {
          double s = 0;
          in_opmath<scalar_t>(g + p * S, o + p * S, gx + p * S, S, [&](const T* a, const T* b, T* r, int64_t n,
                                                                       int64_t) { grad_sum(a, b, r, n, pos, neg, s); });
          bias_sums[p] = s;
        }
      }
    });
  } else {  // fixed row blocks (deterministic for any thread count) with per-block channel sums
    const int64_t R = N * S, per = row_grain(C), nblk = (R + per - 1) / per;
    at::parallel_for(0, nblk, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> s(C), a(is_reduced<scalar_t> ? C : 0), b(a.size()), r(a.size());
      for (int64_t k = begin; k < end; ++k) {
        std::fill(s.begin(), s.end(), T(0));
        double* out_sums = bias_sums + k * C;
        for (int64_t r0 = k * per; r0 < std::min(R, (k + 1) * per); ++r0) {
          if constexpr (!is_reduced<scalar_t>) {
            rows_grad_sum(g + r0 * C, o + r0 * C, gx + r0 * C, 1, C, pos, neg, s.data());
          } else {
            to_float(g + r0 * C, C, a.data());
            to_float(o + r0 * C, C, b.data());
            rows_grad_sum(a.data(), b.data(), r.data(), 1, C, pos, neg, s.data());
            from_float(r.data(), C, gx + r0 * C);
          }
          if ((r0 + 1) % 256 == 0) {  // flush float lanes into double
            for (int64_t j = 0; j < C; ++j) out_sums[j] += s[j];
            std::fill(s.begin(), s.end(), T(0));
          }
        }
        for (int64_t j = 0; j < C; ++j) out_sums[j] += s[j];
      }
    });
  }
}

}  // namespace

void check_bias_leaky_relu_args(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                                double scale) {
  const char* op = "zoo::bias_leaky_relu";
  check_input(x, op, has(bias) ? 2 : 0);
  check_channel_param(bias, "bias", x, op);
  TORCH_CHECK(negative_slope >= 0 && std::isfinite(negative_slope), op,
              ": negative_slope must be a finite number >= 0, got ", negative_slope);
  TORCH_CHECK(scale > 0 && std::isfinite(scale), op, ": scale must be a finite number > 0, got ", scale);
}

void check_bias_leaky_relu_backward_args(const at::Tensor& grad_out, const at::Tensor& out, double negative_slope,
                                         double scale, bool bias_grad) {
  const char* op = "zoo::bias_leaky_relu_backward";
  check_input(out, op, bias_grad ? 2 : 0);
  check_same(grad_out, "grad_out", out, op);
  TORCH_CHECK(negative_slope >= 0 && std::isfinite(negative_slope), op,
              ": negative_slope must be a finite number >= 0, got ", negative_slope);
  TORCH_CHECK(scale > 0 && std::isfinite(scale), op, ": scale must be a finite number > 0, got ", scale);
}

// (N, C, S) sizes of x viewed as channels on dim 1; N = numel, C = S = 1 without a channel dim.
static void ncs(const at::Tensor& x, int64_t& N, int64_t& C, int64_t& S) {
  if (x.dim() < 2) {
    N = x.numel(), C = 1, S = 1;
    return;
  }
  N = x.size(0), C = x.size(1);
  S = N * C == 0 ? 0 : x.numel() / (N * C);
}

at::Tensor bias_leaky_relu_cpu(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                               double scale) {
  check_bias_leaky_relu_args(x, bias, negative_slope, scale);
  TORCH_CHECK(x.device().is_cpu(), "zoo::bias_leaky_relu (CPU kernel): x must be on the CPU, got ", x.device());
  const auto fmt = op_layout(x);
  const at::Tensor xc = x.contiguous(fmt);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(fmt));
  if (x.numel() == 0) return out;
  int64_t N, C, S;
  ncs(x, N, C, S);
  const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
  const bool rows = fmt != at::MemoryFormat::Contiguous || S == 1;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::bias_leaky_relu", [&] {
    forward<scalar_t>(xc.const_data_ptr<scalar_t>(), b.defined() ? b.const_data_ptr<scalar_t>() : nullptr,
                      out.mutable_data_ptr<scalar_t>(), N, C, S, rows, negative_slope, scale);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cpu(const at::Tensor& grad_out, const at::Tensor& out,
                                                                double negative_slope, double scale, bool bias_grad) {
  check_bias_leaky_relu_backward_args(grad_out, out, negative_slope, scale, bias_grad);
  TORCH_CHECK(out.device().is_cpu(), "zoo::bias_leaky_relu_backward (CPU kernel): out must be on the CPU, got ",
              out.device());
  const auto fmt = op_layout(out);
  const at::Tensor oc = out.contiguous(fmt), gc = grad_out.contiguous(fmt);
  at::Tensor grad_x = at::empty(out.sizes(), out.options().memory_format(fmt));
  int64_t N, C, S;
  ncs(out, N, C, S);
  const bool rows = fmt != at::MemoryFormat::Contiguous || S == 1;
  at::Tensor sums;
  if (bias_grad) {
    const int64_t blocks = rows ? (N * S + row_grain(C) - 1) / row_grain(C) : N;
    sums = at::zeros({blocks, C}, out.options().dtype(at::kDouble));
  }
  if (out.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "zoo::bias_leaky_relu_backward",
                                    [&] {
      backward<scalar_t>(gc.const_data_ptr<scalar_t>(), oc.const_data_ptr<scalar_t>(),
                         grad_x.mutable_data_ptr<scalar_t>(), bias_grad ? sums.mutable_data_ptr<double>() : nullptr,
                         N, C, S, rows, negative_slope, scale);
    });
  }
  at::Tensor grad_b = bias_grad ? sums.sum(0).to(out.scalar_type()) : at::empty({0}, out.options());
  return {grad_x, grad_b};
}

}  // namespace zoo
