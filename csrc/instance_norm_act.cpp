// CPU host code and kernels of zoo::instance_norm_act.
//
// Contiguous NCHW: tasks of whole (n, c) planes. Statistics in one pass with shifted sums (pivot = the plane's first
// element, so no catastrophic cancellation), float lanes flushed into double every kBlock elements; then the
// normalise + affine + LeakyReLU pass while the plane is still in cache (small planes in groups, see below).
// Channels-last (N, S, C): vectorised across the contiguous channels with per-channel sums; whole samples per task
// for batches of 8 or more, else each sample's rows split into parts the threads share (the split depends on the
// shape only: bitwise the same results for any thread count), the parts' sums combined in order, then a second
// parallel pass normalises. Backward: one pass for the two per-plane sums (sum dy, sum dy * (x - mean)), one pass
// writing dx; grad weight / bias are those sums reduced over N.
// float16 / bfloat16 are converted to float in small chunks; all arithmetic is float (double for double).
// float / double outputs (y, dx) of at least half the last-level cache are written with streaming stores
// (cpu_stream.h): the same values, without the read-for-ownership and without evicting the input.
#include "instance_norm_act.h"

#include "cpu_stream.h"

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
constexpr int64_t kRows = 128;    // channels-last rows per block at most (flush / conversion unit)
constexpr int64_t kGroup = 16;    // small planes whose statistics are computed before their elementwise passes
constexpr int64_t kSplitMin = 32768;  // elements per parallel task at least
constexpr int64_t kSplitBelowN = 8;  // channels-last batches smaller than this split their samples by rows
constexpr int64_t kPartElements = 65536;  // elements per row part of a split channels-last sample, about
constexpr int64_t kMinRows = 16;  // rows per part at least

#define ZOO_INLINE __attribute__((always_inline)) inline

// Mean and rstd of n planes (or channels) from their shifted sums around `pivot`, as a loop the compiler vectorises:
// a square root and a division per plane cost more than summing a plane of a few dozen elements, and vectorised
// they cost a fraction of that.
template <typename T>
ZOO_INLINE void finish_stats_n(const double* __restrict__ s, const double* __restrict__ ss,
                               const T* __restrict__ pivot, int64_t n, double inv_n, double eps, T* __restrict__ mean,
                               T* __restrict__ rstd) {
  for (int64_t i = 0; i < n; ++i) {
    const double m = s[i] * inv_n;
    double var = ss[i] * inv_n - m * m;
    var = var < 0 ? 0 : var;  // keeps NaN (a NaN compares false)
    mean[i] = static_cast<T>(static_cast<double>(pivot[i]) + m);
    rstd[i] = static_cast<T>(1.0 / std::sqrt(var + eps));
  }
}


// Per plane p = (n, c): sg[p] = sum dy, sgx[p] = sum dy * (x - mean) with dy = dout * LeakyReLU'(y); then
// dx = A (dy - C) + B (x - mean) with A = rstd w, B = -rstd^3 w sgx / M, C = sg / M (the mean of dy).

template <typename T>
inline void bwd_coeffs(double sg, double sgx, double rstd, double w, double inv_M, T& A, T& B, T& C) {
  const double a = rstd * w;
  A = static_cast<T>(a);
  B = static_cast<T>(-a * rstd * rstd * sgx * inv_M);
  C = static_cast<T>(sg * inv_M);
}

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

template <bool Stream, typename T>
ZOO_INLINE void plane_apply_impl(const T* __restrict__ x, T* __restrict__ out, int64_t n, T mean, T a, T b, T slope) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> vm = Vec64<T>{} + mean, va = Vec64<T>{} + a, vb = Vec64<T>{} + b, vs = Vec64<T>{} + slope;
  int64_t i = 0;
  for (; i + L <= n; i += L) put64<Stream, T>(out + i, leaky64<T>((load64<T>(x + i) - vm) * va + vb, vs));
  for (; i < n; ++i) {
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

template <bool Stream, typename T>
ZOO_INLINE void plane_bwd_apply_impl(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx, int64_t n,
                                     T mean, T a, T b, T slope, T A, T B, T C) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> vm = Vec64<T>{} + mean, va = Vec64<T>{} + a, vb = Vec64<T>{} + b, zero = {};
  const Vec64<T> one = Vec64<T>{} + T(1), vs = Vec64<T>{} + slope, vA = Vec64<T>{} + A, vB = Vec64<T>{} + B,
                 vC = Vec64<T>{} + C;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const Vec64<T> xc = load64<T>(x + i) - vm;
    const Vec64<T> gy = load64<T>(g + i) * (xc * va + vb > zero ? one : vs);
    put64<Stream, T>(gx + i, vA * (gy - vC) + vB * xc);
  }
  for (; i < n; ++i) {
    const T xc = x[i] - mean;
    const T y = xc * a + b;
    const T gy = g[i] * (y > T(0) ? T(1) : slope);
    gx[i] = A * (gy - C) + B * xc;
  }
}

