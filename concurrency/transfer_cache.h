// Transfer caches: whole batches of blocks handed between thread caches
// without touching the blocks or their regions.
//
//   thread cache ── flush batch ──►  TransferCache[bucket]  ── refill batch ──► thread cache
//                                    ┌──────┬─────────────────────────┐
//                                    │ lock │ slots: p p p p ... p    │ count ≤ capacity
//                                    └──────┴─────────────────────────┘
//                       full / empty:        ▼ ▲
//                                    SmallBucket (regions, per-block work)
//
// In a producer/consumer pattern the consumer's flushes become the
// producer's refills through a copy of pointers. Blocks here count as
// handed out by their bucket, and as cached. tcmalloc's transfer cache is
// the model, including its decay: the slots are a stack, and the blocks
// below the lowest count seen since the last TakeIdle() have not moved since
// then; TakeIdle() hands those back for their bucket.
#ifndef RULLOC_CONCURRENCY_TRANSFER_CACHE_H_
#define RULLOC_CONCURRENCY_TRANSFER_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "concurrency/spin_lock.h"

namespace rulloc::internal {

// One page each: a cache that never holds more than a page of pointers
// touches one page of memory, not the two it would straddle.
class alignas(4096) TransferCache {
 public:
  static constexpr uint32_t kMaxSlots = 510;

  // Stores all of blocks[0..n) or none; true if stored.
  bool Put(void* const* blocks, uint32_t n, uint32_t capacity) {
    SpinLockHolder hold(lock_);
    const uint32_t count = count_.load(std::memory_order_relaxed);
    if (count + n > capacity) return false;
    std::memcpy(&slots_[count], blocks, n * sizeof(void*));
    count_.store(count + n, std::memory_order_relaxed);
    return true;
  }
  // Takes up to n blocks; returns how many.
  uint32_t Take(void** out, uint32_t n) {
    if (empty()) return 0;
    SpinLockHolder hold(lock_);
    uint32_t count = count_.load(std::memory_order_relaxed);
    if (n > count) n = count;
    count -= n;
    count_.store(count, std::memory_order_relaxed);
    if (count < low_water_) low_water_ = count;
    std::memcpy(out, &slots_[count], n * sizeof(void*));
    return n;
  }
  // Takes the blocks that stayed in the cache since the previous call.
  uint32_t TakeIdle(void** out) {
    if (empty()) return 0;  // and the low-water mark is 0 already
    SpinLockHolder hold(lock_);
    const uint32_t count = count_.load(std::memory_order_relaxed);
    const uint32_t n = low_water_ < count ? low_water_ : count;
    std::memcpy(out, &slots_[0], n * sizeof(void*));
    std::memmove(&slots_[0], &slots_[n], (count - n) * sizeof(void*));
    count_.store(count - n, std::memory_order_relaxed);
    low_water_ = count - n;
    return n;
  }
  bool Contains(const void* block) {
    if (empty()) return false;
    SpinLockHolder hold(lock_);
    const uint32_t count = count_.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < count; ++i) {
      if (slots_[i] == block) return true;
    }
    return false;
  }
  uint32_t count() const { return count_.load(std::memory_order_relaxed); }
  SpinLock& lock() { return lock_; }

 private:
  // Read without the lock, so that looking at an idle cache (decay,
  // statistics) writes nothing: never-used caches stay untouched pages.
  bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }

  SpinLock lock_;
  std::atomic<uint32_t> count_{0};
  uint32_t low_water_ = 0;  // lowest count_ since the last TakeIdle()
  void* slots_[kMaxSlots] = {};
};
static_assert(sizeof(TransferCache) == 4096);

}  // namespace rulloc::internal

#endif  // RULLOC_CONCURRENCY_TRANSFER_CACHE_H_
