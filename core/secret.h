// A per-process secret mixed into heap metadata checks, so that user data
// cannot forge valid metadata by accident.
#ifndef RULLOC_CORE_SECRET_H_
#define RULLOC_CORE_SECRET_H_

#include <cstdint>

namespace rulloc::internal {

uint64_t ProcessSecret();

inline uint64_t CheckWord(const void* where, uint64_t value) {
  uint64_t x =
      reinterpret_cast<uintptr_t>(where) ^ (value * 0x9e3779b97f4a7c15ull) ^ ProcessSecret();
  return x ^ (x >> 29);
}

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_SECRET_H_
