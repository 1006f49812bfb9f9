// CPU host code and kernels of zoo::instance_norm_act.
//
// Contiguous NCHW: one task per (n, c) plane. Statistics in one pass with shifted sums (pivot = the plane's first
// element, so no catastrophic cancellation), float lanes flushed into double every kBlock elements; then the
// normalise + affine + LeakyReLU pass while the plane is still in cache. Channels-last (N, S, C): one task per
// (n, block of channels), the same sums kept per channel across rows. Backward: one pass for the two per-plane
// sums (sum dy, sum dy * (x - mean)), one pass writing dx; grad weight / bias are those sums reduced over N.
// float16 / bfloat16 are converted to float in small chunks; all arithmetic is float (double for double).
#include "instance_norm_act.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace zoo {
namespace {

constexpr int64_t kBlock = 4096;  // contiguous elements summed in float lanes before flushing into double
constexpr int64_t kChunk = 2048;  // float16/bfloat16 elements converted to float at a time
constexpr int64_t kRows = 128;    // channels-last rows per block (flush / conversion unit)
constexpr int64_t kChannelBlock = 64;

#define ZOO_INLINE __attribute__((always_inline)) inline

// ---------------------------------------------------------------- contiguous planes

template <typename T>
ZOO_INLINE void plane_sums_impl(const T* __restrict__ x, int64_t n, T pivot, double& out_s, double& out_ss) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> p = Vec64<T>{} + pivot;
  double S = 0, SS = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    Vec64<T> s = {}, ss = {};
    int64_t i = start;
    for (; i + L <= end; i += L) {
      const Vec64<T> d = load64<T>(x + i) - p;
      s += d;
      ss += d * d;
    }
    T st = lanes_sum<T>(s), sst = lanes_sum<T>(ss);
    for (; i < end; ++i) {
      const T d = x[i] - pivot;
      st += d;
      sst += d * d;
    }
    S += st;
    SS += sst;
  }
  out_s += S;
  out_ss += SS;
}

template <typename T>
ZOO_INLINE void plane_apply_impl(const T* __restrict__ x, T* __restrict__ out, int64_t n, T mean, T a, T b, T slope) {
  for (int64_t i = 0; i < n; ++i) {
    const T y = (x[i] - mean) * a + b;
    out[i] = leaky(y, slope);
  }
}

template <typename T>
ZOO_INLINE void plane_bwd_sums_impl(const T* __restrict__ g, const T* __restrict__ x, int64_t n, T mean, T a, T b,
                                    T slope, double& out_sg, double& out_sgx) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> vm = Vec64<T>{} + mean, va = Vec64<T>{} + a, vb = Vec64<T>{} + b, zero = {};
  const Vec64<T> one = Vec64<T>{} + T(1), vslope = Vec64<T>{} + slope;
  double SG = 0, SGX = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    Vec64<T> sg = {}, sgx = {};
    int64_t i = start;
    for (; i + L <= end; i += L) {
      const Vec64<T> xc = load64<T>(x + i) - vm;
      const Vec64<T> y = xc * va + vb;
      const Vec64<T> gy = load64<T>(g + i) * (y > zero ? one : vslope);
      sg += gy;
      sgx += gy * xc;
    }
    T st = lanes_sum<T>(sg), sxt = lanes_sum<T>(sgx);
    for (; i < end; ++i) {
      const T xc = x[i] - mean;
      const T y = xc * a + b;
      const T gy = g[i] * (y > T(0) ? T(1) : slope);
      st += gy;
      sxt += gy * xc;
    }
    SG += st;
    SGX += sxt;
  }
  out_sg += SG;
  out_sgx += SGX;
}

template <typename T>
ZOO_INLINE void plane_bwd_apply_impl(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx, int64_t n,
                                     T mean, T a, T b, T slope, T A, T B, T C) {
  for (int64_t i = 0; i < n; ++i) {
    const T xc = x[i] - mean;
    const T y = xc * a + b;
    const T gy = g[i] * (y > T(0) ? T(1) : slope);
    gx[i] = A * (gy - C) + B * xc;
  }
}

