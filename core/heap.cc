#include "core/heap.h"

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "concurrency/interval_claim.h"
#include "core/diagnostics.h"
#include "core/page_map.h"
#include "core/region_carver.h"
#include "core/runtime_options.h"
#include "platform/cpu.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// Alignments up to this go to large buckets; beyond, to huge mappings.
constexpr size_t kLargeAlignmentMax = size_t{64} << 10;

}  // namespace

void* Heap::Allocate(size_t size, size_t alignment, size_t* dirty) {
  if (size == 0) size = 1;   // a unique pointer, strictly inside its block
  if (size > PTRDIFF_MAX) {  // never satisfiable: no purge for it
    errno = ENOMEM;
    return nullptr;
  }
  if (alignment <= kMinAlignment && size <= small_max_) {
    void* block = RetryAfterPurge([&]() -> void* {
      void* b;
      return SmallBucketFor(size).AllocateBatch(&b, 1) == 1 ? b : nullptr;
    });
    if (block == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    *static_cast<uint64_t*>(block) = 0;  // a thread cache's stale free mark
    MaybePurge();
    return block;
  }
  void* p = RetryAfterPurge([&] { return AllocateSlow(size, alignment, dirty); });
  if (p == nullptr) errno = ENOMEM;
  return p;
}

void* Heap::AllocateZeroed(size_t size, size_t alignment) {
  size_t dirty = SIZE_MAX;  // all of it, unless the large or huge path knows better
  void* p = Allocate(size, alignment, &dirty);
  if (p != nullptr) {
    std::memset(p, 0, platform::kDecommitReadsZero ? std::min(dirty, size) : size);
  }
  return p;
}

void* Heap::AllocateSlow(size_t size, size_t alignment, size_t* dirty) {
  void* p = nullptr;
  if (alignment <= small_max_ && size <= small_max_ - alignment + kMinAlignment) {
    p = SmallBucketFor(size + alignment - kMinAlignment).AllocateAligned(alignment);
  } else if (runtime_options.hardened) {
    p = huge_.Allocate(size, alignment, dirty);  // guarded, a mapping of its own
  } else if (alignment <= kLargeAlignmentMax &&
             size <=
                 kLargeMax - (alignment > kMinAlignment ? alignment + LargeBucket::kHeader : 0)) {
    p = LargeForThisCpu().Allocate(size, alignment, /*growable=*/false, dirty);
  } else {
    p = huge_.Allocate(size, alignment, dirty);
  }
  if (p == nullptr) errno = ENOMEM;
  MaybePurge();
  return p;
}

RegionHeader* RegionHolding(const void* p) {
  RegionHeader* region = PageMap::Lookup(p);
  return region != nullptr && region->Holds(p) ? region : nullptr;
}

RegionHeader* Heap::RegionOf(const void* p, const char* operation) {
  RegionHeader* region = RegionHolding(p);
  if (region == nullptr) ReportHeapMisuse(operation, p);
  if (region->heap != this) {
    ReportHeapMisuse("pointer belongs to another rulloc allocator instance", p);
  }
  return region;
}

bool Heap::Owns(const void* p) const {
  RegionHeader* region = RegionHolding(p);
  return region != nullptr && region->heap == this;
}

void Heap::Deallocate(void* p) {
  if (p == nullptr) return;
  RegionHeader* region = RegionOf(p, "free of a pointer not allocated by rulloc");
  // (Before hardened mode's zeroing, which would erase a cached block's
  // mark; only for a block start: the check reads the block.)
  if (region->kind == RegionKind::kSmall) CheckNotCached(region, p, "double free");
  size_t usable;
  if (runtime_options.hardened && region->kind != RegionKind::kHuge && TryUsableSize(p, &usable)) {
    std::memset(p, 0, usable);  // zero on free (an invalid p is reported below)
  }
  switch (region->kind) {
    case RegionKind::kSmall:
      reinterpret_cast<SmallRegion*>(region)->bucket->Free(p);
      return;
    case RegionKind::kLarge:
      reinterpret_cast<LargeRegion*>(region)->bucket->Free(p);
      MaybePurge();
      return;
    case RegionKind::kHuge:
      huge_.Free(reinterpret_cast<HugeRegion*>(region), p);
      return;
  }
  ReportHeapMisuse("free of a pointer with corrupted region metadata", p);
}

void Heap::DeallocateSized(void* p, size_t size, bool aligned) {
  if (p == nullptr) return;
  RegionHeader* region = RegionOf(p, "free of a pointer not allocated by rulloc");
  size_t usable;
  if (UsableSizeIn(region, p, &usable)) {  // (an invalid `p` is reported by Deallocate)
    // (A large block is padded to at least kMinPayload bytes, and handed
    // out whole when less than a split's worth would be left past that.)
    const size_t padded = LargeBucket::PaddedPayload(size);
    bool fits = SizeFitsBlock(size, usable, aligned) ||
                (size <= usable && region->kind == RegionKind::kLarge &&
                 usable - std::min(padded, usable) < LargeBucket::kMinSplit);
    if (!fits && size <= usable && region->kind == RegionKind::kSmall) {
      const uint32_t bucket = reinterpret_cast<SmallRegion*>(region)->bucket_index;
      fits = bucket == 0 || size > SmallBucketAt(0, bucket - 1).block_size();
    }
    if (!fits) ReportHeapMisuse("free with a wrong size", p);
  }
  Deallocate(p);
}

void Heap::CheckNotCached(RegionHeader* region, void* p, const char* fault) {
  CachedBlockCheck check = cached_block_check_.load(std::memory_order_acquire);
  if (check == nullptr) return;
  auto* small = reinterpret_cast<SmallRegion*>(region);
  if (small->HandedOutBlockAt(p) != small->layout.capacity) check(p, small->bucket_index, fault);
}

bool Heap::TryUsableSize(const void* p, size_t* usable) {
  RegionHeader* region = PageMap::Lookup(p);
  return region != nullptr && region->heap == this && UsableSizeIn(region, p, usable);
}

bool Heap::UsableSizeIn(RegionHeader* region, const void* p, size_t* usable) {
  switch (region->kind) {
    case RegionKind::kSmall: {
      auto* small = reinterpret_cast<SmallRegion*>(region);
      void* start = small->BlockStart(p);
      if (start == nullptr) return false;
      *usable = small->layout.block_size -
                static_cast<size_t>(static_cast<const char*>(p) - static_cast<char*>(start));
      return true;
    }
    case RegionKind::kLarge:
      return LargeBucket::UsableSize(p, usable);
    case RegionKind::kHuge:
      return HugeBlocks::UsableSize(reinterpret_cast<HugeRegion*>(region), p, usable);
  }
  return false;
}

size_t Heap::UsableSize(const void* p) {
  return UsableSizeIn(RegionOf(p, "usable_size of a pointer not allocated by rulloc"), p);
}

namespace {
// Reports `p`, no live block of `region`: as `freed` if it starts a block
// that is not handed out (a huge block's mapping: cached), else `invalid`.
[[noreturn]] void ReportNotLive(RegionHeader* region, const void* p, const char* freed,
                                const char* invalid) {
  bool was_block = false;
  if (region->kind == RegionKind::kSmall) {
    const auto* small = reinterpret_cast<SmallRegion*>(region);
    const uint32_t index = small->BlockStartingAt(p);
    was_block =
        index != small->layout.capacity &&
        ((small->allocated_bits[index / 64].load(std::memory_order_relaxed) >> (index % 64)) & 1) ==
            0;
  } else if (region->kind == RegionKind::kHuge) {
    was_block = p == reinterpret_cast<HugeRegion*>(region)->payload();
  }
  ReportHeapMisuse(was_block ? freed : invalid, p);
}
}  // namespace

size_t Heap::UsableSizeIn(RegionHeader* region, const void* p) {
  size_t usable;
  if (!UsableSizeIn(region, p, &usable)) {
    ReportNotLive(region, p, "usable_size of a freed pointer", "usable_size of an invalid pointer");
  }
  return usable;
}

void* Heap::Reallocate(void* p, size_t size, size_t alignment) {
  if (p == nullptr) return Allocate(size, alignment);
  return ReallocateIn(RegionOf(p, "realloc of a pointer not allocated by rulloc"), p, size,
                      alignment);
}

void* Heap::ReallocateIn(RegionHeader* region, void* p, size_t size, size_t alignment) {
  const bool aligned = (reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0;
  size_t usable;
  if (region->kind == RegionKind::kLarge) {
    // One look at the block: validated, measured and, when the size stays
    // in the large range, resized in place under one lock acquisition.
    const bool stays_large =
        aligned && (size > small_max_ || size >= kGrowInPlaceMin) && size <= kLargeMax;
    if (reinterpret_cast<LargeRegion*>(region)->bucket->Resize(p, stays_large ? size : 0,
                                                               &usable)) {
      return p;
    }
  } else {
    if (region->kind == RegionKind::kSmall) CheckNotCached(region, p, "realloc of a freed pointer");
    if (!UsableSizeIn(region, p, &usable)) {
      ReportNotLive(region, p, "realloc of a freed pointer", "realloc of an invalid pointer");
    }
    if (aligned && region->kind == RegionKind::kHuge && size > kLargeMax) {
      auto* huge = reinterpret_cast<HugeRegion*>(region);
      if (huge_.ResizeInPlace(huge, p, size)) return p;
      // Growing: the kernel moves the pages, nothing is copied.
      if (size > usable) {
        if (void* moved = huge_.Move(huge, p, size, alignment)) return moved;
      }
    }
  }
  // Keep a block when the new size fits and wastes at most half of it.
  if (aligned && size <= usable && size >= usable / 2) return p;
  // A block that grows to kGrowInPlaceMin or more moves to a large bucket,
  // where its next growth steps can happen in place, and out of the way of
  // the block in use before it.
  const bool into_large = size > usable && size >= kGrowInPlaceMin && size <= kLargeMax &&
                          alignment <= kMinAlignment && !runtime_options.hardened;
  void* fresh = into_large ? AllocateGrowable(size) : Allocate(size, alignment);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, p, size < usable ? size : usable);
  Deallocate(p);
  return fresh;
}

namespace {
// Threads take the large buckets in turn for the buffers they grow: slot
// 1 + (n mod kMaxArenas) for the n-th thread that asks, 0 before it asks.
std::atomic<uint32_t> growable_slots_taken{0};
constinit thread_local uint32_t growable_slot __attribute__((tls_model("initial-exec"))) = 0;
}  // namespace

void* Heap::AllocateGrowable(size_t size) {
  void* p = RetryAfterPurge(
      [&] { return LargeForThisThread().Allocate(size, kMinAlignment, /*growable=*/true); });
  if (p == nullptr) errno = ENOMEM;
  MaybePurge();  // a slow path, as AllocateSlow
  return p;
}

LargeBucket& Heap::LargeForThisThread() {
  if (growable_slot == 0) {
    growable_slot = growable_slots_taken.fetch_add(1, std::memory_order_relaxed) % kMaxArenas + 1;
  }
  return large_[growable_slot - 1];
}

LargeBucket& Heap::LargeForThisCpu() {
  return arena_count_ == 1 ? large_[0] : large_[platform::CurrentCpu() % arena_count_];
}

LargeBucketStats Heap::LargeStats(size_t /*bucket*/) {
  LargeBucketStats total = large_[0].Stats();
  for (size_t a = 1; a < kMaxArenas; ++a) total += large_[a].Stats();  // growable: all
  return total;
}

SmallBucketStats Heap::SmallStats(size_t bucket) {
  SmallBucketStats total = small_[bucket].Stats();
  for (size_t a = 1; a < arena_count_; ++a) total += SmallBucketAt(a, bucket).Stats();
  return total;
}

AllocatorStats Heap::Stats() {
  AllocatorStats total;
  size_t decommitted = 0;
  for (size_t i = 0; i < small_count_; ++i) {
    SmallBucketStats s = SmallStats(i);
    total.small_blocks_in_use += s.blocks_in_use;
    total.small_blocks_free += s.blocks_free;
    total.bytes_in_use += s.blocks_in_use * s.block_size;
    total.bytes_mapped += s.bytes_mapped;
    total.regions_mapped += s.regions_mapped;
    total.regions_unmapped += s.regions_unmapped;
  }
  for (size_t b = 0; b < kLargeBuckets; ++b) {
    const LargeBucketStats s = LargeStats(b);
    total.large_blocks_in_use += s.blocks_in_use;
    total.bytes_in_use += s.bytes_in_use;
    total.bytes_mapped += s.bytes_mapped;
    total.regions_mapped += s.regions_mapped;
    total.regions_unmapped += s.regions_unmapped;
    decommitted += s.bytes_decommitted;
  }
  HugeStats h = huge_.Stats();
  total.huge_blocks_in_use = h.blocks_in_use;
  total.bytes_in_use += h.bytes_in_use;
  total.bytes_mapped += h.bytes_mapped;
  total.huge_bytes_cached = h.bytes_cached;
  total.bytes_committed = total.bytes_mapped - decommitted;
  return total;
}

size_t Heap::Purge(uint64_t max_age_ms, size_t* retained) {
  const uint64_t now = platform::CoarseMonotonicMillis();
  size_t unmapped = 0;
  ForEachSmallBucket([&](SmallBucket& b) { unmapped += b.Purge(now, max_age_ms); });
  for (LargeBucket& bucket : large_) unmapped += bucket.Purge(now, max_age_ms);
  unmapped += huge_.Purge(now, max_age_ms);
  RegionCarver::Flush();
  // The address space kept for small regions goes back when unused for as
  // long (with no age, trim or out of memory: a large or huge mapping may
  // need it).
  const size_t released = RegionCarver::ReleaseRetained(max_age_ms);
  if (retained != nullptr) *retained += released;
  return unmapped;
}

bool Heap::MaybePurge() {
  // Look at the clock once every 64 calls of this thread.
  static thread_local uint32_t calls __attribute__((tls_model("initial-exec"))) = 0;
  if ((++calls & 63) != 0) return false;
  if (!ClaimInterval(last_purge_ms_, platform::CoarseMonotonicMillis(), kPurgeIntervalMillis)) {
    return false;
  }
  Purge(kDecayMillis);
  return true;
}

void Heap::LockAll() {
  ForEachSmallBucket([](SmallBucket& b) { b.lock().lock(); });
  for (LargeBucket& bucket : large_) bucket.lock().lock();
  huge_.LockAll();
}

void Heap::AfterForkInChildLocked() {
  ForEachSmallBucket([](SmallBucket& b) { b.AdoptDecommittingAfterFork(); });
  for (LargeBucket& bucket : large_) bucket.AdoptPendingAfterFork();
}

void Heap::UnlockAll() {
  huge_.UnlockAll();
  for (LargeBucket& bucket : large_) bucket.lock().unlock();
  ForEachSmallBucket([](SmallBucket& b) { b.lock().unlock(); });
}

void Heap::ReleaseAll() {
  ForEachSmallBucket([](SmallBucket& b) { b.ReleaseAll(); });
  for (LargeBucket& bucket : large_) bucket.ReleaseAll();
  huge_.ReleaseAll();
  RegionCarver::Flush();
  RegionCarver::ReleaseRetained();
}

}  // namespace rulloc::internal
