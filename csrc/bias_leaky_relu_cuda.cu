// CUDA kernels of zoo::bias_leaky_relu, launched on the current stream.
//
// Forward: one elementwise grid-stride pass, 16-byte vector loads/stores when the channel of a whole packet is
// known (no bias, or contiguous planes whose size is a multiple of the packet). Backward: dx from the output's sign;
// the bias gradient is reduced in the same pass: per (plane, chunk) blocks with warp-shuffle block sums
// (contiguous), or per (channel, row-chunk) partial sums (channels-last and (N, C) inputs), then summed in order.
#include "bias_leaky_relu.h"
#include "cuda_utils.cuh"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <algorithm>

namespace zoo {
namespace {

using namespace zoo::cuda;

constexpr int64_t kChunk = 8192;  // elements of a plane per block in the backward reduction
constexpr int64_t kRowChunk = 256;  // rows per block in the channels-last backward reduction

template <typename T>
__device__ __forceinline__ T act(T y, T slope, T scale) {
  return (y > T(0) ? y : y * slope) * scale;
}

// Channel of flat element i: contiguous (N, C, S) or rows (N, S, C).
template <bool kRows>
__device__ __forceinline__ int64_t channel_of(int64_t i, int64_t C, int64_t S) {
  return kRows ? i % C : (i / S) % C;
}

template <typename scalar_t, bool kRows>
__global__ void fwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                           scalar_t* __restrict__ out, int64_t total, int64_t C, int64_t S,
                           at::opmath_type<scalar_t> slope, at::opmath_type<scalar_t> scale) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T b = bias ? static_cast<T>(bias[channel_of<kRows>(i, C, S)]) : T(0);
    out[i] = static_cast<scalar_t>(act(static_cast<T>(x[i]) + b, slope, scale));
  }
}

// Vectorised forward: every packet lies in one plane (S % V == 0) or there is no bias.
template <typename scalar_t>
__global__ void fwd_vec_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                               scalar_t* __restrict__ out, int64_t packets, int64_t C, int64_t S,
                               at::opmath_type<scalar_t> slope, at::opmath_type<scalar_t> scale) {
  using T = at::opmath_type<scalar_t>;
  using P = Packet<scalar_t>;
  constexpr int V = P::kSize;
  const P* xv = reinterpret_cast<const P*>(x);
  P* ov = reinterpret_cast<P*>(out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < packets;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T b = bias ? static_cast<T>(bias[(i * V / S) % C]) : T(0);
    P pk = xv[i];
#pragma unroll
    for (int k = 0; k < V; ++k) pk.v[k] = static_cast<scalar_t>(act(static_cast<T>(pk.v[k]) + b, slope, scale));
    ov[i] = pk;
  }
}

template <typename scalar_t>
__global__ void bwd_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ o, scalar_t* __restrict__ gx,
                           int64_t total, at::opmath_type<scalar_t> pos, at::opmath_type<scalar_t> neg) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    gx[i] = static_cast<scalar_t>(static_cast<T>(g[i]) * (static_cast<T>(o[i]) > T(0) ? pos : neg));
  }
}

// Contiguous planes: block (p, split) writes dx for its chunk and its sum into ws[p * nsplit + split].
template <typename scalar_t>
__global__ void bwd_plane_sum_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ o,
                                     scalar_t* __restrict__ gx, at::opmath_type<scalar_t>* __restrict__ ws, int64_t S,
                                     int64_t nsplit, at::opmath_type<scalar_t> pos, at::opmath_type<scalar_t> neg) {
  using T = at::opmath_type<scalar_t>;
  const int64_t p = blockIdx.x / nsplit, split = blockIdx.x % nsplit;
  const int64_t start = p * S + split * kChunk, end = p * S + min(S, (split + 1) * kChunk);
  T s = 0, unused = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const T v = static_cast<T>(g[i]) * (static_cast<T>(o[i]) > T(0) ? pos : neg);
    gx[i] = static_cast<scalar_t>(v);
    s += v;
  }
  block_sum2(s, unused);
  if (threadIdx.x == 0) ws[blockIdx.x] = s;
}

// Rows (N * S rows of C channels): block (channel tile of 32, row chunk) with 32 x 8 threads; coalesced over
// channels; partial sums per channel into ws[chunk * C + c].
template <typename scalar_t>
__global__ void bwd_rows_sum_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ o,
                                    scalar_t* __restrict__ gx, at::opmath_type<scalar_t>* __restrict__ ws, int64_t R,
                                    int64_t C, at::opmath_type<scalar_t> pos, at::opmath_type<scalar_t> neg) {
  using T = at::opmath_type<scalar_t>;
  __shared__ T tile[8][kWarp];
  const int64_t c = blockIdx.x * static_cast<int64_t>(kWarp) + threadIdx.x, chunk = blockIdx.y;
  const int64_t r0 = chunk * kRowChunk, r1 = min(R, r0 + kRowChunk);
  T s = 0;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += blockDim.y) {
      const int64_t i = r * C + c;
      const T v = static_cast<T>(g[i]) * (static_cast<T>(o[i]) > T(0) ? pos : neg);
      gx[i] = static_cast<scalar_t>(v);
      s += v;
    }
  }
  tile[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    T total = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) total += tile[k][threadIdx.x];
    ws[chunk * C + c] = total;
  }
}

