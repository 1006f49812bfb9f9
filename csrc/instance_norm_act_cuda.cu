// CUDA kernels of zoo::instance_norm_act (forward and backward), launched on the current stream.
//
// Planes of up to kFusedMax elements: one block per (n, c) plane computes the statistics (shifted sums, warp
// shuffles + shared memory) and then normalises + activates the plane it just read (L2-hot). Larger planes: several
// blocks per plane write partial sums, a second stage combines them per plane in a fixed order (deterministic), and
// an elementwise pass applies them. Contiguous planes use 16-byte vector loads when sizes and pointers allow.
// Channels-last inputs run the same kernels with strided plane indexing. Arithmetic in float (double for double).
#include "cuda_utils.cuh"
#include "instance_norm_act.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <limits>

namespace zoo {
namespace {

using namespace zoo::cuda;

constexpr int64_t kFusedMax = 16384;  // planes up to this size: one block per plane
constexpr int64_t kSplitChunk = 8192;  // elements per block in the multi-block path

template <typename T>
__device__ __forceinline__ T lrelu(T y, T slope) {
  return y > T(0) ? y : y * slope;
}

// Offset of element k of plane p = (n, c); S is the plane size.
template <bool kCL>
__device__ __forceinline__ int64_t elem(int64_t p, int64_t k, int64_t C, int64_t S) {
  return kCL ? ((p / C) * S + k) * C + (p % C) : p * S + k;
}

// Plane of flat element i.
template <bool kCL>
__device__ __forceinline__ int64_t plane_of(int64_t i, int64_t C, int64_t S) {
  return kCL ? (i / (S * C)) * C + i % C : i / S;
}

template <typename T>
__device__ __forceinline__ void finish_stats(T s, T ss, T pivot, int64_t n, T eps, T& mean, T& rstd) {
  const T m = s / static_cast<T>(n);
  T var = ss / static_cast<T>(n) - m * m;
  var = var < T(0) ? T(0) : var;  // a NaN compares false and stays
  mean = pivot + m;
  rstd = T(1) / sqrt(var + eps);
}

// ---------------------------------------------------------------- forward

template <typename scalar_t, bool kCL, bool kVec>
__global__ void fwd_fused_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                                 at::opmath_type<scalar_t>* __restrict__ mean_out,
                                 at::opmath_type<scalar_t>* __restrict__ rstd_out, const scalar_t* __restrict__ w,
                                 const scalar_t* __restrict__ b, int64_t C, int64_t S, at::opmath_type<scalar_t> eps,
                                 at::opmath_type<scalar_t> slope) {
  using T = at::opmath_type<scalar_t>;
  using P = Packet<scalar_t>;
  constexpr int V = P::kSize;
  const int64_t p = blockIdx.x;
  const T pivot = static_cast<T>(x[elem<kCL>(p, 0, C, S)]);
  T s = 0, ss = 0;
  if constexpr (kVec) {
    const P* xv = reinterpret_cast<const P*>(x + p * S);
    for (int64_t i = threadIdx.x; i < S / V; i += blockDim.x) {
      const P pk = xv[i];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const T d = static_cast<T>(pk.v[k]) - pivot;
        s += d;
        ss += d * d;
      }
    }
  } else {
    for (int64_t k = threadIdx.x; k < S; k += blockDim.x) {
      const T d = static_cast<T>(x[elem<kCL>(p, k, C, S)]) - pivot;
      s += d;
      ss += d * d;
    }
  }
  block_sum2(s, ss);
  T mean, rstd;
  finish_stats(s, ss, pivot, S, eps, mean, rstd);
  if (threadIdx.x == 0) {
    mean_out[p] = mean;
    rstd_out[p] = rstd;
  }
  const int64_t c = p % C;
  const T a = rstd * (w ? static_cast<T>(w[c]) : T(1)), bb = b ? static_cast<T>(b[c]) : T(0);
  if constexpr (kVec) {
    const P* xv = reinterpret_cast<const P*>(x + p * S);
    P* ov = reinterpret_cast<P*>(out + p * S);
    for (int64_t i = threadIdx.x; i < S / V; i += blockDim.x) {
      P pk = xv[i];
#pragma unroll
      for (int k = 0; k < V; ++k) pk.v[k] = static_cast<scalar_t>(lrelu((static_cast<T>(pk.v[k]) - mean) * a + bb, slope));
      ov[i] = pk;
    }
  } else {
    for (int64_t k = threadIdx.x; k < S; k += blockDim.x) {
      const int64_t j = elem<kCL>(p, k, C, S);
      out[j] = static_cast<scalar_t>(lrelu((static_cast<T>(x[j]) - mean) * a + bb, slope));
    }
  }
}

