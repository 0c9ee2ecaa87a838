#include "core/region_carver.h"

#include <algorithm>
#include <cstdint>

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

struct Pending {
  SpinLock lock;
  Range ranges[RegionCarver::kPendingRegions] = {};
  size_t count = 0;
  size_t bytes = 0;
};
constinit Pending pending;

// Takes every pending range out; called with the lock held.
size_t TakePending(Range* out) {
  const size_t count = pending.count;
  std::copy(pending.ranges, pending.ranges + count, out);
  pending.count = 0;
  pending.bytes = 0;
  return count;
}

// Gives back the pages of the ranges, neighbours merged into one call, and
// retains their address space (unmaps what does not fit).
void DecommitAndRetain(Range* ranges, size_t count) {
  std::sort(ranges, ranges + count, [](const Range& a, const Range& b) { return a.base < b.base; });
  size_t merged = 0;
  for (size_t i = 0; i < count;) {
    Range r = ranges[i];
    for (++i; i < count && ranges[i].base == r.base + r.size; ++i) r.size += ranges[i].size;
    // Where pages cannot be given back (mlockall), the range is unmapped.
    if (platform::Decommit(r.base, r.size)) {
      ranges[merged++] = r;
    } else {
      platform::Release(r.base, r.size);
    }
  }
  Range unkept[RegionCarver::kPendingRegions];
  size_t unkept_count = 0;
  const uint64_t now_ms = platform::CoarseMonotonicMillis();
  {
    SpinLockHolder hold(chunk.lock);
    for (size_t i = 0; i < merged; ++i) {
      if (!chunk.retained.Add(ranges[i].base, ranges[i].size, now_ms)) {
        unkept[unkept_count++] = ranges[i];
      }
    }
  }
  for (size_t i = 0; i < unkept_count; ++i) platform::Release(unkept[i].base, unkept[i].size);
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

void RegionCarver::Return(void* base, size_t size) {
#ifdef _WIN32
  platform::Release(base, size);  // whole reservations only
  return;
#endif
  Range full[kPendingRegions];
  size_t count = 0;
  {
    SpinLockHolder hold(pending.lock);
    pending.ranges[pending.count++] = {static_cast<char*>(base), size};
    pending.bytes += size;
    if (pending.count == kPendingRegions || pending.bytes >= kPendingBytes) {
      count = TakePending(full);
    }
  }
  if (count != 0) DecommitAndRetain(full, count);
}

void RegionCarver::Flush() {
  Range taken[kPendingRegions];
  size_t count;
  {
    SpinLockHolder hold(pending.lock);
    count = TakePending(taken);
  }
  if (count != 0) DecommitAndRetain(taken, count);
}

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
