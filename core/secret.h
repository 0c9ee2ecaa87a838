// A per-process secret mixed into heap metadata checks, so that user data
// cannot forge valid metadata by accident.
#ifndef RULLOC_CORE_SECRET_H_
#define RULLOC_CORE_SECRET_H_

#include <atomic>
#include <cstdint>

namespace rulloc::internal {

// 0 until the first use draws it; never 0 after.
extern constinit std::atomic<uint64_t> process_secret;
uint64_t DrawProcessSecret();

inline uint64_t ProcessSecret() {
  const uint64_t s = process_secret.load(std::memory_order_relaxed);
  return __builtin_expect(s != 0, 1) ? s : DrawProcessSecret();
}

inline uint64_t CheckWord(const void* where, uint64_t value) {
  uint64_t x =
      reinterpret_cast<uintptr_t>(where) ^ (value * 0x9e3779b97f4a7c15ull) ^ ProcessSecret();
  return x ^ (x >> 29);
}

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_SECRET_H_
