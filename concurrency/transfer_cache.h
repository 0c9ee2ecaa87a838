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

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "concurrency/spin_lock.h"

namespace rulloc::internal {

class alignas(64) TransferCache {
 public:
  static constexpr uint32_t kMaxSlots = 512;

  // Stores all of blocks[0..n) or none; true if stored.
  bool Put(void* const* blocks, uint32_t n, uint32_t capacity) {
    SpinLockHolder hold(lock_);
    if (count_ + n > capacity) return false;
    std::memcpy(&slots_[count_], blocks, n * sizeof(void*));
    count_ += n;
    return true;
  }
  // Takes up to n blocks; returns how many.
  uint32_t Take(void** out, uint32_t n) {
    SpinLockHolder hold(lock_);
    if (n > count_) n = count_;
    count_ -= n;
    if (count_ < low_water_) low_water_ = count_;
    std::memcpy(out, &slots_[count_], n * sizeof(void*));
    return n;
  }
  // Takes the blocks that stayed in the cache since the previous call.
  uint32_t TakeIdle(void** out) {
    SpinLockHolder hold(lock_);
    const uint32_t n = low_water_ < count_ ? low_water_ : count_;
    std::memcpy(out, &slots_[0], n * sizeof(void*));
    std::memmove(&slots_[0], &slots_[n], (count_ - n) * sizeof(void*));
    count_ -= n;
    low_water_ = count_;
    return n;
  }
  bool Contains(const void* block) {
    SpinLockHolder hold(lock_);
    for (uint32_t i = 0; i < count_; ++i) {
      if (slots_[i] == block) return true;
    }
    return false;
  }
  uint32_t count() {
    SpinLockHolder hold(lock_);
    return count_;
  }
  SpinLock& lock() { return lock_; }

 private:
  SpinLock lock_;
  uint32_t count_ = 0;
  uint32_t low_water_ = 0;  // lowest count_ since the last TakeIdle()
  void* slots_[kMaxSlots] = {};
};

}  // namespace rulloc::internal

#endif  // RULLOC_CONCURRENCY_TRANSFER_CACHE_H_