// Block (p, split) sums its chunk of plane p into ws[(p * nsplit + split) * 2 + {0, 1}].
template <typename scalar_t, bool kCL>
__global__ void fwd_partial_kernel(const scalar_t* __restrict__ x, at::opmath_type<scalar_t>* __restrict__ ws,
                                   int64_t C, int64_t S, int64_t nsplit, int64_t chunk) {
  using T = at::opmath_type<scalar_t>;
  const int64_t p = blockIdx.x / nsplit, split = blockIdx.x % nsplit;
  const int64_t start = split * chunk, end = min(S, start + chunk);
  const T pivot = static_cast<T>(x[elem<kCL>(p, 0, C, S)]);
  T s = 0, ss = 0;
  for (int64_t k = start + threadIdx.x; k < end; k += blockDim.x) {
    const T d = static_cast<T>(x[elem<kCL>(p, k, C, S)]) - pivot;
    s += d;
    ss += d * d;
  }
  block_sum2(s, ss);
  if (threadIdx.x == 0) {
    ws[(p * nsplit + split) * 2] = s;
    ws[(p * nsplit + split) * 2 + 1] = ss;
  }
}

// Second stage: one thread per plane combines its partial sums in order.
template <typename scalar_t, bool kCL>
__global__ void fwd_finalize_kernel(const scalar_t* __restrict__ x, const at::opmath_type<scalar_t>* __restrict__ ws,
                                    at::opmath_type<scalar_t>* __restrict__ mean_out,
                                    at::opmath_type<scalar_t>* __restrict__ rstd_out, int64_t P, int64_t C, int64_t S,
                                    int64_t nsplit, at::opmath_type<scalar_t> eps) {
  using T = at::opmath_type<scalar_t>;
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p >= P) return;
  T s = 0, ss = 0;
  for (int64_t k = 0; k < nsplit; ++k) {
    s += ws[(p * nsplit + k) * 2];
    ss += ws[(p * nsplit + k) * 2 + 1];
  }
  T mean, rstd;
  finish_stats(s, ss, static_cast<T>(x[elem<kCL>(p, 0, C, S)]), S, eps, mean, rstd);
  mean_out[p] = mean;
  rstd_out[p] = rstd;
}

template <typename scalar_t, bool kCL>
__global__ void fwd_apply_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
                                 const at::opmath_type<scalar_t>* __restrict__ mean,
                                 const at::opmath_type<scalar_t>* __restrict__ rstd, const scalar_t* __restrict__ w,
                                 const scalar_t* __restrict__ b, int64_t total, int64_t C, int64_t S,
                                 at::opmath_type<scalar_t> slope) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = plane_of<kCL>(i, C, S), c = p % C;
    const T a = rstd[p] * (w ? static_cast<T>(w[c]) : T(1)), bb = b ? static_cast<T>(b[c]) : T(0);
    out[i] = static_cast<scalar_t>(lrelu((static_cast<T>(x[i]) - mean[p]) * a + bb, slope));
  }
}

// ---------------------------------------------------------------- backward
// dy = dout * LeakyReLU'(y); per plane sg = sum dy, sgx = sum dy (x - mean);
// dx = A (dy - sg / M) + B (x - mean) with A = rstd w, B = -rstd^3 w sgx / M.

