// Huge allocations: one mapping each. A freed mapping waits in a small
// cache for reuse (a server that allocates 8 MiB buffers per request then
// pays no page faults), and goes back to the OS after the decay time. A
// request that no cached mapping fits grows the largest of them (too small
// for it) in place with mremap where the next pages are free, so that only
// the added tail faults; it does not move one (see GrowCached).
//
//   mapping base (64 KiB aligned, or `alignment` aligned)
//   ┌────────────┬──────────┬────────────────────────┬──────────────────┐
//   │ HugeRegion │ (padding)│ payload (usable bytes) │ slack (a reused  │
//   └────────────┴──────────┴────────────────────────┴ mapping's rest)  ┘
//                            ▲ base + payload_offset
//
//   live shards[16] ──► HugeRegion ⇄ HugeRegion ...   (by address)
//   cache           ──► [ freed mapping | freed mapping | ... ] ≤ 8, ≤ 64 MiB
//
// A reused mapping's resident slack of more than a quarter of the request
// stays resident while that kept by all live blocks together is at most
// kSlackBytes (the next, larger request reuses it with no faults); past that
// budget, and after the decay time, it goes back to the OS. (A block that
// shrinks in place to no less than half its mapping keeps the rest, as
// realloc always has, uncounted.)
//
// Live mappings are kept on lists sharded by address, each with its own
// lock, so that an allocator can unmap them all when it is destroyed.
#ifndef RULLOC_CORE_HUGE_H_
#define RULLOC_CORE_HUGE_H_

#include <atomic>
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
  bool immovable;  // a move of its pages failed: realloc copies it, and a
                   // miss does not grow it (kept while it is cached)
  bool uncharged;  // mapped to be charged on touch (ChargeFor): never cached
                   // nor moved, as a request charged up front would inherit it
  uint64_t freed_ms;
  size_t resident_end;      // pages at and past this offset were given back
  size_t kept_slack;        // resident slack counted in the budget (live)
  uint64_t slack_since_ms;  // when that slack was kept

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
  size_t cache_grows = 0;       // misses served by growing a smaller one
  size_t bytes_kept_slack = 0;  // resident slack past live blocks, counted
};

class HugeBlocks {
 public:
  constexpr explicit HugeBlocks(Heap* heap) : heap_(heap) {}

  // With `dirty`, sets it to how many payload bytes may not be zero: a
  // fresh mapping has none, a reused one those below its resident end.
  void* Allocate(size_t size, size_t alignment, size_t* dirty = nullptr);
  // `region` is the page map's answer for `p`.
  void Free(HugeRegion* region, void* p);
  // Grows or shrinks the block at `p` within its mapping; false if it does
  // not fit there.
  bool ResizeInPlace(HugeRegion* region, void* p, size_t size);
  // Moves the live block at `p` to a mapping with room for `size` bytes,
  // its payload `alignment` aligned, by moving its pages rather than
  // copying them (Linux's mremap); nullptr, with the block still live at
  // `p`, where that cannot be done.
  void* Move(HugeRegion* region, void* p, size_t size, size_t alignment);
  // The usable bytes of the live block at `p`; false (no report) if `p` is
  // not its payload or the mapping is cached.
  static bool UsableSize(HugeRegion* region, const void* p, size_t* usable);
  // Unmaps cached mappings freed `max_age_ms` or more ago, and gives back
  // the slack live blocks have kept as long; returns bytes.
  size_t Purge(uint64_t now_ms, uint64_t max_age_ms);
  void ReleaseAll();
  HugeStats Stats();
  void LockAll();
  void UnlockAll();

  static constexpr size_t kCacheSlots = 8;
  static constexpr size_t kCacheBytes = size_t{64} << 20;
  static constexpr size_t kSlackBytes = size_t{64} << 20;

 private:
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    SpinLock lock;
    RegionList list;
    size_t bytes = 0;
    size_t usable = 0;
    size_t slack = 0;  // kept slack of its blocks
  };
  struct alignas(64) Cache {
    SpinLock lock;
    HugeRegion* slots[kCacheSlots] = {};
    size_t count = 0;
    size_t bytes = 0;
    size_t hits = 0;
    size_t misses = 0;
    size_t grows = 0;
  };
  Shard& ShardOf(const void* base);
  // The best-fitting cached mapping for `need` bytes from its base at
  // `alignment`, removed from the cache; nullptr if none fits, and then the
  // cached mappings smaller than `need` are moved to `too_small` (for the
  // caller to grow one and unmap the others).
  HugeRegion* TakeCached(size_t need, size_t alignment, HugeRegion** too_small,
                         size_t* too_small_count);
  // Keeps a freed mapping; returns the mapping evicted to make room (or the
  // one given, if it cannot be kept), for the caller to unmap unlocked.
  HugeRegion* PutCached(HugeRegion* region);
  // A miss: grows `donor`, a cached mapping too small for the request, to
  // `need` bytes in place (its base `alignment` aligned); nullptr, the
  // donor unmapped, if that cannot be done.
  HugeRegion* GrowCached(HugeRegion* donor, size_t need, size_t alignment);
  // Counts `slack` resident bytes past the payload of `region` (not yet
  // tracked) in the budget; false, nothing counted, if they do not fit.
  bool KeepSlack(HugeRegion* region, size_t slack);
  // Takes `region`'s kept slack out of the budget (not out of its shard's
  // total: the caller sees to that, under the shard's lock).
  void DropSlack(HugeRegion* region);
  // Lowers the kept slack of `region`, a live block of `shard` (its lock
  // held), to at most `slack` bytes, in the budget and the shard's total.
  void ShrinkSlack(Shard& shard, HugeRegion* region, size_t slack);
  // Gives back the kept slack of live blocks kept `max_age_ms` or more ago
  // (0: all); returns its bytes.
  size_t DecommitKeptSlack(uint64_t now_ms, uint64_t max_age_ms);
  // Takes `region` off its shard's list (the shard's lock held).
  void Untrack(Shard& shard, HugeRegion* region);
  void Track(HugeRegion* region);
  // Hardened mode: a mapping with guard pages after the header and after
  // the payload, which ends against the trailing guard.
  void* AllocateGuarded(size_t size, size_t alignment);

  Heap* const heap_;
  Shard shards_[kShards];
  Cache cache_;
  std::atomic<size_t> kept_slack_bytes_{0};
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_HUGE_H_
