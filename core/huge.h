// Huge allocations: one mapping each. A freed mapping waits in a small
// cache for reuse (a server that allocates 8 MiB buffers per request then
// pays no page faults), and goes back to the OS after the decay time.
//
//   mapping base (64 KiB aligned, or `alignment` aligned)
//   ┌────────────┬──────────┬────────────────────────┬─────────────────┐
//   │ HugeRegion │ (padding)│ payload (usable bytes) │ slack (cached   │
//   └────────────┴──────────┴────────────────────────┴ reuse, ≤ 1/4)   ┘
//                            ▲ base + payload_offset
//
//   live shards[16] ──► HugeRegion ⇄ HugeRegion ...   (by address)
//   cache           ──► [ freed mapping | freed mapping | ... ] ≤ 8, ≤ 64 MiB
//
// Live mappings are kept on lists sharded by address, each with its own
// lock, so that an allocator can unmap them all when it is destroyed.
#ifndef RULLOC_CORE_HUGE_H_
#define RULLOC_CORE_HUGE_H_

#include <cstddef>
#include <cstdint>

#include "concurrency/spin_lock.h"
#include "core/region.h"

namespace rulloc::internal {

struct HugeRegion {
  RegionHeader header;
  size_t payload_offset;
  size_t usable;   // payload bytes handed out: page-rounded request
  bool cached;     // freed, waiting in the cache
  bool immovable;  // a move of its pages failed: realloc copies it
  uint64_t freed_ms;

  void* payload() { return reinterpret_cast<char*>(this) + payload_offset; }
  size_t capacity() const { return header.size - payload_offset; }
};

struct HugeStats {
  size_t blocks_in_use = 0;
  size_t bytes_in_use = 0;  // usable bytes of live blocks
  size_t bytes_mapped = 0;  // live and cached mappings
  size_t bytes_cached = 0;
  size_t cache_hits = 0;
  size_t cache_misses = 0;
};

class HugeBlocks {
 public:
  constexpr explicit HugeBlocks(Heap* heap) : heap_(heap) {}

  void* Allocate(size_t size, size_t alignment);
  // `region` is the page map's answer for `p`.
  void Free(HugeRegion* region, void* p);
  // Grows or shrinks the block at `p` within its mapping; false if it does
  // not fit there.
  bool ResizeInPlace(HugeRegion* region, void* p, size_t size);
  // Moves the live block at `p` to a mapping with room for `size` bytes,
  // its payload `alignment` aligned, by moving its pages rather than
  // copying them (Linux's mremap); nullptr, with the block untouched, where
  // that cannot be done.
  void* Move(HugeRegion* region, void* p, size_t size, size_t alignment);
  // The usable bytes of the live block at `p`; false (no report) if `p` is
  // not its payload or the mapping is cached.
  static bool UsableSize(HugeRegion* region, const void* p, size_t* usable);
  // Unmaps cached mappings freed `max_age_ms` or more ago; returns bytes.
  size_t Purge(uint64_t now_ms, uint64_t max_age_ms);
  void ReleaseAll();
  HugeStats Stats();
  void LockAll();
  void UnlockAll();

  static constexpr size_t kCacheSlots = 8;
  static constexpr size_t kCacheBytes = size_t{64} << 20;

 private:
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    SpinLock lock;
    RegionList list;
    size_t bytes = 0;
    size_t usable = 0;
  };
  struct alignas(64) Cache {
    SpinLock lock;
    HugeRegion* slots[kCacheSlots] = {};
    size_t count = 0;
    size_t bytes = 0;
    size_t hits = 0;
    size_t misses = 0;
  };
  Shard& ShardOf(const void* base);
  // The best-fitting cached mapping for `need` bytes from its base at
  // `alignment`, removed from the cache; nullptr if none fits, and then the
  // cached mappings smaller than `need` are moved to `too_small` (to unmap).
  HugeRegion* TakeCached(size_t need, size_t alignment, HugeRegion** too_small,
                         size_t* too_small_count);
  // Keeps a freed mapping; returns the mapping evicted to make room (or the
  // one given, if it cannot be kept), for the caller to unmap unlocked.
  HugeRegion* PutCached(HugeRegion* region);
  void Track(HugeRegion* region);
  // Hardened mode: a mapping with guard pages after the header and after
  // the payload, which ends against the trailing guard.
  void* AllocateGuarded(size_t size, size_t alignment);

  Heap* const heap_;
  Shard shards_[kShards];
  Cache cache_;
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_HUGE_H_
