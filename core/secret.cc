#include "core/secret.h"

#include <sys/random.h>

#include <atomic>

namespace rulloc::internal {

constinit std::atomic<uint64_t> process_secret{0};

uint64_t DrawProcessSecret() {
  uint64_t fresh = 0;
  if (getrandom(&fresh, sizeof(fresh), GRND_NONBLOCK) != sizeof(fresh)) {
    // No entropy yet (early boot): fall back to address-space layout.
    fresh = reinterpret_cast<uintptr_t>(&process_secret) * 0xbf58476d1ce4e5b9ull;
  }
  fresh |= 1;
  uint64_t expected = 0;
  process_secret.compare_exchange_strong(expected, fresh, std::memory_order_relaxed);
  return process_secret.load(std::memory_order_relaxed);
}

}  // namespace rulloc::internal
