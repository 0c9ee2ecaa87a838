#include "core/huge.h"

#include <cstdint>

#include "core/diagnostics.h"
#include "core/huge_zone.h"
#include "core/page_map.h"
#include "core/runtime_options.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// Resident slack up to a quarter of the request stays with a reused mapping
// uncounted; more is counted in the budget, or given back.
bool SlackNeedsBudget(size_t need, size_t slack) { return slack > need / 4; }

// A huge block's mapping is charged against the commit limit up front (as
// glibc's mmap'd chunks), so that the OS's overcommit policy refuses at once
// a request it could never back, rather than at a page fault. Not where the
// alignment's gap before the payload, never touched, is larger than the
// payload (a 100-byte block aligned to 16 GiB would be charged 16 GiB).
platform::Charge ChargeFor(size_t size, size_t alignment) {
  return size >= alignment ? platform::Charge::kUpFront : platform::Charge::kOnTouch;
}

// Such a mapping's gap is left out of the page map too: the granules from
// the header's to the payload's, which nothing is ever handed out of. (A
// 100-byte block aligned to 1 TiB registered 16 M granules: 0.5 s and 133
// MB of page map; at 16 TiB, 11 s and 2.1 GB.) Sets `*gap`; false if the
// gap cannot be named (more granules than a header counts).
bool GapGranules(size_t size, size_t alignment, size_t payload_offset, uint32_t* gap) {
  *gap = 0;
  if (ChargeFor(size, alignment) != platform::Charge::kOnTouch) return true;
  const size_t granules = payload_offset / kGranule;
  if (granules < 2) return true;
  if (granules - 1 > UINT32_MAX) return false;
  *gap = static_cast<uint32_t>(granules - 1);
  return true;
}

// Committed pages for a huge mapping of `size` bytes, aligned to
// `alignment`, at least a granule, and a huge page where advised as huge
// pages: those in their zone, away from 4 KiB pages; else where the kernel
// places them.
void* MapHugePages(size_t size, size_t alignment, platform::Charge charge, bool huge_pages) {
  if (alignment < kGranule) alignment = kGranule;
  if (huge_pages && alignment < platform::kHugePageSize) alignment = platform::kHugePageSize;
  void* zoned = huge_pages ? ReserveInHugeZone(size, alignment, charge) : nullptr;
  return zoned != nullptr ? zoned : platform::Reserve(size, alignment, /*commit=*/true, charge);
}

}  // namespace

HugeBlocks::Shard& HugeBlocks::ShardOf(const void* base) {
  return shards_[(reinterpret_cast<uintptr_t>(base) >> kGranuleShift) % kShards];
}

void HugeBlocks::Track(HugeRegion* region) {
  Shard& shard = ShardOf(region);
  SpinLockHolder hold(shard.lock);
  region->cached = false;
  shard.list.PushFront(&region->header);
  shard.bytes += region->header.size;
  shard.usable += region->usable;
  shard.slack += region->kept_slack;
}

void HugeBlocks::Untrack(Shard& shard, HugeRegion* region) {
  shard.list.Remove(&region->header);
  shard.bytes -= region->header.size;
  shard.usable -= region->usable;
  shard.slack -= region->kept_slack;
}

void* HugeBlocks::AllocateGuarded(size_t size, size_t alignment) {
  //   [ HugeRegion | guard page | slack ... payload ][ guard page ]
  // The payload ends less than `alignment` (16 by default) bytes before the
  // trailing guard.
  const size_t page = platform::PageSize();
  if (alignment < 16) alignment = 16;
  const size_t limit = (SIZE_MAX >> 2) - 4 * page;
  if (alignment > limit || size > limit - alignment) return nullptr;
  const size_t head = AlignUp(sizeof(HugeRegion), page);
  const size_t body = AlignUp(size + alignment, page);
  const size_t mapping = head + page + body + page;
  const size_t end = head + page + body;
  const size_t payload_offset = (end - size) & ~(alignment - 1);
  uint32_t gap;
  if (!GapGranules(size, alignment, payload_offset, &gap)) return nullptr;
  RegionHeader* header =
      MapRegion(RegionKind::kHuge, mapping, alignment, heap_, ChargeFor(size, alignment), gap);
  if (header == nullptr) return nullptr;
  char* base = reinterpret_cast<char*>(header);
  if (!platform::Guard(base + head, page) || !platform::Guard(base + end, page)) {
    UnmapRegion(header);
    return nullptr;
  }
  auto* region = reinterpret_cast<HugeRegion*>(header);
  region->payload_offset = payload_offset;
  region->usable = end - payload_offset;
  region->immovable = false;
  region->uncharged = ChargeFor(size, alignment) == platform::Charge::kOnTouch;
  region->resident_end = mapping;
  region->kept_slack = 0;
  Track(region);
  return region->payload();
}

