// Shared helpers of the zoo fused ops: layout rule, argument checks, CPU ISA dispatch.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <optional>

namespace zoo {

// The layout an op computes in and returns: channels_last(_3d) for a dense channels-last input, else contiguous.
// Mirrors zoo/ops/reference.py:output_format (the fake kernels use that one), so eager and compiled agree.
inline at::MemoryFormat op_layout(const at::Tensor& x) {
  if (x.is_contiguous()) return at::MemoryFormat::Contiguous;
  if (x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast)) return at::MemoryFormat::ChannelsLast;
  if (x.dim() == 5 && x.is_contiguous(at::MemoryFormat::ChannelsLast3d)) return at::MemoryFormat::ChannelsLast3d;
  return at::MemoryFormat::Contiguous;
}

inline bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// float for float/half/bfloat16, double for double: the dtype statistics are kept in.
inline at::ScalarType opmath_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_input(const at::Tensor& x, const char* op, int64_t min_dim) {
  TORCH_CHECK(is_float_dtype(x.scalar_type()), op, ": x must be float16, bfloat16, float32 or float64, got ",
              x.scalar_type());
  TORCH_CHECK(x.dim() >= min_dim, op, ": x must have at least ", min_dim, " dims (N, C, ...), got shape ",
              x.sizes());
}

// weight/bias: none, or shape (C,) with x's dtype and device.
inline void check_channel_param(const std::optional<at::Tensor>& t, const char* name, const at::Tensor& x,
                                const char* op) {
  if (!t.has_value() || !t->defined()) return;
  TORCH_CHECK(x.dim() >= 2, op, ": ", name, " needs x with a channel dim, got shape ", x.sizes());
  TORCH_CHECK(t->dim() == 1 && t->size(0) == x.size(1), op, ": ", name, " must have shape (", x.size(1),
              ",), got ", t->sizes());
  TORCH_CHECK(t->scalar_type() == x.scalar_type(), op, ": ", name, " must have x's dtype ", x.scalar_type(),
              ", got ", t->scalar_type());
  TORCH_CHECK(t->device() == x.device(), op, ": ", name, " is on ", t->device(), " but x is on ", x.device());
}

inline void check_same(const at::Tensor& a, const char* name, const at::Tensor& x, const char* op) {
  TORCH_CHECK(a.sizes() == x.sizes(), op, ": ", name, " must have shape ", x.sizes(), ", got ", a.sizes());
  TORCH_CHECK(a.scalar_type() == x.scalar_type(), op, ": ", name, " must have dtype ", x.scalar_type(), ", got ",
              a.scalar_type());
  TORCH_CHECK(a.device() == x.device(), op, ": ", name, " is on ", a.device(), " but x is on ", x.device());
}

inline bool has(const std::optional<at::Tensor>& t) { return t.has_value() && t->defined(); }

// LeakyReLU without a branch (max/min vectorise on every ISA); NaN stays NaN, and -inf * 0 is NaN as in PyTorch.
template <typename T>
inline T leaky(T y, T slope) {
  return std::max(y, T(0)) + slope * std::min(y, T(0));
}

}  // namespace zoo

#if !defined(__CUDACC__)
#include <ATen/OpMathType.h>

#include <cstring>
#include <type_traits>

#define ZOO_CPU_INLINE __attribute__((always_inline)) inline

namespace zoo {
// 64-byte vectors (GCC/Clang vector extension): one zmm in the AVX-512 clone, two ymm / four xmm elsewhere. The
// reductions are written on them explicitly because the compiler may not reorder a scalar sum into lanes itself.
template <typename T>
struct Vec64Of;
template <>
struct Vec64Of<float> {
  typedef float type __attribute__((vector_size(64)));
};
template <>
struct Vec64Of<double> {
  typedef double type __attribute__((vector_size(64)));
};
template <typename T>
using Vec64 = typename Vec64Of<T>::type;

template <typename T>
ZOO_CPU_INLINE Vec64<T> load64(const T* p) {
  Vec64<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
ZOO_CPU_INLINE void store64(T* p, Vec64<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

// leaky() on 64-byte vectors, lane for lane the same (std::max / std::min select exactly like these, NaN included).
template <typename T>
ZOO_CPU_INLINE Vec64<T> leaky64(Vec64<T> y, Vec64<T> slope) {
  const Vec64<T> zero = {};
  return (y < zero ? zero : y) + slope * (zero < y ? zero : y);
}

// Sum of the lanes as a tree (halves added as vectors, then the last 16 bytes): a short dependency chain, which
// matters for small planes whose reductions are latency bound.
template <typename T>
ZOO_CPU_INLINE T lanes_sum(Vec64<T> v) {
  typedef T Vec32 __attribute__((vector_size(32)));
  typedef T Vec16 __attribute__((vector_size(16)));
  Vec32 h[2];
  std::memcpy(h, &v, sizeof(v));
  const Vec32 v32 = h[0] + h[1];
  Vec16 q[2];
  std::memcpy(q, &v32, sizeof(v32));
  const Vec16 v16 = q[0] + q[1];
  T total = v16[0];
  for (int j = 1; j < static_cast<int>(16 / sizeof(T)); ++j) total += v16[j];
  return total;
}

// float16 / bfloat16 inputs are computed in float: `is_reduced` says which dtypes take that path, and
// to_float / from_float convert n contiguous elements.
template <typename scalar_t>
constexpr bool is_reduced = !std::is_same_v<scalar_t, at::opmath_type<scalar_t>>;

template <typename scalar_t>
void to_float(const scalar_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

template <typename scalar_t>
void from_float(const float* src, int64_t n, scalar_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<scalar_t>(src[i]);
}

}  // namespace zoo
#endif

// Hot CPU loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time by CPU features (GCC
// ifunc; features, not CPU model names, so AMD and Intel alike get the wide clones), so one binary, built ahead of
// time or just in time, runs everywhere and still vectorises wide.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__CUDACC__)
#define ZOO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ZOO_CLONES
#endif