// ---------------------------------------------------------------- small planes, several per call
// Statistics and coefficients of a small group of planes first, then their elementwise passes: the reductions,
// divisions and square roots of one plane overlap with the next ones' instead of stalling each plane (planes of a
// few dozen elements are bound by that latency, not by memory).

template <typename T>
ZOO_INLINE void planes_forward_impl(const T* __restrict__ x, T* __restrict__ out, int64_t p0, int64_t p1, int64_t M,
                                    int64_t C, const T* w, const T* b, double eps, T slope, T* __restrict__ mean_out,
                                    T* __restrict__ rstd_out, bool stream) {
  const int64_t group = std::clamp<int64_t>(kBlock / M, 1, kGroup);
  const double inv_M = 1.0 / static_cast<double>(M);
  for (int64_t q = p0; q < p1; q += group) {
    const int64_t qe = std::min(p1, q + group);
    double s[kGroup] = {}, ss[kGroup] = {};
    T pivot[kGroup];
    for (int64_t p = q; p < qe; ++p) {
      pivot[p - q] = x[p * M];
      plane_sums_impl<T>(x + p * M, M, pivot[p - q], s[p - q], ss[p - q]);
    }
    finish_stats_n<T>(s, ss, pivot, qe - q, inv_M, eps, mean_out + q, rstd_out + q);
    for (int64_t p = q; p < qe; ++p) {
      const int64_t c = p % C;
      const T a = rstd_out[p] * (w ? w[c] : T(1)), bc = b ? b[c] : T(0);
      if (stream) {
        plane_apply_impl<true, T>(x + p * M, out + p * M, M, mean_out[p], a, bc, slope);
      } else {
        plane_apply_impl<false, T>(x + p * M, out + p * M, M, mean_out[p], a, bc, slope);
      }
    }
  }
  if (stream) stream_fence();
}

template <typename T>
ZOO_INLINE void planes_backward_impl(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx, int64_t p0,
                                     int64_t p1, int64_t M, int64_t C, const T* mean_in, const T* rstd_in,
                                     const T* w, const T* b, T slope, double* __restrict__ sg_out,
                                     double* __restrict__ sgx_out, bool stream) {
  const int64_t group = std::clamp<int64_t>(kBlock / M, 1, kGroup);
  const double inv_M = 1.0 / static_cast<double>(M);
  for (int64_t q = p0; q < p1; q += group) {
    const int64_t qe = std::min(p1, q + group);
    for (int64_t p = q; p < qe; ++p) {
      const int64_t c = p % C;
      double sg = 0, sgx = 0;
      plane_bwd_sums_impl<T>(g + p * M, x + p * M, M, mean_in[p], rstd_in[p] * (w ? w[c] : T(1)), b ? b[c] : T(0),
                             slope, sg, sgx);
      sg_out[p] = sg;
      sgx_out[p] = sgx;
    }
    for (int64_t p = q; p < qe; ++p) {
      const int64_t c = p % C;
      const T wc = w ? w[c] : T(1);
      T A, B, Cc;
      bwd_coeffs(sg_out[p], sgx_out[p], rstd_in[p], wc, inv_M, A, B, Cc);
      const T a = rstd_in[p] * wc, bc = b ? b[c] : T(0);
      if (stream) {
        plane_bwd_apply_impl<true, T>(g + p * M, x + p * M, gx + p * M, M, mean_in[p], a, bc, slope, A, B, Cc);
      } else {
        plane_bwd_apply_impl<false, T>(g + p * M, x + p * M, gx + p * M, M, mean_in[p], a, bc, slope, A, B, Cc);
      }
    }
  }
  if (stream) stream_fence();
}

// ---------------------------------------------------------------- channels-last: dense rows of C channels
// Vectorised across the (contiguous) channels. Blocks of 2 x 64 bytes of channels keep their per-channel sums or
// coefficients in registers while the loop runs down the rows (the block of rows is in L1); the channels left over
// (C not a multiple of the block) run the same arithmetic with per-channel arrays.

