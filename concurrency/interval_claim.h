// Rate limiting without a lock: of all the threads that find `interval_ms`
// elapsed since `last_ms`, exactly one claims the turn (and moves `last_ms`
// to `now_ms`). Used by the decay steps, which slow paths try often.
//
//   last_ms ──────────── interval ──────────► now_ms: the CAS winner runs
#ifndef RULLOC_CONCURRENCY_INTERVAL_CLAIM_H_
#define RULLOC_CONCURRENCY_INTERVAL_CLAIM_H_

#include <atomic>
#include <cstdint>

namespace rulloc {

inline bool ClaimInterval(std::atomic<uint64_t>& last_ms, uint64_t now_ms, uint64_t interval_ms) {
  uint64_t last = last_ms.load(std::memory_order_relaxed);
  // (A reading taken before another thread's claim is older than `last`.)
  if (now_ms < last || now_ms - last < interval_ms) return false;
  return last_ms.compare_exchange_strong(last, now_ms, std::memory_order_relaxed);
}

}  // namespace rulloc

#endif  // RULLOC_CONCURRENCY_INTERVAL_CLAIM_H_