void* HugeBlocks::Allocate(size_t size, size_t alignment, size_t* dirty) {
  if (runtime_options.hardened) return AllocateGuarded(size, alignment);  // (dirty: all)
  const size_t page = platform::PageSize();
  if (alignment > (SIZE_MAX >> 2)) return nullptr;
  const size_t offset = AlignUp(sizeof(HugeRegion), alignment);
  if (size > (SIZE_MAX >> 2) - offset - page) return nullptr;
  const size_t need = AlignUp(offset + size, page);
  const bool huge_pages = runtime_options.huge_pages && need >= platform::kHugePageSize;
  size_t written_end = offset;  // bytes from the base that may not be zero
  HugeRegion* too_small[kCacheSlots];
  size_t too_small_count;
  HugeRegion* region = TakeCached(need, alignment, too_small, &too_small_count);
  bool new_pages = false;  // a mapping (or part of one) never advised
  if (region != nullptr) {
    region->kept_slack = 0;
    const size_t slack = region->resident_end > need ? region->resident_end - need : 0;
    // (A decommit the kernel refuses, under mlockall, leaves the pages and
    // their contents: the resident end stays, so calloc clears them.)
    if (SlackNeedsBudget(need, slack) && !KeepSlack(region, slack) &&
        platform::Decommit(reinterpret_cast<char*>(region) + need, slack)) {
      region->resident_end = need;
    }
    written_end = region->resident_end;
    if (region->resident_end < need) region->resident_end = need;
  } else {
    // The largest movable one has the most pages already faulted in.
    size_t largest = too_small_count;
    for (size_t i = 0; i < too_small_count; ++i) {
      if (!too_small[i]->immovable &&
          (largest == too_small_count ||
           too_small[i]->header.size > too_small[largest]->header.size)) {
        largest = i;
      }
    }
    HugeRegion* donor = nullptr;
    if (largest != too_small_count) {
      donor = too_small[largest];
      too_small[largest] = too_small[--too_small_count];
    }
    // The others first: often next to the donor, they would keep it from
    // growing in place.
    for (size_t i = 0; i < too_small_count; ++i) UnmapRegion(&too_small[i]->header);
    if (donor != nullptr) {
      written_end = donor->resident_end;
      region = GrowCached(donor, need, alignment);
      new_pages = region != nullptr;
    }
  }
  if (region == nullptr) {
    // Out of memory, the heap drops this cache (and all it keeps) and retries.
    uint32_t gap;
    if (!GapGranules(size, alignment, offset, &gap)) return nullptr;
    const platform::Charge charge = ChargeFor(size, alignment);
    void* base = MapHugePages(need, alignment, charge, huge_pages);
    if (base == nullptr) return nullptr;
    RegionHeader* header = InstallRegion(base, RegionKind::kHuge, need, heap_, gap);
    if (header == nullptr) return nullptr;
    region = reinterpret_cast<HugeRegion*>(header);
    region->immovable = false;
    region->uncharged = charge == platform::Charge::kOnTouch;
    region->resident_end = need;
    region->kept_slack = 0;
    new_pages = true;
    written_end = offset;
  }
  if (huge_pages && new_pages) platform::AdviseHugePages(region, need);
  region->payload_offset = offset;
  region->usable = need - offset;
  if (dirty != nullptr) *dirty = written_end > offset ? written_end - offset : 0;
  Track(region);
  return region->payload();
}