// ---------------------------------------------------------------- channels-last rows (stride between rows)

template <typename T>
ZOO_INLINE void rows_sums_impl(const T* __restrict__ x, int64_t rows, int64_t stride, int64_t cb,
                               const T* __restrict__ pivot, T* __restrict__ s, T* __restrict__ ss) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * stride;
    for (int64_t j = 0; j < cb; ++j) {
      const T d = row[j] - pivot[j];
      s[j] += d;
      ss[j] += d * d;
    }
  }
}

template <typename T>
ZOO_INLINE void rows_apply_impl(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t xstride,
                                int64_t ostride, int64_t cb, const T* __restrict__ mean, const T* __restrict__ a,
                                const T* __restrict__ b, T slope) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * xstride;
    T* orow = out + r * ostride;
    for (int64_t j = 0; j < cb; ++j) {
      const T y = (row[j] - mean[j]) * a[j] + b[j];
      orow[j] = leaky(y, slope);
    }
  }
}

template <typename T>
ZOO_INLINE void rows_bwd_sums_impl(const T* __restrict__ g, const T* __restrict__ x, int64_t rows, int64_t stride,
                                   int64_t cb, const T* __restrict__ mean, const T* __restrict__ a,
                                   const T* __restrict__ b, T slope, T* __restrict__ sg, T* __restrict__ sgx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* grow = g + r * stride;
    const T* xrow = x + r * stride;
    for (int64_t j = 0; j < cb; ++j) {
      const T xc = xrow[j] - mean[j];
      const T y = xc * a[j] + b[j];
      const T gy = grow[j] * (y > T(0) ? T(1) : slope);
      sg[j] += gy;
      sgx[j] += gy * xc;
    }
  }
}

template <typename T>
ZOO_INLINE void rows_bwd_apply_impl(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx,
                                    int64_t rows, int64_t istride, int64_t ostride, int64_t cb,
                                    const T* __restrict__ mean, const T* __restrict__ a, const T* __restrict__ b,
                                    T slope, const T* __restrict__ A, const T* __restrict__ B,
                                    const T* __restrict__ C) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* grow = g + r * istride;
    const T* xrow = x + r * istride;
    T* orow = gx + r * ostride;
    for (int64_t j = 0; j < cb; ++j) {
      const T xc = xrow[j] - mean[j];
      const T y = xc * a[j] + b[j];
      const T gy = grow[j] * (y > T(0) ? T(1) : slope);
      orow[j] = A[j] * (gy - C[j]) + B[j] * xc;
    }
  }
}