template <typename T>
ZOO_INLINE void rows_sums_impl(const T* __restrict__ x, int64_t rows, int64_t C, const T* __restrict__ pivot,
                               T* __restrict__ s, T* __restrict__ ss) {
  constexpr int64_t L = 64 / sizeof(T);
  int64_t j = 0;
  for (; j + 2 * L <= C; j += 2 * L) {
    const Vec64<T> p0 = load64<T>(pivot + j), p1 = load64<T>(pivot + j + L);
    Vec64<T> s0 = load64<T>(s + j), s1 = load64<T>(s + j + L), q0 = load64<T>(ss + j), q1 = load64<T>(ss + j + L);
    for (int64_t r = 0; r < rows; ++r) {
      const Vec64<T> d0 = load64<T>(x + r * C + j) - p0, d1 = load64<T>(x + r * C + j + L) - p1;
      s0 += d0;
      s1 += d1;
      q0 += d0 * d0;
      q1 += d1 * d1;
    }
    store64<T>(s + j, s0), store64<T>(s + j + L, s1), store64<T>(ss + j, q0), store64<T>(ss + j + L, q1);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = j; k < C; ++k) {
      const T d = x[r * C + k] - pivot[k];
      s[k] += d;
      ss[k] += d * d;
    }
  }
}

template <bool Stream, typename T>
ZOO_INLINE void rows_apply_impl(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t C,
                                const T* __restrict__ mean, const T* __restrict__ a, const T* __restrict__ b,
                                T slope) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> vs = Vec64<T>{} + slope;
  int64_t j = 0;
  for (; j + 2 * L <= C; j += 2 * L) {
    const Vec64<T> m0 = load64<T>(mean + j), m1 = load64<T>(mean + j + L), a0 = load64<T>(a + j),
                   a1 = load64<T>(a + j + L), b0 = load64<T>(b + j), b1 = load64<T>(b + j + L);
    for (int64_t r = 0; r < rows; ++r) {
      const Vec64<T> y0 = (load64<T>(x + r * C + j) - m0) * a0 + b0;
      const Vec64<T> y1 = (load64<T>(x + r * C + j + L) - m1) * a1 + b1;
      put64<Stream, T>(out + r * C + j, leaky64<T>(y0, vs));
      put64<Stream, T>(out + r * C + j + L, leaky64<T>(y1, vs));
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = j; k < C; ++k) {
      const T y = (x[r * C + k] - mean[k]) * a[k] + b[k];
      out[r * C + k] = leaky(y, slope);
    }
  }
}

template <typename T>
ZOO_INLINE void rows_bwd_sums_impl(const T* __restrict__ g, const T* __restrict__ x, int64_t rows, int64_t C,
                                   const T* __restrict__ mean, const T* __restrict__ a, const T* __restrict__ b,
                                   T slope, T* __restrict__ sg, T* __restrict__ sgx) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> zero = {}, one = Vec64<T>{} + T(1), vs = Vec64<T>{} + slope;
  int64_t j = 0;
  for (; j + 2 * L <= C; j += 2 * L) {
    const Vec64<T> m0 = load64<T>(mean + j), m1 = load64<T>(mean + j + L), a0 = load64<T>(a + j),
                   a1 = load64<T>(a + j + L), b0 = load64<T>(b + j), b1 = load64<T>(b + j + L);
    Vec64<T> s0 = load64<T>(sg + j), s1 = load64<T>(sg + j + L), q0 = load64<T>(sgx + j),
             q1 = load64<T>(sgx + j + L);
    for (int64_t r = 0; r < rows; ++r) {
      const Vec64<T> xc0 = load64<T>(x + r * C + j) - m0, xc1 = load64<T>(x + r * C + j + L) - m1;
      const Vec64<T> gy0 = load64<T>(g + r * C + j) * (xc0 * a0 + b0 > zero ? one : vs);
      const Vec64<T> gy1 = load64<T>(g + r * C + j + L) * (xc1 * a1 + b1 > zero ? one : vs);
      s0 += gy0;
      s1 += gy1;
      q0 += gy0 * xc0;
      q1 += gy1 * xc1;
    }
    store64<T>(sg + j, s0), store64<T>(sg + j + L, s1), store64<T>(sgx + j, q0), store64<T>(sgx + j + L, q1);
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = j; k < C; ++k) {
      const T xc = x[r * C + k] - mean[k];
      const T gy = g[r * C + k] * (xc * a[k] + b[k] > T(0) ? T(1) : slope);
      sg[k] += gy;
      sgx[k] += gy * xc;
    }
  }
}

