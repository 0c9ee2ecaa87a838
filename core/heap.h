// The heap: everything one allocator instance owns, and the routing of a
// request to it. Not a template: the compile-time bucket table reaches it
// as an array of small buckets plus a size → bucket lookup table.
//
//   size ≤ small max ──► small[lookup[(size+15)/16]]   slab, no header
//   size ≤ 2 MiB     ──► large                         boundary tags
//   larger           ──► huge                          one mapping each
//
//   Heap
//   ├── small ──► [ SmallBucket 16 ][ SmallBucket 32 ] ... (one cache line each)
//   ├── arenas 1..n-1 (process allocator only): more sets of small buckets
//   │             ──► [ SmallBucket 16 ][ SmallBucket 32 ] ...
//   ├── large ──► [ LargeBucket ≤2M ] × 8        by CPU, one per arena (one
//   │                                           in a standalone instance);
//   │                                           buffers realloc grows: by
//   │                                           thread, over all eight
//   └── huge  ──► HugeBlocks (16 address-sharded lists)
#ifndef RULLOC_CORE_HEAP_H_
#define RULLOC_CORE_HEAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/huge.h"
#include "core/large_bucket.h"
#include "core/size_classes.h"
#include "core/small_bucket.h"

namespace rulloc {

// Totals over one allocator instance.
struct AllocatorStats {
  size_t small_blocks_in_use = 0;  // handed out by the small buckets
  size_t small_blocks_free = 0;    // free or uncarved in small regions
  size_t large_blocks_in_use = 0;
  size_t huge_blocks_in_use = 0;
  size_t bytes_in_use = 0;       // block bytes handed out (caches included)
  size_t bytes_mapped = 0;       // address space held in regions
  size_t bytes_committed = 0;    // mapped minus pages given back by decay
  size_t huge_bytes_cached = 0;  // freed huge mappings kept for reuse
  size_t regions_mapped = 0;     // cumulative count of region mappings
  size_t regions_unmapped = 0;   // cumulative count of region unmappings
};

namespace internal {

// A size given to sized free fits a block of `usable` bytes if it is at
// most that and, for an unaligned allocation, at least half of it (realloc
// keeps a block that shrinks by up to half).
inline bool SizeFitsBlock(size_t size, size_t usable, bool aligned) {
  return size <= usable && (aligned || usable <= kMinAlignment || 2 * size >= usable);
}

// The page map's region for `p`, if `p` lies inside it: the map covers
// whole 64 KiB granules, and a huge block's mapping ends at a page, so the
// rest of its last granule may be another mapping's.
RegionHeader* RegionHolding(const void* p);

class Heap {
 public:
  static constexpr size_t kLargeMax = size_t{2} << 20;
  // Reallocate moves a block it grows to at least this many bytes into a
  // large bucket (even below the small maximum), where boundary tags let
  // the next growth steps happen in place, as glibc's realloc does; size
  // classes would copy the buffer at every step.
  static constexpr size_t kGrowInPlaceMin = 4096;
  // One large bucket: a buffer that grows by realloc through the whole
  // large range reuses the same regions (six buckets, one per doubling,
  // kept the high-water pages of each: +50% peak RSS on realloc growth).
  static constexpr size_t kLargeBuckets = 1;
  // The most arenas a heap can have (see AttachArenas).
  static constexpr size_t kMaxArenas = 8;

  // (Defined before the constructor that delegates to it: clang cannot
  // evaluate the delegation at compile time otherwise.)
  template <size_t... kArena>
  constexpr Heap(SmallBucket* small, size_t small_count, const uint8_t* lookup, size_t small_max,
                 std::index_sequence<kArena...>)
      : small_(small),
        small_count_(small_count),
        lookup_(lookup),
        small_max_(small_max),
        large_{(static_cast<void>(kArena), LargeBucket(kLargeMax, this))...},
        huge_(this) {}
  constexpr Heap(SmallBucket* small, size_t small_count, const uint8_t* lookup, size_t small_max)
      : Heap(small, small_count, lookup, small_max, std::make_index_sequence<kMaxArenas>()) {}
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;