// ISA-dispatched entry points (one clone per ISA, chosen at load time), for float and double.
#define ZOO_DEFINE_KERNELS(T)                                                                                     \
  ZOO_CLONES void plane_sums(const T* x, int64_t n, T pivot, double& s, double& ss) {                             \
    plane_sums_impl<T>(x, n, pivot, s, ss);                                                                       \
  }                                                                                                               \
  ZOO_CLONES void plane_apply(const T* x, T* out, int64_t n, T mean, T a, T b, T slope) {                         \
    plane_apply_impl<T>(x, out, n, mean, a, b, slope);                                                            \
  }                                                                                                               \
  ZOO_CLONES void plane_bwd_sums(const T* g, const T* x, int64_t n, T mean, T a, T b, T slope, double& sg,        \
                                 double& sgx) {                                                                   \
    plane_bwd_sums_impl<T>(g, x, n, mean, a, b, slope, sg, sgx);                                                  \
  }                                                                                                               \
  ZOO_CLONES void plane_bwd_apply(const T* g, const T* x, T* gx, int64_t n, T mean, T a, T b, T slope, T A, T B,  \
                                  T C) {                                                                          \
    plane_bwd_apply_impl<T>(g, x, gx, n, mean, a, b, slope, A, B, C);                                             \
  }                                                                                                               \
  ZOO_CLONES void rows_sums(const T* x, int64_t rows, int64_t stride, int64_t cb, const T* pivot, T* s, T* ss) {  \
    rows_sums_impl<T>(x, rows, stride, cb, pivot, s, ss);                                                         \
  }                                                                                                               \
  ZOO_CLONES void rows_apply(const T* x, T* out, int64_t rows, int64_t xs, int64_t os, int64_t cb, const T* mean, \
                             const T* a, const T* b, T slope) {                                                   \
    rows_apply_impl<T>(x, out, rows, xs, os, cb, mean, a, b, slope);                                              \
  }                                                                                                               \
  ZOO_CLONES void rows_bwd_sums(const T* g, const T* x, int64_t rows, int64_t stride, int64_t cb, const T* mean,  \
                                const T* a, const T* b, T slope, T* sg, T* sgx) {                                 \
    rows_bwd_sums_impl<T>(g, x, rows, stride, cb, mean, a, b, slope, sg, sgx);                                    \
  }                                                                                                               \
  ZOO_CLONES void rows_bwd_apply(const T* g, const T* x, T* gx, int64_t rows, int64_t is, int64_t os, int64_t cb, \
                                 const T* mean, const T* a, const T* b, T slope, const T* A, const T* B,          \
                                 const T* C) {                                                                    \
    rows_bwd_apply_impl<T>(g, x, gx, rows, is, os, cb, mean, a, b, slope, A, B, C);                               \
  }

ZOO_DEFINE_KERNELS(float)
ZOO_DEFINE_KERNELS(double)
#undef ZOO_DEFINE_KERNELS

// float16 / bfloat16 <-> float conversion of a strided block of rows into a dense (rows, cb) buffer.
template <typename scalar_t>
void to_float(const scalar_t* src, int64_t rows, int64_t stride, int64_t cb, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cb; ++j) dst[r * cb + j] = static_cast<float>(src[r * stride + j]);
}
template <typename scalar_t>
void from_float(const float* src, int64_t rows, int64_t cb, scalar_t* dst, int64_t stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cb; ++j) dst[r * stride + j] = static_cast<scalar_t>(src[r * cb + j]);
}

template <typename scalar_t>
constexpr bool is_reduced = !std::is_same_v<scalar_t, at::opmath_type<scalar_t>>;

// Mean and rstd of a plane from shifted sums around `pivot`.
inline void finish_stats(double s, double ss, double pivot, int64_t n, double eps, double& mean, double& rstd) {
  const double m = s / static_cast<double>(n);
  double var = ss / static_cast<double>(n) - m * m;
  var = var < 0 ? 0 : var;  // keeps NaN (a NaN compares false)
  mean = pivot + m;
  rstd = 1.0 / std::sqrt(var + eps);
}

// ---------------------------------------------------------------- forward drivers

template <typename scalar_t>
void forward_planes(const scalar_t* x, scalar_t* out, at::opmath_type<scalar_t>* mean_out,
                    at::opmath_type<scalar_t>* rstd_out, const scalar_t* w, const scalar_t* b, int64_t N, int64_t C,
                    int64_t M, double eps, double slope) {
  using T = at::opmath_type<scalar_t>;
  const int64_t grain = std::max<int64_t>(1, 32768 / M);
  at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> xb(is_reduced<scalar_t> ? kChunk : 0), ob(is_reduced<scalar_t> ? kChunk : 0);
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t* xp = x + p * M;
      scalar_t* op = out + p * M;
      const int64_t c = p % C;
      const T pivot = static_cast<T>(xp[0]);
      double s = 0, ss = 0, mean, rstd;
      if constexpr (is_reduced<scalar_t>) {
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(xp + i, 1, 0, len, xb.data());
          plane_sums(xb.data(), len, pivot, s, ss);
        }
      } else {
        plane_sums(xp, M, pivot, s, ss);
      }
      finish_stats(s, ss, pivot, M, eps, mean, rstd);
      mean_out[p] = static_cast<T>(mean);
      rstd_out[p] = static_cast<T>(rstd);
      const T a = static_cast<T>(rstd) * (w ? static_cast<T>(w[c]) : T(1));
      const T bb = b ? static_cast<T>(b[c]) : T(0);
      if constexpr (is_reduced<scalar_t>) {
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(xp + i, 1, 0, len, xb.data());
          plane_apply(xb.data(), ob.data(), len, static_cast<T>(mean), a, bb, static_cast<T>(slope));
          from_float(ob.data(), 1, len, op + i, 0);
        }
      } else {
        plane_apply(xp, op, M, static_cast<T>(mean), a, bb, static_cast<T>(slope));
      }
    }
  });
}