inline unsigned elementwise_blocks(int64_t total) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(total, kMaxThreads), 65535 * 8));
}

}  // namespace

at::Tensor bias_leaky_relu_cuda(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                                double scale) {
  check_bias_leaky_relu_args(x, bias, negative_slope, scale);
  TORCH_CHECK(x.is_cuda(), "zoo::bias_leaky_relu (CUDA kernel): x must be on a CUDA device, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const auto fmt = op_layout(x);
  const at::Tensor xc = x.contiguous(fmt);
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t total = x.numel();
  if (total == 0) return out;
  const int64_t N = x.dim() >= 2 ? x.size(0) : total, C = x.dim() >= 2 ? x.size(1) : 1;
  const int64_t S = total / (N * C);
  const bool rows = fmt != at::MemoryFormat::Contiguous;
  const at::Tensor b = has(bias) ? bias->contiguous() : at::Tensor();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "zoo::bias_leaky_relu_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    constexpr int V = Packet<scalar_t>::kSize;
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    const T sl = static_cast<T>(negative_slope), sc = static_cast<T>(scale);
    const bool vec = aligned16(xp) && aligned16(op) && total % V == 0 && (bp == nullptr || (!rows && S % V == 0));
    if (vec) {
      fwd_vec_kernel<scalar_t><<<elementwise_blocks(total / V), kMaxThreads, 0, stream>>>(xp, bp, op, total / V, C,
                                                                                          S, sl, sc);
    } else if (rows) {
      fwd_kernel<scalar_t, true><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(xp, bp, op, total, C, S, sl,
                                                                                       sc);
    } else {
      fwd_kernel<scalar_t, false><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(xp, bp, op, total, C, S, sl,
                                                                                        sc);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cuda(const at::Tensor& grad_out, const at::Tensor& out,
                                                                 double negative_slope, double scale, bool bias_grad) {
  check_bias_leaky_relu_backward_args(grad_out, out, negative_slope, scale, bias_grad);
  TORCH_CHECK(out.is_cuda(), "zoo::bias_leaky_relu_backward (CUDA kernel): out must be on a CUDA device, got ",
              out.device());
  const c10::cuda::CUDAGuard guard(out.device());
  const auto fmt = op_layout(out);
  const at::Tensor oc = out.contiguous(fmt), gc = grad_out.contiguous(fmt);
  at::Tensor grad_x = at::empty(out.sizes(), out.options().memory_format(fmt));
  const int64_t total = out.numel();
  const int64_t N = out.dim() >= 2 ? out.size(0) : total, C = out.dim() >= 2 ? out.size(1) : 1;
  const int64_t S = N * C == 0 ? 0 : total / (N * C);
  const bool rows = fmt != at::MemoryFormat::Contiguous || S == 1;
  const auto acc_opts = out.options().dtype(opmath_dtype(out.scalar_type()));
  at::Tensor grad_b = bias_grad ? at::zeros({C}, acc_opts) : at::empty({0}, out.options());
  if (total > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "zoo::bias_leaky_relu_backward_cuda",
                                    [&] {
      using T = at::opmath_type<scalar_t>;
      const scalar_t* gp = gc.const_data_ptr<scalar_t>();
      const scalar_t* opp = oc.const_data_ptr<scalar_t>();
      scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
      const T pos = static_cast<T>(scale), neg = static_cast<T>(scale * negative_slope);
      if (!bias_grad) {
        bwd_kernel<scalar_t><<<elementwise_blocks(total), kMaxThreads, 0, stream>>>(gp, opp, gxp, total, pos, neg);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else if (!rows) {
        const int64_t nsplit = ceil_div(S, kChunk);
        TORCH_CHECK(N * C * nsplit < (int64_t(1) << 31), "zoo::bias_leaky_relu_backward (CUDA): input too large");
        at::Tensor ws = at::empty({N, C, nsplit}, acc_opts);
        bwd_plane_sum_kernel<scalar_t><<<static_cast<unsigned>(N * C * nsplit), threads_for(std::min(S, kChunk)), 0,
                                         stream>>>(gp, opp, gxp, ws.mutable_data_ptr<T>(), S, nsplit, pos, neg);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        grad_b = ws.sum(at::IntArrayRef{0, 2});
      } else {
        const int64_t R = N * S, chunks = ceil_div(R, kRowChunk);
        TORCH_CHECK(chunks < 65536, "zoo::bias_leaky_relu_backward (CUDA): too many rows (", R, ")");
        at::Tensor ws = at::empty({chunks, C}, acc_opts);
        const dim3 grid(static_cast<unsigned>(ceil_div(C, kWarp)), static_cast<unsigned>(chunks));
        bwd_rows_sum_kernel<scalar_t><<<grid, dim3(kWarp, 8), 0, stream>>>(gp, opp, gxp, ws.mutable_data_ptr<T>(), R,
                                                                           C, pos, neg);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        grad_b = ws.sum(0);
      }
    });
  }
  if (bias_grad) grad_b = grad_b.to(out.scalar_type());
  return {grad_x, grad_b};
}

}  // namespace zoo