template <typename T>
__device__ __forceinline__ T dact(T g, T xc, T a, T bb, T slope) {
  return xc * a + bb > T(0) ? g : g * slope;
}

template <typename scalar_t, bool kCL, bool kVec>
__global__ void bwd_fused_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                 scalar_t* __restrict__ gx, const at::opmath_type<scalar_t>* __restrict__ mean_in,
                                 const at::opmath_type<scalar_t>* __restrict__ rstd_in, const scalar_t* __restrict__ w,
                                 const scalar_t* __restrict__ b, at::opmath_type<scalar_t>* __restrict__ sg_out,
                                 at::opmath_type<scalar_t>* __restrict__ sgx_out, int64_t C, int64_t S,
                                 at::opmath_type<scalar_t> slope) {
  using T = at::opmath_type<scalar_t>;
  using P = Packet<scalar_t>;
  constexpr int V = P::kSize;
  const int64_t p = blockIdx.x, c = p % C;
  const T mean = mean_in[p], rstd = rstd_in[p], wc = w ? static_cast<T>(w[c]) : T(1);
  const T a = rstd * wc, bb = b ? static_cast<T>(b[c]) : T(0);
  T sg = 0, sgx = 0;
  if constexpr (kVec) {
    const P* gv = reinterpret_cast<const P*>(g + p * S);
    const P* xv = reinterpret_cast<const P*>(x + p * S);
    for (int64_t i = threadIdx.x; i < S / V; i += blockDim.x) {
      const P gp = gv[i], xp = xv[i];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const T xc = static_cast<T>(xp.v[k]) - mean;
        const T dy = dact(static_cast<T>(gp.v[k]), xc, a, bb, slope);
        sg += dy;
        sgx += dy * xc;
      }
    }
  } else {
    for (int64_t k = threadIdx.x; k < S; k += blockDim.x) {
      const int64_t j = elem<kCL>(p, k, C, S);
      const T xc = static_cast<T>(x[j]) - mean;
      const T dy = dact(static_cast<T>(g[j]), xc, a, bb, slope);
      sg += dy;
      sgx += dy * xc;
    }
  }
  block_sum2(sg, sgx);
  if (threadIdx.x == 0) {
    sg_out[p] = sg;
    sgx_out[p] = sgx;
  }
  const T A = a, B = -a * rstd * rstd * sgx / static_cast<T>(S), Cm = sg / static_cast<T>(S);
  if constexpr (kVec) {
    const P* gv = reinterpret_cast<const P*>(g + p * S);
    const P* xv = reinterpret_cast<const P*>(x + p * S);
    P* ov = reinterpret_cast<P*>(gx + p * S);
    for (int64_t i = threadIdx.x; i < S / V; i += blockDim.x) {
      const P gp = gv[i], xp = xv[i];
      P op;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const T xc = static_cast<T>(xp.v[k]) - mean;
        const T dy = dact(static_cast<T>(gp.v[k]), xc, a, bb, slope);
        op.v[k] = static_cast<scalar_t>(A * (dy - Cm) + B * xc);
      }
      ov[i] = op;
    }
  } else {
    for (int64_t k = threadIdx.x; k < S; k += blockDim.x) {
      const int64_t j = elem<kCL>(p, k, C, S);
      const T xc = static_cast<T>(x[j]) - mean;
      const T dy = dact(static_cast<T>(g[j]), xc, a, bb, slope);
      gx[j] = static_cast<scalar_t>(A * (dy - Cm) + B * xc);
    }
  }
}