template <typename scalar_t>
void forward_rows(const scalar_t* x, scalar_t* out, at::opmath_type<scalar_t>* mean_out,
                  at::opmath_type<scalar_t>* rstd_out, const scalar_t* w, const scalar_t* b, int64_t N, int64_t C,
                  int64_t S, double eps, double slope) {
  using T = at::opmath_type<scalar_t>;
  const int64_t nblk = (C + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, N * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> pivot(kChannelBlock), s(kChannelBlock), ss(kChannelBlock), mean(kChannelBlock),
        a(kChannelBlock), bb(kChannelBlock);
    std::vector<double> S1(kChannelBlock), S2(kChannelBlock);
    std::vector<T> xb(is_reduced<scalar_t> ? kRows * kChannelBlock : 0), ob(xb.size());
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / nblk, c0 = (t % nblk) * kChannelBlock, cb = std::min(kChannelBlock, C - c0);
      const scalar_t* base = x + n * S * C + c0;
      scalar_t* obase = out + n * S * C + c0;
      for (int64_t j = 0; j < cb; ++j) pivot[j] = static_cast<T>(base[j]);
      std::fill(S1.begin(), S1.end(), 0.0);
      std::fill(S2.begin(), S2.end(), 0.0);
      for (int64_t r = 0; r < S; r += kRows) {
        const int64_t rows = std::min(kRows, S - r);
        std::fill(s.begin(), s.end(), T(0));
        std::fill(ss.begin(), ss.end(), T(0));
        if constexpr (is_reduced<scalar_t>) {
          to_float(base + r * C, rows, C, cb, xb.data());
          rows_sums(xb.data(), rows, cb, cb, pivot.data(), s.data(), ss.data());
        } else {
          rows_sums(base + r * C, rows, C, cb, pivot.data(), s.data(), ss.data());
        }
        for (int64_t j = 0; j < cb; ++j) {
          S1[j] += s[j];
          S2[j] += ss[j];
        }
      }
      for (int64_t j = 0; j < cb; ++j) {
        double m, rs;
        finish_stats(S1[j], S2[j], pivot[j], S, eps, m, rs);
        mean[j] = static_cast<T>(m);
        mean_out[n * C + c0 + j] = static_cast<T>(m);
        rstd_out[n * C + c0 + j] = static_cast<T>(rs);
        a[j] = static_cast<T>(rs) * (w ? static_cast<T>(w[c0 + j]) : T(1));
        bb[j] = b ? static_cast<T>(b[c0 + j]) : T(0);
      }
      for (int64_t r = 0; r < S; r += kRows) {
        const int64_t rows = std::min(kRows, S - r);
        if constexpr (is_reduced<scalar_t>) {
          to_float(base + r * C, rows, C, cb, xb.data());
          rows_apply(xb.data(), ob.data(), rows, cb, cb, cb, mean.data(), a.data(), bb.data(), T(slope));
          from_float(ob.data(), rows, cb, obase + r * C, C);
        } else {
          rows_apply(base + r * C, obase + r * C, rows, C, C, cb, mean.data(), a.data(), bb.data(), T(slope));
        }
      }
    }
  });
}