template <bool Stream, typename T>
ZOO_INLINE void rows_bwd_apply_impl(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ gx,
                                    int64_t rows, int64_t C, const T* __restrict__ mean, const T* __restrict__ a,
                                    const T* __restrict__ b, T slope, const T* __restrict__ A,
                                    const T* __restrict__ B, const T* __restrict__ Cc) {
  constexpr int64_t L = 64 / sizeof(T);
  const Vec64<T> zero = {}, one = Vec64<T>{} + T(1), vs = Vec64<T>{} + slope;
  int64_t j = 0;
  for (; j + L <= C; j += L) {  // one block of 64 bytes: six coefficient vectors stay in registers
    const Vec64<T> m = load64<T>(mean + j), av = load64<T>(a + j), bv = load64<T>(b + j), Av = load64<T>(A + j),
                   Bv = load64<T>(B + j), Cv = load64<T>(Cc + j);
    for (int64_t r = 0; r < rows; ++r) {
      const Vec64<T> xc = load64<T>(x + r * C + j) - m;
      const Vec64<T> gy = load64<T>(g + r * C + j) * (xc * av + bv > zero ? one : vs);
      put64<Stream, T>(gx + r * C + j, Av * (gy - Cv) + Bv * xc);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = j; k < C; ++k) {
      const T xc = x[r * C + k] - mean[k];
      const T gy = g[r * C + k] * (xc * a[k] + b[k] > T(0) ? T(1) : slope);
      gx[r * C + k] = A[k] * (gy - Cc[k]) + B[k] * xc;
    }
  }
}

// ISA-dispatched entry points (one clone per ISA, chosen at load time): single planes in float (the float16 /
// bfloat16 path, converted in chunks), and ranges of planes and blocks of rows in float and double.
ZOO_CLONES void plane_sums(const float* x, int64_t n, float pivot, double& s, double& ss) {
  plane_sums_impl<float>(x, n, pivot, s, ss);
}
ZOO_CLONES void plane_apply(const float* x, float* out, int64_t n, float mean, float a, float b, float slope) {
  plane_apply_impl<false, float>(x, out, n, mean, a, b, slope);
}
ZOO_CLONES void plane_bwd_sums(const float* g, const float* x, int64_t n, float mean, float a, float b, float slope,
                               double& sg, double& sgx) {
  plane_bwd_sums_impl<float>(g, x, n, mean, a, b, slope, sg, sgx);
}
ZOO_CLONES void plane_bwd_apply(const float* g, const float* x, float* gx, int64_t n, float mean, float a, float b,
                                float slope, float A, float B, float C) {
  plane_bwd_apply_impl<false, float>(g, x, gx, n, mean, a, b, slope, A, B, C);
}

#define ZOO_DEFINE_KERNELS(T)                                                                                     \
  ZOO_CLONES void planes_forward(const T* x, T* out, int64_t p0, int64_t p1, int64_t M, int64_t C, const T* w,    \
                                 const T* b, double eps, T slope, T* mean, T* rstd, bool stream) {                \
    planes_forward_impl<T>(x, out, p0, p1, M, C, w, b, eps, slope, mean, rstd, stream);                           \
  }                                                                                                               \
  ZOO_CLONES void planes_backward(const T* g, const T* x, T* gx, int64_t p0, int64_t p1, int64_t M, int64_t C,    \
                                  const T* mean, const T* rstd, const T* w, const T* b, T slope, double* sg,      \
                                  double* sgx, bool stream) {                                                     \
    planes_backward_impl<T>(g, x, gx, p0, p1, M, C, mean, rstd, w, b, slope, sg, sgx, stream);                    \
  }                                                                                                               \
  ZOO_CLONES void finish_stats_rows(const double* s, const double* ss, const T* pivot, int64_t n, double inv_n,    \
                                    double eps, T* mean, T* rstd) {                                               \
    finish_stats_n<T>(s, ss, pivot, n, inv_n, eps, mean, rstd);                                                   \
  }                                                                                                               \
  ZOO_CLONES void rows_sums(const T* x, int64_t rows, int64_t C, const T* pivot, T* s, T* ss) {                   \
    rows_sums_impl<T>(x, rows, C, pivot, s, ss);                                                                  \
  }                                                                                                               \
  ZOO_CLONES void rows_apply(const T* x, T* out, int64_t rows, int64_t C, const T* mean, const T* a, const T* b,  \
                             T slope, bool stream) {                                                              \
    if (stream) {                                                                                                 \
      rows_apply_impl<true, T>(x, out, rows, C, mean, a, b, slope);                                               \
    } else {                                                                                                      \
      rows_apply_impl<false, T>(x, out, rows, C, mean, a, b, slope);                                              \
    }                                                                                                             \
  }                                                                                                               \
  ZOO_CLONES void rows_bwd_sums(const T* g, const T* x, int64_t rows, int64_t C, const T* mean, const T* a,       \
                                const T* b, T slope, T* sg, T* sgx) {                                             \
    rows_bwd_sums_impl<T>(g, x, rows, C, mean, a, b, slope, sg, sgx);                                             \
  }                                                                                                               \
  ZOO_CLONES void rows_bwd_apply(const T* g, const T* x, T* gx, int64_t rows, int64_t C, const T* mean,           \
                                 const T* a, const T* b, T slope, const T* A, const T* B, const T* Cc,            \
                                 bool stream) {                                                                   \
    if (stream) {                                                                                                 \
      rows_bwd_apply_impl<true, T>(g, x, gx, rows, C, mean, a, b, slope, A, B, Cc);                               \
    } else {                                                                                                      \
      rows_bwd_apply_impl<false, T>(g, x, gx, rows, C, mean, a, b, slope, A, B, Cc);                              \
    }                                                                                                             \
  }