HugeRegion* HugeBlocks::GrowCached(HugeRegion* donor, size_t need, size_t alignment) {
  const size_t old_size = donor->header.size;
  const bool aligned = (reinterpret_cast<uintptr_t>(donor) & (alignment - 1)) == 0;
  // Grown in place only. A move (mremap) would keep its pages too, but it
  // drops all their entries in one call, which on some guests makes every
  // page the process touches afterwards fault into the hypervisor
  // (platform/pages.h): the donor goes back in pieces instead, and the
  // caller maps the block afresh.
  if (!aligned || !platform::ResizePagesInPlace(donor, old_size, need)) {
    UnmapRegion(&donor->header);
    return nullptr;
  }
  // Its base, its alignment and every page stay (it is on no list: its
  // header is written again).
  if (InstallRegion(donor, RegionKind::kHuge, need, heap_) == nullptr) return nullptr;
  HugeRegion* grown = donor;
  grown->resident_end = need;
  grown->kept_slack = 0;
  SpinLockHolder hold(cache_.lock);
  ++cache_.grows;
  return grown;
}

bool HugeBlocks::KeepSlack(HugeRegion* region, size_t slack) {
  size_t kept = kept_slack_bytes_.load(std::memory_order_relaxed);
  do {
    if (kept + slack > kSlackBytes) return false;
  } while (!kept_slack_bytes_.compare_exchange_weak(kept, kept + slack, std::memory_order_relaxed));
  region->kept_slack = slack;
  region->slack_since_ms = platform::CoarseMonotonicMillis();
  return true;
}

void HugeBlocks::ShrinkSlack(Shard& shard, HugeRegion* region, size_t slack) {
  if (region->kept_slack <= slack) return;
  const size_t less = region->kept_slack - slack;
  kept_slack_bytes_.fetch_sub(less, std::memory_order_relaxed);
  shard.slack -= less;
  region->kept_slack = slack;
}

void HugeBlocks::DropSlack(HugeRegion* region) {
  if (region->kept_slack == 0) return;
  kept_slack_bytes_.fetch_sub(region->kept_slack, std::memory_order_relaxed);
  region->kept_slack = 0;
}

HugeRegion* HugeBlocks::TakeCached(size_t need, size_t alignment, HugeRegion** too_small,
                                   size_t* too_small_count) {
  SpinLockHolder hold(cache_.lock);
  *too_small_count = 0;
  size_t best = kCacheSlots;
  for (size_t i = 0; i < cache_.count; ++i) {
    HugeRegion* r = cache_.slots[i];
    if (r->header.size < need || (reinterpret_cast<uintptr_t>(r) & (alignment - 1)) != 0) continue;
    if (best == kCacheSlots || r->header.size < cache_.slots[best]->header.size) best = i;
  }
  if (best == kCacheSlots) {
    // A miss maps a new block; the cached mappings too small for it go back
    // to the OS now, so that they do not add to the peak next to it.
    ++cache_.misses;
    for (size_t i = 0; i < cache_.count;) {
      HugeRegion* r = cache_.slots[i];
      if (r->header.size < need) {
        too_small[(*too_small_count)++] = r;
        cache_.bytes -= r->header.size;
        cache_.slots[i] = cache_.slots[--cache_.count];
      } else {
        ++i;
      }
    }
    return nullptr;
  }
  ++cache_.hits;
  HugeRegion* r = cache_.slots[best];
  cache_.slots[best] = cache_.slots[--cache_.count];
  cache_.bytes -= r->header.size;
  return r;
}

HugeRegion* HugeBlocks::PutCached(HugeRegion* region) {
  if (region->header.size > kCacheBytes) return region;
  SpinLockHolder hold(cache_.lock);
  // Evict the oldest entries until the new one fits both bounds.
  HugeRegion* evicted = nullptr;
  while (cache_.count == kCacheSlots || cache_.bytes + region->header.size > kCacheBytes) {
    size_t oldest = 0;
    for (size_t i = 1; i < cache_.count; ++i) {
      if (cache_.slots[i]->freed_ms < cache_.slots[oldest]->freed_ms) oldest = i;
    }
    HugeRegion* victim = cache_.slots[oldest];
    cache_.slots[oldest] = cache_.slots[--cache_.count];
    cache_.bytes -= victim->header.size;
    if (evicted == nullptr) {
      evicted = victim;
    } else {
      // Rare (a large entry displacing several): unmap the extra now.
      UnmapRegion(&victim->header);
    }
  }
  region->freed_ms = platform::CoarseMonotonicMillis();
  cache_.slots[cache_.count++] = region;
  cache_.bytes += region->header.size;
  return evicted;
}

