// Device helpers shared by the zoo CUDA kernels: warp/block reductions and aligned vector loads.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace zoo {
namespace cuda {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 256;

// Sum over the warp with shuffles (all lanes get the total).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of two values over the block (blockDim.x a multiple of 32, at most kMaxThreads); every thread gets both.
template <typename T>
__device__ __forceinline__ void block_sum2(T& a, T& b) {
  __shared__ T sa[kMaxThreads / kWarp], sb[kMaxThreads / kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  a = lane < warps ? sa[lane] : T(0);
  b = lane < warps ? sb[lane] : T(0);
  a = warp_sum(a);
  b = warp_sum(b);
  __syncthreads();  // the shared slots may be reused by a following call
}

// A 16-byte packet of scalars for vectorised global loads/stores.
template <typename scalar_t>
struct alignas(16) Packet {
  static constexpr int kSize = 16 / sizeof(scalar_t);
  scalar_t v[kSize];
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Threads for a block working on `n` elements: a multiple of the warp size, at most kMaxThreads.
inline int threads_for(int64_t n) {
  int t = kWarp;
  while (t < kMaxThreads && t < n) t *= 2;
  return t;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace zoo