// ---------------------------------------------------------------- backward drivers
// Per plane p = (n, c): sg[p] = sum dy, sgx[p] = sum dy * (x - mean) with dy = dout * LeakyReLU'(y); then
// dx = A (dy - C) + B (x - mean) with A = rstd w, B = -rstd^3 w sgx / M, C = sg / M (the mean of dy).

template <typename T>
inline void bwd_coeffs(double sg, double sgx, double rstd, double w, int64_t M, T& A, T& B, T& C) {
  const double a = rstd * w;
  A = static_cast<T>(a);
  B = static_cast<T>(-a * rstd * rstd * sgx / static_cast<double>(M));
  C = static_cast<T>(sg / static_cast<double>(M));
}

template <typename scalar_t>
void backward_planes(const scalar_t* g, const scalar_t* x, scalar_t* gx, const at::opmath_type<scalar_t>* mean_in,
                     const at::opmath_type<scalar_t>* rstd_in, const scalar_t* w, const scalar_t* b, int64_t N,
                     int64_t C, int64_t M, double slope, double* sg_out, double* sgx_out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t grain = std::max<int64_t>(1, 16384 / M);
  at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
    const int64_t buf = is_reduced<scalar_t> ? kChunk : 0;
    std::vector<T> gb(buf), xb(buf), ob(buf);
    for (int64_t p = begin; p < end; ++p) {
      const int64_t c = p % C;
      const scalar_t* gp = g + p * M;
      const scalar_t* xp = x + p * M;
      scalar_t* op = gx + p * M;
      const T mean = mean_in[p], rstd = rstd_in[p];
      const T wc = w ? static_cast<T>(w[c]) : T(1);
      const T a = rstd * wc, bb = b ? static_cast<T>(b[c]) : T(0), sl = static_cast<T>(slope);
      double sg = 0, sgx = 0;
      if constexpr (is_reduced<scalar_t>) {
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(gp + i, 1, 0, len, gb.data());
          to_float(xp + i, 1, 0, len, xb.data());
          plane_bwd_sums(gb.data(), xb.data(), len, mean, a, bb, sl, sg, sgx);
        }
      } else {
        plane_bwd_sums(gp, xp, M, mean, a, bb, sl, sg, sgx);
      }
      sg_out[p] = sg;
      sgx_out[p] = sgx;
      T A, B, Cc;
      bwd_coeffs(sg, sgx, rstd, wc, M, A, B, Cc);
      if constexpr (is_reduced<scalar_t>) {
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(gp + i, 1, 0, len, gb.data());
          to_float(xp + i, 1, 0, len, xb.data());
          plane_bwd_apply(gb.data(), xb.data(), ob.data(), len, mean, a, bb, sl, A, B, Cc);
          from_float(ob.data(), 1, len, op + i, 0);
        }
      } else {
        plane_bwd_apply(gp, xp, op, M, mean, a, bb, sl, A, B, Cc);
      }
    }
  });
}