void HugeBlocks::Free(HugeRegion* region, void* p) {
  Shard& shard = ShardOf(region);
  {
    SpinLockHolder hold(shard.lock);
    if (region->cached) {
      shard.lock.unlock();
      ReportHeapMisuse("double free", p);
    }
    if (p != region->payload()) {
      shard.lock.unlock();
      ReportHeapMisuse("free of a pointer into the middle of a block", p);
    }
    region->cached = true;
    Untrack(shard, region);
    DropSlack(region);  // cache memory again, counted in the cache's bytes
  }
  // Hardened: unmapped at once, so that a use after free faults. An
  // uncharged mapping would give a request that must be charged (malloc of
  // more than the OS can back) memory that was not: unmapped too.
  if (runtime_options.hardened || region->uncharged) return UnmapRegion(&region->header);
  if (HugeRegion* evicted = PutCached(region)) UnmapRegion(&evicted->header);
}

bool HugeBlocks::ResizeInPlace(HugeRegion* region, void* p, size_t size) {
  if (p != region->payload())
    ReportHeapMisuse("realloc of a pointer into the middle of a block", p);
  const size_t page = platform::PageSize();
  if (size > region->capacity() || runtime_options.hardened) return false;
  const size_t need = AlignUp(region->payload_offset + size, page);
  const size_t end = region->payload_offset + region->usable;
  // Shrinking to less than half would strand too much memory: move instead.
  if (need < end && need < region->header.size / 2) return false;
  Shard& shard = ShardOf(region);
  SpinLockHolder hold(shard.lock);
  shard.usable = shard.usable - region->usable + (need - region->payload_offset);
  region->usable = need - region->payload_offset;
  if (region->resident_end < need) region->resident_end = need;
  ShrinkSlack(shard, region, region->resident_end - need);  // grown into it, if any
  return true;
}

void* HugeBlocks::Move(HugeRegion* region, void* p, size_t size, size_t alignment) {
  // Hardened mappings hold guard pages, which mremap cannot move with them.
  // (An uncharged mapping's pages would stay uncharged wherever they went,
  // however large the new size: copied instead.)
  if (!platform::kCanMovePages || runtime_options.hardened || region->immovable ||
      region->uncharged || p != region->payload()) {
    return nullptr;
  }
  const size_t page = platform::PageSize();
  const size_t offset = region->payload_offset;
  if (offset % alignment != 0 || size > (SIZE_MAX >> 2) - offset - page) return nullptr;
  const size_t need = AlignUp(offset + size, page);
  const bool huge_pages = runtime_options.huge_pages && need >= platform::kHugePageSize;
  void* to = MapHugePages(need, alignment, ChargeFor(size, alignment), huge_pages);
  if (to == nullptr) return nullptr;
  auto* moved = static_cast<HugeRegion*>(to);  // where the header will be
  // Maps the page map's leaves for the target now, so that registering it
  // once the pages are there cannot fail; until then nothing points there.
  const bool leaves = PageMap::Register(to, need, &moved->header);
  PageMap::Unregister(to, need);
  if (!leaves) {
    platform::Release(to, need);
    return nullptr;
  }
  Shard& shard = ShardOf(region);
  {
    SpinLockHolder hold(shard.lock);
    Untrack(shard, region);
  }
  const size_t old_size = region->header.size;
  PageMap::Unregister(region, old_size);
  const platform::MoveResult result = platform::MovePages(region, old_size, to, need);
  if (result != platform::MoveResult::kMoved) {
    PageMap::Register(region, old_size, &region->header);  // its leaves exist
    Track(region);
    region->immovable = true;  // what failed once (say, mlock) would fail again
    // The target range, if it may be another thread's now, is left alone.
    if (result == platform::MoveResult::kFailed) platform::Release(to, need);
    return nullptr;
  }
  PageMap::Register(to, need, &moved->header);
  DropSlack(moved);  // the mapping now ends at the payload's last page
  moved->header.size = need;
  moved->immovable = false;
  moved->uncharged = false;  // as the pages it took
  moved->resident_end = need;
  moved->usable = need - offset;
  if (huge_pages) platform::AdviseHugePages(to, need);
  Track(moved);
  return moved->payload();
}