template <typename scalar_t, bool kCL>
__global__ void bwd_partial_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                   const at::opmath_type<scalar_t>* __restrict__ mean_in,
                                   const at::opmath_type<scalar_t>* __restrict__ rstd_in,
                                   const scalar_t* __restrict__ w, const scalar_t* __restrict__ b,
                                   at::opmath_type<scalar_t>* __restrict__ ws, int64_t C, int64_t S, int64_t nsplit,
                                   int64_t chunk, at::opmath_type<scalar_t> slope) {
  using T = at::opmath_type<scalar_t>;
  const int64_t p = blockIdx.x / nsplit, split = blockIdx.x % nsplit, c = p % C;
  const int64_t start = split * chunk, end = min(S, start + chunk);
  const T mean = mean_in[p], a = rstd_in[p] * (w ? static_cast<T>(w[c]) : T(1));
  const T bb = b ? static_cast<T>(b[c]) : T(0);
  T sg = 0, sgx = 0;
  for (int64_t k = start + threadIdx.x; k < end; k += blockDim.x) {
    const int64_t j = elem<kCL>(p, k, C, S);
    const T xc = static_cast<T>(x[j]) - mean;
    const T dy = dact(static_cast<T>(g[j]), xc, a, bb, slope);
    sg += dy;
    sgx += dy * xc;
  }
  block_sum2(sg, sgx);
  if (threadIdx.x == 0) {
    ws[(p * nsplit + split) * 2] = sg;
    ws[(p * nsplit + split) * 2 + 1] = sgx;
  }
}

template <typename T>
__global__ void bwd_finalize_kernel(const T* __restrict__ ws, T* __restrict__ sg_out, T* __restrict__ sgx_out,
                                    int64_t P, int64_t nsplit) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p >= P) return;
  T sg = 0, sgx = 0;
  for (int64_t k = 0; k < nsplit; ++k) {
    sg += ws[(p * nsplit + k) * 2];
    sgx += ws[(p * nsplit + k) * 2 + 1];
  }
  sg_out[p] = sg;
  sgx_out[p] = sgx;
}

template <typename scalar_t, bool kCL>
__global__ void bwd_apply_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ x,
                                 scalar_t* __restrict__ gx, const at::opmath_type<scalar_t>* __restrict__ mean_in,
                                 const at::opmath_type<scalar_t>* __restrict__ rstd_in, const scalar_t* __restrict__ w,
                                 const scalar_t* __restrict__ b, const at::opmath_type<scalar_t>* __restrict__ sg_in,
                                 const at::opmath_type<scalar_t>* __restrict__ sgx_in, int64_t total, int64_t C,
                                 int64_t S, at::opmath_type<scalar_t> slope) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t p = plane_of<kCL>(i, C, S), c = p % C;
    const T rstd = rstd_in[p], a = rstd * (w ? static_cast<T>(w[c]) : T(1)), bb = b ? static_cast<T>(b[c]) : T(0);
    const T xc = static_cast<T>(x[i]) - mean_in[p];
    const T dy = dact(static_cast<T>(g[i]), xc, a, bb, slope);
    const T B = -a * rstd * rstd * sgx_in[p] / static_cast<T>(S), Cm = sg_in[p] / static_cast<T>(S);
    gx[i] = static_cast<scalar_t>(a * (dy - Cm) + B * xc);
  }
}

// ---------------------------------------------------------------- launch helpers

inline int elementwise_blocks(int64_t total) {
  return static_cast<int>(std::min<int64_t>(ceil_div(total, kMaxThreads), 65535 * 8));
}