ZOO_DEFINE_KERNELS(float)
ZOO_DEFINE_KERNELS(double)
#undef ZOO_DEFINE_KERNELS

// ---------------------------------------------------------------- forward drivers

template <typename scalar_t>
void forward_planes(const scalar_t* x, scalar_t* out, at::opmath_type<scalar_t>* mean_out,
                    at::opmath_type<scalar_t>* rstd_out, const scalar_t* w, const scalar_t* b, int64_t N, int64_t C,
                    int64_t M, double eps, double slope) {
  using T = at::opmath_type<scalar_t>;
  const int64_t grain = std::max<int64_t>(1, 32768 / M);
  const double inv_M = 1.0 / static_cast<double>(M);
  if constexpr (!is_reduced<scalar_t>) {
    const bool stream = use_stream_stores(out, N * C * M * int64_t(sizeof(scalar_t)), M * int64_t(sizeof(scalar_t)));
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      planes_forward(x, out, begin, end, M, C, w, b, eps, static_cast<T>(slope), mean_out, rstd_out, stream);
    });
  } else {
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      std::vector<T> xb(kChunk), ob(kChunk);
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* xp = x + p * M;
        scalar_t* op = out + p * M;
        const int64_t c = p % C;
        const T pivot = static_cast<T>(xp[0]);
        double s = 0, ss = 0;
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(xp + i, len, xb.data());
          plane_sums(xb.data(), len, pivot, s, ss);
        }
        finish_stats_n<T>(&s, &ss, &pivot, 1, inv_M, eps, mean_out + p, rstd_out + p);
        const T a = rstd_out[p] * (w ? static_cast<T>(w[c]) : T(1));
        const T bb = b ? static_cast<T>(b[c]) : T(0);
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(xp + i, len, xb.data());
          plane_apply(xb.data(), ob.data(), len, mean_out[p], a, bb, static_cast<T>(slope));
          from_float(ob.data(), len, op + i);
        }
      }
    });
  }
}

// Channels-last work split: the samples of a small batch (N < kSplitBelowN, N = 1 included) are cut into `parts`
// equal row ranges of about kPartElements elements that the threads share; larger batches run whole samples per
// task. A function of the shape only, never of the thread count, so results are bitwise the same on any machine.
inline int64_t row_parts(int64_t N, int64_t S, int64_t C) {
  if (N >= kSplitBelowN) return 1;
  return std::clamp<int64_t>(S * C / kPartElements, 1, std::max<int64_t>(1, S / kMinRows));
}

// Rows of C channels per float-accumulation (and float16/bfloat16 conversion) block: about kBlock elements.
inline int64_t rows_per_block(int64_t C) { return std::clamp<int64_t>(kBlock / C, 1, kRows); }

inline int64_t part_begin(int64_t S, int64_t parts, int64_t k) { return S * k / parts; }

// Per-thread scratch of the channels-last drivers: float (double) lanes per channel and conversion buffers.
template <typename scalar_t>
struct RowScratch {
  using T = at::opmath_type<scalar_t>;
  std::vector<T> s, ss, pivot, b1, b2, b3;
  RowScratch(int64_t C, int64_t rb) : s(C), ss(C), pivot(C) {
    if constexpr (is_reduced<scalar_t>) b1.resize(rb * C), b2.resize(rb * C), b3.resize(rb * C);
  }
};

// What one channels-last sample in flight needs: its parts' per-channel double sums (two sets of C per part) and
// `coefs` sets of C per-channel float coefficients. Sized per sample, not per batch: a call allocates no N-sized
// temporaries (large heap blocks come as fresh pages on every call, whose faults cost more than the kernel).
template <typename scalar_t>
struct SampleBuf {
  std::vector<double> sums;
  std::vector<at::opmath_type<scalar_t>> coef;
  SampleBuf(int64_t C, int64_t parts, int64_t coefs) : sums(parts * 2 * C), coef(coefs * C) {}
  double* part_sums(int64_t k, int64_t C) { return sums.data() + k * 2 * C; }
};