template <typename scalar_t>
void backward_rows(const scalar_t* g, const scalar_t* x, scalar_t* gx, const at::opmath_type<scalar_t>* mean_in,
                   const at::opmath_type<scalar_t>* rstd_in, const scalar_t* w, const scalar_t* b, int64_t N,
                   int64_t C, int64_t S, double slope, double* sg_out, double* sgx_out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t nblk = (C + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, N * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> mean(kChannelBlock), a(kChannelBlock), bb(kChannelBlock), sg(kChannelBlock),
        sgx(kChannelBlock), A(kChannelBlock), B(kChannelBlock), Cc(kChannelBlock);
    std::vector<double> SG(kChannelBlock), SGX(kChannelBlock);
    const int64_t buf = is_reduced<scalar_t> ? kRows * kChannelBlock : 0;
    std::vector<T> gb(buf), xb(buf), ob(buf);
    const T sl = static_cast<T>(slope);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / nblk, c0 = (t % nblk) * kChannelBlock, cb = std::min(kChannelBlock, C - c0);
      const int64_t off = n * S * C + c0;
      for (int64_t j = 0; j < cb; ++j) {
        const int64_t p = n * C + c0 + j;
        mean[j] = mean_in[p];
        a[j] = rstd_in[p] * (w ? static_cast<T>(w[c0 + j]) : T(1));
        bb[j] = b ? static_cast<T>(b[c0 + j]) : T(0);
      }
      std::fill(SG.begin(), SG.end(), 0.0);
      std::fill(SGX.begin(), SGX.end(), 0.0);
      for (int64_t r = 0; r < S; r += kRows) {
        const int64_t rows = std::min(kRows, S - r);
        std::fill(sg.begin(), sg.end(), T(0));
        std::fill(sgx.begin(), sgx.end(), T(0));
        if constexpr (is_reduced<scalar_t>) {
          to_float(g + off + r * C, rows, C, cb, gb.data());
          to_float(x + off + r * C, rows, C, cb, xb.data());
          rows_bwd_sums(gb.data(), xb.data(), rows, cb, cb, mean.data(), a.data(), bb.data(), sl, sg.data(),
                        sgx.data());
        } else {
          rows_bwd_sums(g + off + r * C, x + off + r * C, rows, C, cb, mean.data(), a.data(), bb.data(), sl,
                        sg.data(), sgx.data());
        }
        for (int64_t j = 0; j < cb; ++j) {
          SG[j] += sg[j];
          SGX[j] += sgx[j];
        }
      }
      for (int64_t j = 0; j < cb; ++j) {
        const int64_t p = n * C + c0 + j;
        sg_out[p] = SG[j];
        sgx_out[p] = SGX[j];
        bwd_coeffs(SG[j], SGX[j], rstd_in[p], w ? static_cast<double>(w[c0 + j]) : 1.0, S, A[j], B[j], Cc[j]);
      }
      for (int64_t r = 0; r < S; r += kRows) {
        const int64_t rows = std::min(kRows, S - r);
        if constexpr (is_reduced<scalar_t>) {
          to_float(g + off + r * C, rows, C, cb, gb.data());
          to_float(x + off + r * C, rows, C, cb, xb.data());
          rows_bwd_apply(gb.data(), xb.data(), ob.data(), rows, cb, cb, cb, mean.data(), a.data(), bb.data(), sl,
                         A.data(), B.data(), Cc.data());
          from_float(ob.data(), rows, cb, gx + off + r * C, C);
        } else {
          rows_bwd_apply(g + off + r * C, x + off + r * C, gx + off + r * C, rows, C, C, cb, mean.data(), a.data(),
                         bb.data(), sl, A.data(), B.data(), Cc.data());
        }
      }
    }
  });
}

}  // namespace

void check_instance_norm_act_args(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                  const std::optional<at::Tensor>& bias, double eps) {
  const char* op = "zoo::instance_norm_act";
  check_input(x, op, 3);
  check_channel_param(weight, "weight", x, op);
  check_channel_param(bias, "bias", x, op);
  TORCH_CHECK(eps >= 0 && std::isfinite(eps), op, ": eps must be a finite number >= 0, got ", eps);
}