template <typename scalar_t>
bool can_vectorise(int64_t S, std::initializer_list<const void*> ptrs) {
  if (S % Packet<scalar_t>::kSize != 0) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_cuda(
    const at::Tensor& x, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps, double negative_slope) {
  check_instance_norm_act_args(x, weight, bias, eps);
  TORCH_CHECK(x.is_cuda(), "zoo::instance_norm_act (CUDA kernel): x must be on a CUDA device, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const auto fmt = op_layout(x);
  const bool cl = fmt != at::MemoryFormat::Contiguous;
  const at::Tensor xc = x.contiguous(fmt);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t N = x.size(0), C = x.size(1), P = N * C, S = P == 0 ? 0 : x.numel() / P;
  const auto stats_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  at::Tensor mean = at::empty({N, C}, stats_opts), rstd = at::empty({N, C}, stats_opts);
  if (P == 0) return {out, mean, rstd};
  TORCH_CHECK(P * ceil_div(S, kSplitChunk) < (int64_t(1) << 31), "zoo::instance_norm_act (CUDA): too many planes (",
              P, ")");
  if (S == 0) {
    mean.fill_(std::numeric_limits<double>::quiet_NaN());
    rstd.fill_(std::numeric_limits<double>::quiet_NaN());
    return {out, mean, rstd};
  }
  const at::Tensor w = has(weight) ? weight->contiguous() : at::Tensor();
  const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::instance_norm_act_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    T* mp = mean.mutable_data_ptr<T>();
    T* rp = rstd.mutable_data_ptr<T>();
    const scalar_t* wp = w.defined() ? w.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    const T e = static_cast<T>(eps), sl = static_cast<T>(negative_slope);
    if (S <= kFusedMax) {
      const int threads = threads_for(S);
      if (!cl && can_vectorise<scalar_t>(S, {xp, op})) {
        fwd_fused_kernel<scalar_t, false, true><<<static_cast<unsigned>(P), threads, 0, stream>>>(xp, op, mp, rp, wp, bp, C, S, e, sl);
      } else if (!cl) {
        fwd_fused_kernel<scalar_t, false, false><<<static_cast<unsigned>(P), threads, 0, stream>>>(xp, op, mp, rp, wp, bp, C, S, e, sl);
      } else {
        fwd_fused_kernel<scalar_t, true, false><<<static_cast<unsigned>(P), threads, 0, stream>>>(xp, op, mp, rp, wp, bp, C, S, e, sl);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
    const int64_t nsplit = ceil_div(S, kSplitChunk);
    at::Tensor ws = at::empty({P * nsplit * 2}, stats_opts);
    const int64_t total = x.numel();
    if (cl) {
      fwd_partial_kernel<scalar_t, true><<<static_cast<unsigned>(P * nsplit), kMaxThreads, 0, stream>>>(xp, ws.mutable_data_ptr<T>(), C,
                                                                               S, nsplit, kSplitChunk);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      fwd_finalize_kernel<scalar_t, true><<<static_cast<unsigned>(ceil_div(P, kMaxThreads)), kMaxThreads, 0, stream>>>(
          xp, ws.const_data_ptr<T>(), mp, rp, P, C, S, nsplit, e);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      fwd_apply_kernel<scalar_t, true><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(xp, op, mp, rp, wp, bp,
                                                                                             total, C, S, sl);
    } else {
      fwd_partial_kernel<scalar_t, false><<<static_cast<unsigned>(P * nsplit), kMaxThreads, 0, stream>>>(xp, ws.mutable_data_ptr<T>(), C,
                                                                                S, nsplit, kSplitChunk);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      fwd_finalize_kernel<scalar_t, false><<<static_cast<unsigned>(ceil_div(P, kMaxThreads)), kMaxThreads, 0, stream>>>(
          xp, ws.const_data_ptr<T>(), mp, rp, P, C, S, nsplit, e);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      fwd_apply_kernel<scalar_t, false><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(xp, op, mp, rp, wp,
                                                                                              bp, total, C, S, sl);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias, double negative_slope) {
  check_instance_norm_act_backward_args(grad_out, x, mean, rstd, weight, bias);
  TORCH_CHECK(x.is_cuda(), "zoo::instance_norm_act_backward (CUDA kernel): x must be on a CUDA device, got ",
              x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const auto fmt = op_layout(x);
  const bool cl = fmt != at::MemoryFormat::Contiguous;
  const at::Tensor xc = x.contiguous(fmt), gc = grad_out.contiguous(fmt);
  const at::Tensor mc = mean.contiguous(), rc = rstd.contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t N = x.size(0), C = x.size(1), P = N * C, S = P == 0 ? 0 : x.numel() / P;
  const auto stats_opts = x.options().dtype(opmath_dtype(x.scalar_type()));
  at::Tensor sg = at::zeros({N, C}, stats_opts), sgx = at::zeros({N, C}, stats_opts);
  if (P > 0 && S > 0) {
    const at::Tensor w = has(weight) ? weight->contiguous() : at::Tensor();
    const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::instance_norm_act_backward_cuda",
                                    [&] {
      using T = at::opmath_type<scalar_t>;
      const scalar_t* gp = gc.const_data_ptr<scalar_t>();
      const scalar_t* xp = xc.const_data_ptr<scalar_t>();
      scalar_t* op = grad_x.mutable_data_ptr<scalar_t>();
      const T* mp = mc.const_data_ptr<T>();
      const T* rp = rc.const_data_ptr<T>();
      T* sgp = sg.mutable_data_ptr<T>();
      T* sgxp = sgx.mutable_data_ptr<T>();
      const scalar_t* wp = w.defined() ? w.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
      const T sl = static_cast<T>(negative_slope);
      if (S <= kFusedMax) {
        const int threads = threads_for(S);
        if (!cl && can_vectorise<scalar_t>(S, {gp, xp, op})) {
          bwd_fused_kernel<scalar_t, false, true><<<static_cast<unsigned>(P), threads, 0, stream>>>(gp, xp, op, mp, rp, wp, bp, sgp, sgxp, C,
                                                                            S, sl);
        } else if (!cl) {
          bwd_fused_kernel<scalar_t, false, false><<<static_cast<unsigned>(P), threads, 0, stream>>>(gp, xp, op, mp, rp, wp, bp, sgp, sgxp,
                                                                             C, S, sl);
        } else {
          bwd_fused_kernel<scalar_t, true, false><<<static_cast<unsigned>(P), threads, 0, stream>>>(gp, xp, op, mp, rp, wp, bp, sgp, sgxp, C,
                                                                            S, sl);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        return;
      }
      const int64_t nsplit = ceil_div(S, kSplitChunk), total = x.numel();
      at::Tensor ws = at::empty({P * nsplit * 2}, stats_opts);
      if (cl) {
        bwd_partial_kernel<scalar_t, true><<<static_cast<unsigned>(P * nsplit), kMaxThreads, 0, stream>>>(
            gp, xp, mp, rp, wp, bp, ws.mutable_data_ptr<T>(), C, S, nsplit, kSplitChunk, sl);
      } else {
        bwd_partial_kernel<scalar_t, false><<<static_cast<unsigned>(P * nsplit), kMaxThreads, 0, stream>>>(
            gp, xp, mp, rp, wp, bp, ws.mutable_data_ptr<T>(), C, S, nsplit, kSplitChunk, sl);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      bwd_finalize_kernel<T><<<static_cast<unsigned>(ceil_div(P, kMaxThreads)), kMaxThreads, 0, stream>>>(ws.const_data_ptr<T>(), sgp, sgxp,
                                                                                  P, nsplit);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (cl) {
        bwd_apply_kernel<scalar_t, true><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(
            gp, xp, op, mp, rp, wp, bp, sgp, sgxp, total, C, S, sl);
      } else {
        bwd_apply_kernel<scalar_t, false><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(
            gp, xp, op, mp, rp, wp, bp, sgp, sgxp, total, C, S, sl);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  // empty planes have NaN statistics but contribute nothing: their grad is exactly zero
  at::Tensor grad_w = !has(weight) ? at::empty({0}, x.options())
                      : S == 0     ? at::zeros({C}, x.options())
                                   : (sgx * rc).sum(0).to(x.scalar_type());
  at::Tensor grad_b = has(bias) ? sg.sum(0).to(x.scalar_type()) : at::empty({0}, x.options());
  return {grad_x, grad_w, grad_b};
}

}  // namespace zoo