  // `alignment` is a power of two ≥ 16. Returns nullptr with errno ENOMEM
  // when memory runs out.
  // With `dirty`, sets it (when the large or huge path knows) to how many
  // bytes from the block's start may not be zero.
  void* Allocate(size_t size, size_t alignment, size_t* dirty = nullptr);
  // Allocate, with the block's bytes zero (calloc). Memory the OS has just
  // mapped or taken back (a large block past its region's used pages, a
  // huge block past its mapping's resident pages) is zero already and is
  // not written: a big calloc stays out of memory until it is touched.
  void* AllocateZeroed(size_t size, size_t alignment);
  void Deallocate(void* p);
  // Deallocate with the size the caller gave (and whether it asked for an
  // alignment above 16): a size that cannot be the block's is reported.
  // It may be what was asked for or what realloc kept the block for:
  // at most the usable size and, unaligned, more than the next smaller
  // size class or at least half the block.
  void DeallocateSized(void* p, size_t size, bool aligned);
  // Moves `p` to `size` bytes (in place when it can); on failure returns
  // nullptr with errno ENOMEM and leaves `p` untouched.
  void* Reallocate(void* p, size_t size, size_t alignment);
  // Reallocate of `p` in `region`, its region in this heap (RegionOf's
  // answer): for a caller that looked it up already.
  void* ReallocateIn(RegionHeader* region, void* p, size_t size, size_t alignment);
  // A block of a large bucket for `size` (kGrowInPlaceMin .. kLargeMax),
  // where a buffer that grows can do so in place: the calling thread's
  // large bucket (LargeForThisThread), with room left after the block
  // before it. nullptr with errno ENOMEM when memory runs out.
  void* AllocateGrowable(size_t size);
  size_t UsableSize(const void* p);
  // UsableSize for a live block of this heap; false (no report) otherwise.
  bool TryUsableSize(const void* p, size_t* usable);
  bool Owns(const void* p) const;

  size_t small_bucket_count() const { return small_count_; }
  // Over every arena.
  SmallBucketStats SmallStats(size_t bucket);
  // Over every arena (kLargeBuckets is one size range).
  LargeBucketStats LargeStats(size_t bucket);
  HugeStats HugeBlockStats() { return huge_.Stats(); }
  AllocatorStats Stats();

  // Unmaps regions that have stayed empty for `max_age_ms` or longer (0:
  // every empty region), and gives back the slack huge blocks have kept as
  // long. Returns those bytes (the free pages decay gives back inside small
  // and large regions aside). It also unmaps the address space kept for
  // small regions (process-wide; no resident pages) unused for as long,
  // and adds those bytes to `*retained` if given.
  size_t Purge(uint64_t max_age_ms, size_t* retained = nullptr);
  // attempt(), and when it fails (out of memory), attempt() again once what
  // the heap keeps for reuse (empty regions, cached mappings, address
  // space kept for small regions) went back to the OS, if anything did.
  // Thread and transfer caches keep their blocks, which still serve their
  // sizes: flushing them too left a program at the limit without a block
  // for its next small request.
  template <typename Attempt>
  auto RetryAfterPurge(Attempt attempt) {
    auto result = attempt();
    size_t retained = 0;
    if (!result && (Purge(0, &retained) != 0 || retained != 0)) result = attempt();
    return result;
  }
  // Purge(kDecayMillis), at most once per kPurgeIntervalMillis per heap;
  // cheap enough for slow paths to call often. True if it purged.
  bool MaybePurge();
  static constexpr uint64_t kDecayMillis = 1000;
  static constexpr uint64_t kPurgeIntervalMillis = 100;

  // Unmaps every region: the instance is being destroyed.
  void ReleaseAll();
  // Take and release every lock of the heap, in a fixed order (fork).
  void LockAll();
  void UnlockAll();
  // In a child after fork, with every lock held (LockAll in the parent).
  void AfterForkInChildLocked();

