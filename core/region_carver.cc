#include "core/region_carver.h"

#include <algorithm>
#include <cstdint>

#include "concurrency/backoff.h"
#include "concurrency/spin_lock.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// Eight huge pages: where the system backs memory with huge pages on its
// own, each chunk is eight of them. If the OS refuses that much, one.
constexpr size_t kChunkBytes = 8 * platform::kHugePageSize;
constexpr size_t kSmallChunkBytes = platform::kHugePageSize;

struct Range {
  char* base;
  size_t size;
  uint64_t since_ms = 0;  // retained ranges: when they were last added to
};

// Decommitted ranges kept for reuse, sorted by address, neighbours merged.
struct Retained {
  Range ranges[RegionCarver::kRetainedRanges] = {};
  size_t count = 0;
  size_t bytes = 0;

  // Adds [base, base+size) at `now_ms`; false if that needs a slot and
  // none is free. A merged range takes the newest time of its parts.
  bool Add(char* base, size_t size, uint64_t now_ms) {
    const Range* at = std::lower_bound(ranges, ranges + count, base,
                                       [](const Range& r, char* b) { return r.base < b; });
    size_t i = static_cast<size_t>(at - ranges);
    const bool joins_previous = i > 0 && ranges[i - 1].base + ranges[i - 1].size == base;
    const bool joins_next = i < count && base + size == ranges[i].base;
    if (joins_previous && joins_next) {
      ranges[i - 1].size += size + ranges[i].size;
      ranges[i - 1].since_ms = now_ms;
      std::copy(ranges + i + 1, ranges + count, ranges + i);
      --count;
    } else if (joins_previous) {
      ranges[i - 1].size += size;
      ranges[i - 1].since_ms = now_ms;
    } else if (joins_next) {
      ranges[i].base = base;
      ranges[i].size += size;
      ranges[i].since_ms = now_ms;
    } else {
      if (count == RegionCarver::kRetainedRanges) return false;
      std::copy_backward(ranges + i, ranges + count, ranges + count + 1);
      ranges[i] = {base, size, now_ms};
      ++count;
    }
    bytes += size;
    return true;
  }
  // Moves up to `max` ranges added at or before `cutoff_ms` to `out`.
  size_t TakeOld(uint64_t cutoff_ms, Range* out, size_t max) {
    size_t taken = 0, kept = 0;
    for (size_t i = 0; i < count; ++i) {
      if (taken < max && ranges[i].since_ms <= cutoff_ms) {
        out[taken++] = ranges[i];
        bytes -= ranges[i].size;
      } else {
        ranges[kept++] = ranges[i];
      }
    }
    count = kept;
    return taken;
  }
  // The front `size` bytes of the lowest range that holds them, or nullptr.
  char* Take(size_t size) {
    for (size_t i = 0; i < count; ++i) {
      if (ranges[i].size < size) continue;
      char* base = ranges[i].base;
      ranges[i].base += size;
      ranges[i].size -= size;
      if (ranges[i].size == 0) {
        std::copy(ranges + i + 1, ranges + count, ranges + i);
        --count;
      }
      bytes -= size;
      return base;
    }
    return nullptr;
  }
};

// Everything Carve uses, under one lock.
struct Chunk {
  SpinLock lock;
  char* next = nullptr;  // the part of the current chunk not cut yet
  char* end = nullptr;
  Retained retained;
};
constinit Chunk chunk;

// A batch taken off `pending` whose pages a thread gives back with no lock
// held. A fork() meanwhile leaves the batch to the child untracked; the
// child finishes it instead (AdoptInFlightAfterFork).
//
//   in_flight[i]: { owner, count, ranges[0..count) }   (count 0: slot free)
struct InFlight {
  const void* owner = nullptr;  // the thread at work on it
  size_t count = 0;
  Range ranges[RegionCarver::kPendingRegions] = {};
};
constexpr size_t kInFlightBatches = 8;

// Regions given back, waiting for a batch; and the batches in flight.
struct Pending {
  SpinLock lock;
  Range ranges[RegionCarver::kPendingRegions] = {};
  size_t count = 0;
  size_t bytes = 0;
  InFlight in_flight[kInFlightBatches];
};
constinit Pending pending;

