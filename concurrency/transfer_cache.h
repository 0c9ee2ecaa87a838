// Transfer caches: whole batches of blocks handed between thread caches
// without touching the blocks or their regions.
//
//   thread cache ── flush batch ──►  cache (arena, bucket)  ── refill batch ──► thread cache
//                       full / empty:        ▼ ▲
//                                    SmallBucket (regions, per-block work)
//
// Every cache's lock and counts sit in one dense array, apart from its
// page of slots:
//
//   headers  [arena][bucket]  ┌──────┬───────┬───────────┐ one line each
//                             │ lock │ count │ low water │
//                             └──────┴───────┴───────────┘
//   slots    [arena][bucket]  ┌─────────────────────────────┐ one page each
//                             │ p p p p ... p               │ count ≤ capacity
//                             └─────────────────────────────┘
//
// Looking at an empty cache (a refill that tries every arena, the decay,
// statistics, the locks taken around fork) reads its header line only: a
// never-used cache's page of slots is never faulted in, not even as the
// kernel's zero page.
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

// Blocks one transfer cache can hold: a page of pointers.
inline constexpr uint32_t kTransferSlots = 512;

template <size_t kArenas, size_t kBuckets>
class TransferCaches {
 public:
  // Stores all of blocks[0..n) or none; true if stored.
  bool Put(size_t arena, size_t bucket, void* const* blocks, uint32_t n, uint32_t capacity) {
    Header& h = headers_[arena][bucket];
    SpinLockHolder hold(h.lock);
    const uint32_t count = h.count.load(std::memory_order_relaxed);
    if (count + n > capacity) return false;
    std::memcpy(&slots_[arena][bucket].at[count], blocks, n * sizeof(void*));
    h.count.store(count + n, std::memory_order_relaxed);
    return true;
  }
  // Takes up to n blocks; returns how many.
  uint32_t Take(size_t arena, size_t bucket, void** out, uint32_t n) {
    Header& h = headers_[arena][bucket];
    if (h.empty()) return 0;
    SpinLockHolder hold(h.lock);
    uint32_t count = h.count.load(std::memory_order_relaxed);
    if (n > count) n = count;
    count -= n;
    h.count.store(count, std::memory_order_relaxed);
    if (count < h.low_water) h.low_water = count;
    std::memcpy(out, &slots_[arena][bucket].at[count], n * sizeof(void*));
    return n;
  }
  // Takes the blocks that stayed in the cache since the previous call.
  uint32_t TakeIdle(size_t arena, size_t bucket, void** out) {
    Header& h = headers_[arena][bucket];
    if (h.empty()) return 0;  // and the low-water mark is 0 already
    SpinLockHolder hold(h.lock);
    void** slots = slots_[arena][bucket].at;
    const uint32_t count = h.count.load(std::memory_order_relaxed);
    const uint32_t n = h.low_water < count ? h.low_water : count;
    std::memcpy(out, &slots[0], n * sizeof(void*));
    std::memmove(&slots[0], &slots[n], (count - n) * sizeof(void*));
    h.count.store(count - n, std::memory_order_relaxed);
    h.low_water = count - n;
    return n;
  }
  bool Contains(size_t arena, size_t bucket, const void* block) {
    Header& h = headers_[arena][bucket];
    if (h.empty()) return false;
    SpinLockHolder hold(h.lock);
    const uint32_t count = h.count.load(std::memory_order_relaxed);
    void* const* slots = slots_[arena][bucket].at;
    for (uint32_t i = 0; i < count; ++i) {
      if (slots[i] == block) return true;
    }
    return false;
  }
  uint32_t count(size_t arena, size_t bucket) const {
    return headers_[arena][bucket].count.load(std::memory_order_relaxed);
  }
  // Every lock of arenas [0, arenas), around fork.
  void LockAll(size_t arenas) {
    for (size_t a = 0; a < arenas; ++a) {
      for (Header& h : headers_[a]) h.lock.lock();
    }
  }
  void UnlockAll(size_t arenas) {
    for (size_t a = 0; a < arenas; ++a) {
      for (Header& h : headers_[a]) h.lock.unlock();
    }
  }

 private:
  // A line each: caches of neighbouring buckets, used by different
  // threads, do not share one.
  struct alignas(64) Header {
    // Read without the lock, so that looking at an idle cache writes
    // nothing.
    bool empty() const { return count.load(std::memory_order_relaxed) == 0; }

    SpinLock lock;
    std::atomic<uint32_t> count{0};
    uint32_t low_water = 0;  // lowest count since the last TakeIdle()
  };
  struct alignas(4096) Slots {
    void* at[kTransferSlots] = {};
  };
  static_assert(sizeof(Slots) == 4096);

  Header headers_[kArenas][kBuckets];
  Slots slots_[kArenas][kBuckets];
};

}  // namespace rulloc::internal

#endif  // RULLOC_CONCURRENCY_TRANSFER_CACHE_H_