bool HugeBlocks::UsableSize(HugeRegion* region, const void* p, size_t* usable) {
  if (p != region->payload() || region->cached) return false;
  *usable = region->usable;
  return true;
}

size_t HugeBlocks::Purge(uint64_t now_ms, uint64_t max_age_ms) {
  HugeRegion* expired[kCacheSlots];
  size_t count = 0;
  {
    SpinLockHolder hold(cache_.lock);
    for (size_t i = 0; i < cache_.count;) {
      HugeRegion* r = cache_.slots[i];
      if (max_age_ms == 0 || r->freed_ms + max_age_ms <= now_ms) {
        expired[count++] = r;
        cache_.bytes -= r->header.size;
        cache_.slots[i] = cache_.slots[--cache_.count];
      } else {
        ++i;
      }
    }
  }
  size_t bytes = DecommitKeptSlack(now_ms, max_age_ms);
  for (size_t i = 0; i < count; ++i) {
    bytes += expired[i]->header.size;
    UnmapRegion(&expired[i]->header);
  }
  return bytes;
}

size_t HugeBlocks::DecommitKeptSlack(uint64_t now_ms, uint64_t max_age_ms) {
  if (kept_slack_bytes_.load(std::memory_order_relaxed) == 0) return 0;
  size_t bytes = 0;
  for (Shard& shard : shards_) {
    // Under the shard's lock, so that no block grows into its slack while
    // the slack is given back.
    SpinLockHolder hold(shard.lock);
    if (shard.slack == 0) continue;
    for (RegionHeader* h = shard.list.front(); h != nullptr; h = h->next) {
      auto* r = reinterpret_cast<HugeRegion*>(h);
      if (r->kept_slack == 0 || (max_age_ms != 0 && r->slack_since_ms + max_age_ms > now_ms)) {
        continue;
      }
      const size_t end = r->payload_offset + r->usable;  // page aligned
      if (platform::Decommit(reinterpret_cast<char*>(r) + end, r->resident_end - end)) {
        r->resident_end = end;
      }
      bytes += r->kept_slack;
      ShrinkSlack(shard, r, 0);
    }
  }
  return bytes;
}

void HugeBlocks::ReleaseAll() {
  Purge(0, 0);
  for (Shard& shard : shards_) {
    SpinLockHolder hold(shard.lock);
    while (RegionHeader* r = shard.list.PopFront()) UnmapRegion(r);
    shard.bytes = 0;
    shard.usable = 0;
    shard.slack = 0;
  }
  kept_slack_bytes_.store(0, std::memory_order_relaxed);
}

void HugeBlocks::LockAll() {
  for (Shard& shard : shards_) shard.lock.lock();
  cache_.lock.lock();
}

void HugeBlocks::UnlockAll() {
  cache_.lock.unlock();
  for (Shard& shard : shards_) shard.lock.unlock();
}

HugeStats HugeBlocks::Stats() {
  HugeStats s;
  for (Shard& shard : shards_) {
    SpinLockHolder hold(shard.lock);
    s.blocks_in_use += shard.list.size();
    s.bytes_in_use += shard.usable;
    s.bytes_mapped += shard.bytes;
  }
  SpinLockHolder hold(cache_.lock);
  s.bytes_cached = cache_.bytes;
  s.bytes_mapped += cache_.bytes;
  s.cache_hits = cache_.hits;
  s.cache_misses = cache_.misses;
  s.cache_grows = cache_.grows;
  s.bytes_kept_slack = kept_slack_bytes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace rulloc::internal