// Identifies the calling thread (the same in a fork child).
constinit thread_local char this_thread __attribute__((tls_model("initial-exec")));

// Moves every pending range, sorted and with neighbours merged, to a free
// in-flight slot and returns it, or nullptr if no slot is free; called with
// the lock held.
InFlight* TakePending() {
  for (InFlight& batch : pending.in_flight) {
    if (batch.count != 0) continue;
    Range* out = batch.ranges;
    std::sort(pending.ranges, pending.ranges + pending.count,
              [](const Range& a, const Range& b) { return a.base < b.base; });
    size_t merged = 0;
    for (size_t i = 0; i < pending.count;) {
      Range r = pending.ranges[i];
      for (++i; i < pending.count && pending.ranges[i].base == r.base + r.size; ++i) {
        r.size += pending.ranges[i].size;
      }
      out[merged++] = r;
    }
    batch.owner = &this_thread;
    batch.count = merged;
    pending.count = 0;
    pending.bytes = 0;
    return &batch;
  }
  return nullptr;
}

// The ranges of a batch whose pages were given back, and those to unmap
// (where pages cannot be given back, under mlockall; or that the retained
// list has no room for).
struct GivenBack {
  Range decommitted[RegionCarver::kPendingRegions];
  Range unkept[RegionCarver::kPendingRegions];
  size_t decommitted_count = 0;
  size_t unkept_count = 0;

  explicit GivenBack(const InFlight& batch) {
    platform::PageRange pages[RegionCarver::kPendingRegions];
    bool done[RegionCarver::kPendingRegions];
    for (size_t i = 0; i < batch.count; ++i)
      pages[i] = {batch.ranges[i].base, batch.ranges[i].size};
    platform::DecommitRanges(pages, batch.count, done);
    for (size_t i = 0; i < batch.count; ++i) {
      if (done[i]) {
        decommitted[decommitted_count++] = batch.ranges[i];
      } else {
        unkept[unkept_count++] = batch.ranges[i];
      }
    }
  }
  // Retains the decommitted ranges, and frees the batch's slot; called
  // under both locks.
  void RetainLocked(InFlight* batch) {
    const uint64_t now_ms = platform::CoarseMonotonicMillis();
    for (size_t i = 0; i < decommitted_count; ++i) {
      if (!chunk.retained.Add(decommitted[i].base, decommitted[i].size, now_ms)) {
        unkept[unkept_count++] = decommitted[i];
      }
    }
    batch->count = 0;
    batch->owner = nullptr;
  }
  void ReleaseUnkept() const {
    for (size_t i = 0; i < unkept_count; ++i) platform::Release(unkept[i].base, unkept[i].size);
  }
};

// Gives back the pages of the batch's ranges and retains their address
// space (unmaps what does not fit), then frees the slot.
void DecommitAndRetain(InFlight* batch) {
  // The slot stays as it is until it is freed, so that a fork child reads
  // a whole batch.
  GivenBack done(*batch);
  {
    // Retained and off the slot in one step, as a fork sees it (lock order
    // as in LockForFork).
    SpinLockHolder hold_chunk(chunk.lock);
    SpinLockHolder hold_pending(pending.lock);
    done.RetainLocked(batch);
  }
  done.ReleaseUnkept();
}

// Takes the pending ranges into a slot and gives them back; waits for a
// slot while every one is in flight (each is freed within a few system
// calls, by a thread that holds none of the caller's locks).
void FlushPending() {
  Backoff backoff;
  for (;;) {
    InFlight* batch;
    {
      SpinLockHolder hold(pending.lock);
      if (pending.count == 0) return;
      batch = TakePending();
    }
    if (batch != nullptr) return DecommitAndRetain(batch);
    backoff.Wait();
  }
}

}  // namespace

void RegionCarver::LockForFork() {
  chunk.lock.lock();
  pending.lock.lock();
}
void RegionCarver::UnlockAfterFork() {
  pending.lock.unlock();
  chunk.lock.unlock();
}