// Runs prepare(n, buf), stats(n, k, scratch, buf), finish(n, buf), apply(n, k, scratch, buf) over the samples'
// parts: per sample in one task when parts == 1 (the second pass reads the sample while it is still in cache; one
// buf per task), else one sample at a time in phases (its parts' statistics in parallel, their combination, its
// parts' elementwise pass in parallel, split like the first so each thread re-reads the rows it summed while the
// sample is still in the shared cache; one buf for the threads). stats(n, k, ...) overwrites part k's sums.
template <typename scalar_t, typename Prepare, typename Stats, typename Finish, typename Apply>
void run_rows(int64_t N, int64_t S, int64_t C, int64_t parts, int64_t rb, int64_t coefs, const Prepare& prepare,
              const Stats& stats, const Finish& finish, const Apply& apply) {
  if (parts == 1) {
    at::parallel_for(0, N, std::max<int64_t>(1, kSplitMin / (S * C)), [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> sc(C, rb);
      SampleBuf<scalar_t> buf(C, 1, coefs);
      for (int64_t n = begin; n < end; ++n) {
        prepare(n, buf);
        stats(n, 0, sc, buf);
        finish(n, buf);
        apply(n, 0, sc, buf);
      }
    });
    return;
  }
  SampleBuf<scalar_t> buf(C, parts, coefs);
  for (int64_t n = 0; n < N; ++n) {
    prepare(n, buf);
    at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> sc(C, rb);
      for (int64_t k = begin; k < end; ++k) stats(n, k, sc, buf);
    });
    finish(n, buf);
    at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
      RowScratch<scalar_t> sc(C, rb);
      for (int64_t k = begin; k < end; ++k) apply(n, k, sc, buf);
    });
  }
}

template <typename scalar_t>
void forward_rows(const scalar_t* x, scalar_t* out, at::opmath_type<scalar_t>* mean_out,
                  at::opmath_type<scalar_t>* rstd_out, const scalar_t* w, const scalar_t* b, int64_t N, int64_t C,
                  int64_t S, double eps, double slope) {
  using T = at::opmath_type<scalar_t>;
  const int64_t parts = row_parts(N, S, C), rb = rows_per_block(C);
  const double inv_S = 1.0 / static_cast<double>(S);
  const bool stream = !is_reduced<scalar_t> &&
                      use_stream_stores(out, N * S * C * int64_t(sizeof(scalar_t)), C * int64_t(sizeof(scalar_t)));
  // buf: per part C shifted sums then C shifted sums of squares; mean, scale, shift per channel
  // shifted sums of part k of sample n's rows around the sample's first row (the same pivot in every part)
  auto stats = [&](int64_t n, int64_t k, RowScratch<scalar_t>& sc, SampleBuf<scalar_t>& buf) {
    const scalar_t* xn = x + n * S * C;
    double* S1 = buf.part_sums(k, C);
    double* S2 = S1 + C;
    std::fill(S1, S2 + C, 0.0);
    for (int64_t j = 0; j < C; ++j) sc.pivot[j] = static_cast<T>(xn[j]);
    for (int64_t r = part_begin(S, parts, k), r1 = part_begin(S, parts, k + 1); r < r1; r += rb) {
      const int64_t rows = std::min(rb, r1 - r);
      std::fill(sc.s.begin(), sc.s.end(), T(0));
      std::fill(sc.ss.begin(), sc.ss.end(), T(0));
      if constexpr (is_reduced<scalar_t>) {
        to_float(xn + r * C, rows * C, sc.b1.data());
        rows_sums(sc.b1.data(), rows, C, sc.pivot.data(), sc.s.data(), sc.ss.data());
      } else {
        rows_sums(xn + r * C, rows, C, sc.pivot.data(), sc.s.data(), sc.ss.data());
      }
      for (int64_t j = 0; j < C; ++j) {
        S1[j] += sc.s[j];
        S2[j] += sc.ss[j];
      }
    }
  };
  // statistics of sample n from its parts' sums (in part order: deterministic), and its per-channel coefficients
  auto finish = [&](int64_t n, SampleBuf<scalar_t>& buf) {
    const scalar_t* xn = x + n * S * C;
    T* cf = buf.coef.data();
    double* s = buf.part_sums(0, C);  // the parts' sums, added into part 0's in part order
    for (int64_t k = 1; k < parts; ++k) {
      for (int64_t j = 0; j < 2 * C; ++j) s[j] += buf.part_sums(k, C)[j];
    }
    for (int64_t j = 0; j < C; ++j) cf[j] = static_cast<T>(xn[j]);
    finish_stats_rows(s, s + C, cf, C, inv_S, eps, mean_out + n * C, rstd_out + n * C);
    for (int64_t j = 0; j < C; ++j) {
      cf[j] = mean_out[n * C + j];
      cf[C + j] = rstd_out[n * C + j] * (w ? static_cast<T>(w[j]) : T(1));
      cf[2 * C + j] = b ? static_cast<T>(b[j]) : T(0);
    }
  };
  auto apply = [&](int64_t n, int64_t k, RowScratch<scalar_t>& sc, SampleBuf<scalar_t>& buf) {
    const T* cf = buf.coef.data();
    const scalar_t* xn = x + n * S * C;
    scalar_t* on = out + n * S * C;
    for (int64_t r = part_begin(S, parts, k), r1 = part_begin(S, parts, k + 1); r < r1; r += rb) {
      const int64_t rows = std::min(rb, r1 - r);
      if constexpr (is_reduced<scalar_t>) {
        to_float(xn + r * C, rows * C, sc.b1.data());
        rows_apply(sc.b1.data(), sc.b2.data(), rows, C, cf, cf + C, cf + 2 * C, T(slope), false);
        from_float(sc.b2.data(), rows * C, on + r * C);
      } else {
        rows_apply(xn + r * C, on + r * C, rows, C, cf, cf + C, cf + 2 * C, T(slope), stream);
      }
    }
    if (stream) stream_fence();
  };
  auto prepare = [](int64_t, SampleBuf<scalar_t>&) {};
  run_rows<scalar_t>(N, S, C, parts, rb, 3, prepare, stats, finish, apply);
}

