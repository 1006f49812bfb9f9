// Non-temporal ("streaming") stores for large CPU outputs. A streamed line skips the read-for-ownership a plain
// store pays and does not evict the input from the cache (the channels-last instance norm reads its input twice).
// Only outputs of at least half the last-level cache take them: such an output would not stay cached for the next
// layer anyway, while a smaller one is better left in cache for it. x86-64 (SSE2) only; elsewhere plain stores.
#pragma once

#include "common.h"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace zoo {

// Bytes of the largest cache level that cpu0 has, per instance (Linux sysfs; glibc's sysconf reports the sum over
// all core complexes on some AMD machines), or 0 where unknown.
inline int64_t last_level_cache_bytes() {
  int64_t bytes = 0;
  for (int level = 0, i = 0;; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level_file(dir + "level"), size_file(dir + "size");
    int l = 0;
    std::string size;
    if (!(level_file >> l) || !(size_file >> size)) return bytes;
    char* unit = nullptr;
    int64_t b = std::strtoll(size.c_str(), &unit, 10);
    b <<= (*unit == 'K' ? 10 : *unit == 'M' ? 20 : *unit == 'G' ? 30 : 0);
    if (l >= level && b > 0) level = l, bytes = b;
  }
}

// Outputs of at least this many bytes are streamed: ZOO_OPS_STREAM_BYTES if set, else half the last-level cache
// (16 MiB where its size is unknown). Read once per process.
inline int64_t stream_min_bytes() {
  static const int64_t bytes = [] {
    if (const char* env = std::getenv("ZOO_OPS_STREAM_BYTES")) {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      TORCH_CHECK(*env != '\0' && *end == '\0' && v >= 0,
                  "ZOO_OPS_STREAM_BYTES must be a non-negative whole number of bytes, got '", env, "'");
      return static_cast<int64_t>(v);
    }
    const int64_t llc = last_level_cache_bytes();
    return llc > 0 ? llc / 2 : int64_t(16) << 20;
  }();
  return bytes;
}

// Whether an output of `bytes` at `out`, written as 64-byte vectors in units (planes or rows) of `unit_bytes`,
// is streamed: large enough, and every vector store covers one whole cache line.
inline bool use_stream_stores(const void* out, int64_t bytes, int64_t unit_bytes) {
#if defined(__SSE2__)
  return bytes >= stream_min_bytes() && reinterpret_cast<uintptr_t>(out) % 64 == 0 && unit_bytes % 64 == 0;
#else
  (void)out, (void)bytes, (void)unit_bytes;
  return false;
#endif
}

// Writes one 64-byte aligned line around the cache.
template <typename T>
ZOO_CPU_INLINE void stream64(T* p, Vec64<T> v) {
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float>) {
    __m128 q[4];
    std::memcpy(q, &v, sizeof(v));
    for (int i = 0; i < 4; ++i) _mm_stream_ps(p + 4 * i, q[i]);
  } else {
    __m128d q[4];
    std::memcpy(q, &v, sizeof(v));
    for (int i = 0; i < 4; ++i) _mm_stream_pd(p + 2 * i, q[i]);
  }
#else
  store64<T>(p, v);
#endif
}

// A 64-byte vector store: streamed (p 64-byte aligned) or plain.
template <bool Stream, typename T>
ZOO_CPU_INLINE void put64(T* p, Vec64<T> v) {
  if constexpr (Stream) {
    stream64<T>(p, v);
  } else {
    store64<T>(p, v);
  }
}

// Makes a task's streamed stores (weakly ordered) visible before whatever runs after it.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace zoo
