#include "core/region_carver.h"

#include <algorithm>

#include "concurrency/spin_lock.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// One huge page: where the system backs memory with huge pages on its own,
// each chunk is one.
constexpr size_t kChunkBytes = platform::kHugePageSize;

struct Chunk {
  SpinLock lock;
  char* next = nullptr;  // the part of the current chunk not cut yet
  char* end = nullptr;
};
constinit Chunk chunk;

struct Range {
  char* base;
  size_t size;
};
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

// Unmaps the ranges, neighbours merged into one call.
void ReleaseMerged(Range* ranges, size_t count) {
  std::sort(ranges, ranges + count, [](const Range& a, const Range& b) { return a.base < b.base; });
  for (size_t i = 0; i < count;) {
    char* base = ranges[i].base;
    size_t size = ranges[i].size;
    for (++i; i < count && ranges[i].base == base + size; ++i) size += ranges[i].size;
    platform::Release(base, size);
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
  if (count != 0) ReleaseMerged(full, count);
}

void RegionCarver::Flush() {
  Range taken[kPendingRegions];
  size_t count;
  {
    SpinLockHolder hold(pending.lock);
    count = TakePending(taken);
  }
  if (count != 0) ReleaseMerged(taken, count);
}

void* RegionCarver::Carve(size_t size) {
#ifdef _WIN32
  return nullptr;
#endif
  if (kChunkBytes % size != 0) return nullptr;
  char* leftover = nullptr;
  size_t leftover_bytes = 0;
  void* region = nullptr;
  {
    SpinLockHolder hold(chunk.lock);
    if (static_cast<size_t>(chunk.end - chunk.next) < size) {
      leftover = chunk.next;
      leftover_bytes = static_cast<size_t>(chunk.end - chunk.next);
      chunk.next = chunk.end = nullptr;
    }
    if (chunk.next == nullptr) {
      void* fresh = platform::Reserve(kChunkBytes, kChunkBytes, /*commit=*/true);
      if (fresh != nullptr) {
        chunk.next = static_cast<char*>(fresh);
        chunk.end = chunk.next + kChunkBytes;
      }
    }
    if (chunk.next != nullptr) {
      region = chunk.next;
      chunk.next += size;
    }
  }
  // Unused tails (only when region sizes are mixed) go back to the OS.
  if (leftover_bytes != 0) platform::Release(leftover, leftover_bytes);
  return region;
}

}  // namespace rulloc::internal