// ---------------------------------------------------------------- backward drivers

template <typename scalar_t>
void backward_planes(const scalar_t* g, const scalar_t* x, scalar_t* gx, const at::opmath_type<scalar_t>* mean_in,
                     const at::opmath_type<scalar_t>* rstd_in, const scalar_t* w, const scalar_t* b, int64_t N,
                     int64_t C, int64_t M, double slope, double* sg_out, double* sgx_out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t grain = std::max<int64_t>(1, 16384 / M);
  const double inv_M = 1.0 / static_cast<double>(M);
  if constexpr (!is_reduced<scalar_t>) {
    const bool stream = use_stream_stores(gx, N * C * M * int64_t(sizeof(scalar_t)), M * int64_t(sizeof(scalar_t)));
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      planes_backward(g, x, gx, begin, end, M, C, mean_in, rstd_in, w, b, static_cast<T>(slope), sg_out, sgx_out,
                      stream);
    });
  } else {
    at::parallel_for(0, N * C, grain, [&](int64_t begin, int64_t end) {
      std::vector<T> gb(kChunk), xb(kChunk), ob(kChunk);
      for (int64_t p = begin; p < end; ++p) {
        const int64_t c = p % C;
        const scalar_t* gp = g + p * M;
        const scalar_t* xp = x + p * M;
        scalar_t* op = gx + p * M;
        const T mean = mean_in[p], rstd = rstd_in[p];
        const T wc = w ? static_cast<T>(w[c]) : T(1);
        const T a = rstd * wc, bb = b ? static_cast<T>(b[c]) : T(0), sl = static_cast<T>(slope);
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(gp + i, len, gb.data());
          to_float(xp + i, len, xb.data());
          plane_bwd_sums(gb.data(), xb.data(), len, mean, a, bb, sl, sg, sgx);
        }
        sg_out[p] = sg;
        sgx_out[p] = sgx;
        T A, B, Cc;
        bwd_coeffs(sg, sgx, rstd, wc, inv_M, A, B, Cc);
        for (int64_t i = 0; i < M; i += kChunk) {
          const int64_t len = std::min(kChunk, M - i);
          to_float(gp + i, len, gb.data());
          to_float(xp + i, len, xb.data());
          plane_bwd_apply(gb.data(), xb.data(), ob.data(), len, mean, a, bb, sl, A, B, Cc);
          from_float(ob.data(), len, op + i);
        }
      }
    });
  }
}