void check_instance_norm_act_backward_args(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean,
                                           const at::Tensor& rstd, const std::optional<at::Tensor>& weight,
                                           const std::optional<at::Tensor>& bias) {
  const char* op = "zoo::instance_norm_act_backward";
  check_input(x, op, 3);
  check_same(grad_out, "grad_out", x, op);
  check_channel_param(weight, "weight", x, op);
  check_channel_param(bias, "bias", x, op);
  const auto stats_dtype = opmath_dtype(x.scalar_type());
  for (const auto* t : {&mean, &rstd}) {
    const char* name = t == &mean ? "mean" : "rstd";
    TORCH_CHECK(t->dim() == 2 && t->size(0) == x.size(0) && t->size(1) == x.size(1), op, ": ", name,
                " must have shape (", x.size(0), ", ", x.size(1), "), got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == stats_dtype, op, ": ", name, " must have dtype ", stats_dtype, ", got ",
                t->scalar_type());
    TORCH_CHECK(t->device() == x.device(), op, ": ", name, " is on ", t->device(), " but x is on ", x.device());
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_cpu(
    const at::Tensor& x, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps, double negative_slope) {
  check_instance_norm_act_args(x, weight, bias, eps);
  TORCH_CHECK(x.device().is_cpu(), "zoo::instance_norm_act (CPU kernel): x must be on the CPU, got ", x.device());
  const auto fmt = op_layout(x);
  const at::Tensor xc = x.contiguous(fmt);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(N * C, 1);
  const auto stats_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  at::Tensor mean = at::empty({N, C}, stats_opts), rstd = at::empty({N, C}, stats_opts);
  if (N * C == 0) return {out, mean, rstd};
  if (S == 0) {  // empty planes: statistics are NaN, as the mean of nothing is in the reference
    mean.fill_(std::numeric_limits<double>::quiet_NaN());
    rstd.fill_(std::numeric_limits<double>::quiet_NaN());
    return {out, mean, rstd};
  }
  const at::Tensor w = has(weight) ? weight->contiguous() : at::Tensor();
  const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::instance_norm_act", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* wp = w.defined() ? w.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    if (fmt == at::MemoryFormat::Contiguous) {
      forward_planes<scalar_t>(xc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                               mean.mutable_data_ptr<T>(), rstd.mutable_data_ptr<T>(), wp, bp, N, C, S, eps,
                               negative_slope);
    } else {
      forward_rows<scalar_t>(xc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(),
                             mean.mutable_data_ptr<T>(), rstd.mutable_data_ptr<T>(), wp, bp, N, C, S, eps,
                             negative_slope);
    }
  });
  return {out, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias, double negative_slope) {
  check_instance_norm_act_backward_args(grad_out, x, mean, rstd, weight, bias);
  TORCH_CHECK(x.device().is_cpu(), "zoo::instance_norm_act_backward (CPU kernel): x must be on the CPU, got ",
              x.device());
  const auto fmt = op_layout(x);
  const at::Tensor xc = x.contiguous(fmt), gc = grad_out.contiguous(fmt);
  const at::Tensor mc = mean.contiguous(), rc = rstd.contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(N * C, 1);
  // per-plane sums in double: sum dy (-> grad bias) and sum dy * (x - mean) (-> grad weight, after * rstd)
  at::Tensor sg = at::zeros({N, C}, x.options().dtype(at::kDouble)), sgx = at::zeros_like(sg);
  if (N * C > 0 && S > 0) {
    const at::Tensor w = has(weight) ? weight->contiguous() : at::Tensor();
    const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::instance_norm_act_backward",
                                    [&] {
      using T = at::opmath_type<scalar_t>;
      const scalar_t* wp = w.defined() ? w.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
      auto run = fmt == at::MemoryFormat::Contiguous ? backward_planes<scalar_t> : backward_rows<scalar_t>;
      run(gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), grad_x.mutable_data_ptr<scalar_t>(),
          mc.const_data_ptr<T>(), rc.const_data_ptr<T>(), wp, bp, N, C, S, negative_slope,
          sg.mutable_data_ptr<double>(), sgx.mutable_data_ptr<double>());
    });
  }
  // empty planes have NaN statistics but contribute nothing: their grad is exactly zero
  at::Tensor grad_w = !has(weight) ? at::empty({0}, x.options())
                      : S == 0     ? at::zeros({C}, x.options())
                                   : (sgx * rc.to(at::kDouble)).sum(0).to(x.scalar_type());
  at::Tensor grad_b = has(bias) ? sg.sum(0).to(x.scalar_type()) : at::empty({0}, x.options());
  return {grad_x, grad_w, grad_b};
}

}  // namespace zoo