  // The small bucket for `size` (≤ small max), for callers that batch.
  SmallBucket& SmallBucketFor(size_t size) { return small_[lookup_[(size + 15) >> 4]]; }
  size_t small_max() const { return small_max_; }

  // Arenas: sets of small buckets of their own, one per CPU for the thread
  // caches (arena 0 is small_), and a large bucket each, used by the CPU a
  // request runs on (so that threads that run at once grow their buffers
  // in regions of their own). `extra` holds arenas 1..count-1, each
  // small_count buckets. Set once, at constant initialisation.
  constexpr void AttachArenas(SmallBucket* extra, size_t count) {
    extra_arenas_ = extra;
    arena_count_ = count;
  }
  size_t arena_count() const { return arena_count_; }
  // The process allocator's heap tags its small regions in the page map
  // with their bucket, for its thread caches (see PageMap). Set once, at
  // constant initialisation.
  constexpr void TagSmallRegions() { tags_small_regions_ = true; }
  // The process allocator's thread caches hold blocks that their regions
  // count as handed out. Once a cache exists, frees and reallocs of small
  // blocks that reach the heap itself (through the object API) ask this
  // check first, so that a block freed into a cache is not freed again.
  using CachedBlockCheck = void (*)(void* p, size_t bucket, const char* fault);
  void SetCachedBlockCheck(CachedBlockCheck check) {
    cached_block_check_.store(check, std::memory_order_release);
  }
  bool tags_small_regions() const { return tags_small_regions_; }
  SmallBucket& SmallBucketAt(size_t arena, size_t bucket) {
    return arena == 0 ? small_[bucket] : extra_arenas_[(arena - 1) * small_count_ + bucket];
  }

 private:
  // With `dirty`, sets it to how many bytes from the block's start may not
  // be zero.
  void* AllocateSlow(size_t size, size_t alignment, size_t* dirty = nullptr);
  // The validated region of a pointer this heap owns, or a misuse report.
  RegionHeader* RegionOf(const void* p, const char* operation);
  // The cached-block check (SetCachedBlockCheck) of `p` in a small region,
  // if `p` is a block start handed out there.
  void CheckNotCached(RegionHeader* region, void* p, const char* fault);
  // UsableSize and TryUsableSize of `p` in its validated `region`.
  size_t UsableSizeIn(RegionHeader* region, const void* p);
  static bool UsableSizeIn(RegionHeader* region, const void* p, size_t* usable);
  LargeBucket& LargeForThisCpu();
  // For buffers that realloc grows: threads take the kMaxArenas large
  // buckets in turn, as glibc gives threads arenas of their own, so that
  // two threads' growing buffers are not neighbours. By CPU, 2 to 8
  // threads copied 22-67 MB per realloc run where they collided (glibc:
  // 2-4 MB); by thread, nothing up to 8 threads.
  LargeBucket& LargeForThisThread();
  // Calls f(bucket) for every small bucket of every arena.
  template <typename F>
  void ForEachSmallBucket(F f) {
    for (size_t a = 0; a < arena_count_; ++a) {
      for (size_t i = 0; i < small_count_; ++i) f(SmallBucketAt(a, i));
    }
  }

  SmallBucket* const small_;
  const size_t small_count_;
  const uint8_t* const lookup_;
  const size_t small_max_;
  std::atomic<CachedBlockCheck> cached_block_check_{nullptr};
  SmallBucket* extra_arenas_ = nullptr;
  size_t arena_count_ = 1;
  bool tags_small_regions_ = false;
  LargeBucket large_[kMaxArenas];  // one per arena; growable blocks use all
  HugeBlocks huge_;
  std::atomic<uint64_t> last_purge_ms_{0};
};

}  // namespace internal
}  // namespace rulloc

#endif  // RULLOC_CORE_HEAP_H_