template <typename scalar_t>
void backward_rows(const scalar_t* g, const scalar_t* x, scalar_t* gx, const at::opmath_type<scalar_t>* mean_in,
                   const at::opmath_type<scalar_t>* rstd_in, const scalar_t* w, const scalar_t* b, int64_t N,
                   int64_t C, int64_t S, double slope, double* sg_out, double* sgx_out) {
  using T = at::opmath_type<scalar_t>;
  const int64_t parts = row_parts(N, S, C), rb = rows_per_block(C);
  const double inv_S = 1.0 / static_cast<double>(S);
  const T sl = static_cast<T>(slope);
  const bool stream = !is_reduced<scalar_t> &&
                      use_stream_stores(gx, N * S * C * int64_t(sizeof(scalar_t)), C * int64_t(sizeof(scalar_t)));
  // buf: per part C sums of dy then C sums of dy * (x - mean); per channel the forward's mean, scale, shift, then
  // dx's A, B, C coefficients
  auto prepare = [&](int64_t n, SampleBuf<scalar_t>& buf) {
    T* cf = buf.coef.data();
    for (int64_t j = 0; j < C; ++j) {
      cf[j] = mean_in[n * C + j];
      cf[C + j] = rstd_in[n * C + j] * (w ? static_cast<T>(w[j]) : T(1));
      cf[2 * C + j] = b ? static_cast<T>(b[j]) : T(0);
    }
  };
  auto stats = [&](int64_t n, int64_t k, RowScratch<scalar_t>& sc, SampleBuf<scalar_t>& buf) {
    const T* cf = buf.coef.data();
    const int64_t off = n * S * C;
    double* SG = buf.part_sums(k, C);
    double* SGX = SG + C;
    std::fill(SG, SGX + C, 0.0);
    for (int64_t r = part_begin(S, parts, k), r1 = part_begin(S, parts, k + 1); r < r1; r += rb) {
      const int64_t rows = std::min(rb, r1 - r);
      std::fill(sc.s.begin(), sc.s.end(), T(0));
      std::fill(sc.ss.begin(), sc.ss.end(), T(0));
      if constexpr (is_reduced<scalar_t>) {
        to_float(g + off + r * C, rows * C, sc.b1.data());
        to_float(x + off + r * C, rows * C, sc.b2.data());
        rows_bwd_sums(sc.b1.data(), sc.b2.data(), rows, C, cf, cf + C, cf + 2 * C, sl, sc.s.data(), sc.ss.data());
      } else {
        rows_bwd_sums(g + off + r * C, x + off + r * C, rows, C, cf, cf + C, cf + 2 * C, sl, sc.s.data(),
                      sc.ss.data());
      }
      for (int64_t j = 0; j < C; ++j) {
        SG[j] += sc.s[j];
        SGX[j] += sc.ss[j];
      }
    }
  };
  auto finish = [&](int64_t n, SampleBuf<scalar_t>& buf) {
    T* cf = buf.coef.data();
    for (int64_t j = 0; j < C; ++j) {
      double sg = 0, sgx = 0;
      for (int64_t k = 0; k < parts; ++k) {
        sg += buf.part_sums(k, C)[j];
        sgx += buf.part_sums(k, C)[C + j];
      }
      sg_out[n * C + j] = sg;
      sgx_out[n * C + j] = sgx;
      bwd_coeffs(sg, sgx, rstd_in[n * C + j], w ? static_cast<double>(w[j]) : 1.0, inv_S, cf[3 * C + j], cf[4 * C + j],
                 cf[5 * C + j]);
    }
  };
  auto apply = [&](int64_t n, int64_t k, RowScratch<scalar_t>& sc, SampleBuf<scalar_t>& buf) {
    const T* cf = buf.coef.data();
    const int64_t off = n * S * C;
    for (int64_t r = part_begin(S, parts, k), r1 = part_begin(S, parts, k + 1); r < r1; r += rb) {
      const int64_t rows = std::min(rb, r1 - r);
      if constexpr (is_reduced<scalar_t>) {
        to_float(g + off + r * C, rows * C, sc.b1.data());
        to_float(x + off + r * C, rows * C, sc.b2.data());
        rows_bwd_apply(sc.b1.data(), sc.b2.data(), sc.b3.data(), rows, C, cf, cf + C, cf + 2 * C, sl, cf + 3 * C,
                       cf + 4 * C, cf + 5 * C, false);
        from_float(sc.b3.data(), rows * C, gx + off + r * C);
      } else {
        rows_bwd_apply(g + off + r * C, x + off + r * C, gx + off + r * C, rows, C, cf, cf + C, cf + 2 * C, sl,
                       cf + 3 * C, cf + 4 * C, cf + 5 * C, stream);
      }
    }
    if (stream) stream_fence();
  };
  run_rows<scalar_t>(N, S, C, parts, rb, 6, prepare, stats, finish, apply);
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