void RegionCarver::AdoptInFlightAfterFork() {
  for (InFlight& batch : pending.in_flight) {
    // The forking thread's own batch is finished by that thread, which
    // goes on in the child.
    if (batch.count == 0 || batch.owner == &this_thread) continue;
    GivenBack done(batch);
    done.RetainLocked(&batch);
    done.ReleaseUnkept();
  }
}

void RegionCarver::Return(void* base, size_t size) {
#ifdef _WIN32
  platform::Release(base, size);  // whole reservations only
  return;
#endif
  for (;;) {
    InFlight* batch = nullptr;
    {
      SpinLockHolder hold(pending.lock);
      if (pending.count < kPendingRegions) {
        pending.ranges[pending.count++] = {static_cast<char*>(base), size};
        pending.bytes += size;
        if (pending.count < kPendingRegions && pending.bytes < kPendingBytes) return;
        batch = TakePending();
        if (batch == nullptr) return;  // the next Return or Flush takes it
      }
    }
    if (batch != nullptr) return DecommitAndRetain(batch);
    // The list is full and every slot in flight: give a batch back first.
    FlushPending();
  }
}

void RegionCarver::Flush() { FlushPending(); }

size_t RegionCarver::ReleaseRetained(uint64_t max_age_ms) {
  const uint64_t now_ms = platform::CoarseMonotonicMillis();
  if (max_age_ms != 0 && now_ms < max_age_ms) return 0;
  const uint64_t cutoff_ms = max_age_ms == 0 ? UINT64_MAX : now_ms - max_age_ms;
  // Unmapped in groups, so that no lock is held across munmap.
  size_t released = 0;
  if (max_age_ms == 0) {
    // All of it: the current chunk's uncut tail too (never touched; the
    // next region comes from a new chunk).
    Range tail{nullptr, 0};
    {
      SpinLockHolder hold(chunk.lock);
      if (chunk.next != chunk.end) tail = {chunk.next, static_cast<size_t>(chunk.end - chunk.next)};
      chunk.next = chunk.end = nullptr;
    }
    if (tail.size != 0) {
      platform::Release(tail.base, tail.size);
      released += tail.size;
    }
  }
  for (;;) {
    Range taken[64];
    size_t count;
    {
      SpinLockHolder hold(chunk.lock);
      count = chunk.retained.TakeOld(cutoff_ms, taken, 64);
    }
    if (count == 0) return released;
    for (size_t i = 0; i < count; ++i) {
      platform::Release(taken[i].base, taken[i].size);
      released += taken[i].size;
    }
  }
}

size_t RegionCarver::RetainedBytes() {
  SpinLockHolder hold(chunk.lock);
  return chunk.retained.bytes;
}

void* RegionCarver::Carve(size_t size) {
#ifdef _WIN32
  return nullptr;
#endif
  if (kSmallChunkBytes % size != 0) return nullptr;
  Range unkept_tail{nullptr, 0};
  void* region = nullptr;
  {
    SpinLockHolder hold(chunk.lock);
    region = chunk.retained.Take(size);
    if (region == nullptr && static_cast<size_t>(chunk.end - chunk.next) < size) {
      // An unused tail (only when region sizes are mixed) is kept too: it
      // was never touched.
      const size_t tail = static_cast<size_t>(chunk.end - chunk.next);
      if (tail != 0 && !chunk.retained.Add(chunk.next, tail, platform::CoarseMonotonicMillis())) {
        unkept_tail = {chunk.next, tail};
      }
      chunk.next = chunk.end = nullptr;
      size_t bytes = kChunkBytes;
      void* fresh = platform::Reserve(bytes, platform::kHugePageSize, /*commit=*/true);
      if (fresh == nullptr) {
        bytes = kSmallChunkBytes;
        fresh = platform::Reserve(bytes, platform::kHugePageSize, /*commit=*/true);
      }
      if (fresh != nullptr) {
        chunk.next = static_cast<char*>(fresh);
        chunk.end = chunk.next + bytes;
      }
    }
    if (region == nullptr && chunk.next != nullptr) {
      region = chunk.next;
      chunk.next += size;
    }
  }
  if (unkept_tail.size != 0) platform::Release(unkept_tail.base, unkept_tail.size);
  return region;
}

}  // namespace rulloc::internal
