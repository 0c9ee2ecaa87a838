// Thread caches: the lock-free fast path of the process-wide allocator.
//
//   thread A                               thread B
//   tls_cache ─► ThreadCache               tls_cache ─► ThreadCache
//               ┌─────────────────────┐                ┌─────────────────────┐
//               │ bin[0]  16 B ───────┼─► slots: p p p │ bin[0]  16 B        │
//               │ bin[1]  32 B ───────┼─► slots: p     │ ...                 │
//               │ ...                 │                │ bin[39] 32 KiB      │
//               │ bin[39] 32 KiB      │                └──────────┬──────────┘
//               ├─────────────────────┤                           │
//               │ slot arrays, one per│                           │
//               │ bin, after the bins │                           │
//               └──────────┬──────────┘                           │
//      refill/flush a batch under one lock acquisition             │
//                          ▼                                       ▼
//               [ SmallBucket 16 B ][ SmallBucket 32 B ] ... (DefaultAllocator)
//
// A bin is a stack of pointers to free blocks (count ≤ an adaptive bound):
// malloc pops, free pushes, with no lock, no atomic read-modify-write and
// no system call, and a refill or flush copies pointers (jemalloc's
// cache_bin and tcmalloc's per-CPU slabs work the same way); the blocks see
// only the free mark (see FreeMark). Every thread starts on a shared, empty
// cache whose bins have a bound of 0, so its first malloc or free falls to
// the slow path, which gives the thread its own cache; there is no
// "initialised?" test on the fast path. A block freed by another thread
// lands in the freeing thread's cache and goes back to its bucket through
// the normal flush. A thread's cache returns to the buckets when it exits.
#ifndef RULLOC_CONCURRENCY_THREAD_CACHE_H_
#define RULLOC_CONCURRENCY_THREAD_CACHE_H_

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/allocator.h"
#include "core/page_map.h"
#include "core/runtime_options.h"
#include "core/size_classes.h"
#include "core/small_bucket.h"

namespace rulloc {

// Counts over the process-wide allocator, thread caches included.
struct ProcessStats {
  size_t blocks_in_buckets = 0;  // free (or uncarved) in small regions
  size_t blocks_in_caches = 0;   // free in some thread's cache
  size_t blocks_in_use = 0;      // held by the program
  size_t threads_with_cache = 0;
  size_t refills = 0;  // cumulative batch refills from buckets
  size_t flushes = 0;  // cumulative batch flushes to buckets
};

// Per-bucket counts of ProcessStats.
struct BucketCounts {
  size_t handed_out = 0;  // out of the bucket: in caches or in use
  size_t in_caches = 0;
  size_t free_in_regions = 0;
  // Held by the program. The counts are read at different moments: never
  // let the difference wrap.
  size_t in_use() const { return handed_out > in_caches ? handed_out - in_caches : 0; }
};

ProcessStats GetProcessStats();
BucketCounts GetBucketCounts(size_t bucket);
// Returns every block in the calling thread's cache to the buckets (through
// the transfer caches).
void FlushThreadCache();
// Returns every block held by the transfer caches to the buckets.
void DrainTransferCaches();
// Gives back the slot pages of the caches that exited threads left for
// reuse, retired `max_age_ms` or longer ago (0: all); returns how many.
// The decay does it for old ones, trim for all: after a spike of threads
// their touched slots (up to 44 KiB each) stayed resident for good.
size_t ReleaseRetiredCachePages(uint64_t max_age_ms = 0);
// One decay step, as the slow paths take now and then: unmaps regions empty
// for the decay time, gives back the pages of large free blocks as old, and
// returns to their regions the blocks that sat in a transfer cache for a
// whole decay period. For a background thread, when every thread is idle.
void RunDecay();

// fork() support for a process whose malloc is Rulloc: take every lock of
// the process-wide allocator before fork, release them after it in the
// parent, and in the child also forget the caches of threads that do not
// exist there (their blocks stay allocated).
void PrepareFork();
void AfterForkInParent();
void AfterForkInChild();
// Registers those three with pthread_atfork, once per process: the malloc
// shim at its start-up, before any other library's constructor
// (shim/start.h), and the first thread cache, for a program that uses the
// rulloc_* C API alone. fork runs prepare handlers in reverse order of
// registration and the others in order, so the handlers libraries register
// later run while Rulloc's locks are free, and may allocate.
void RegisterForkHandlers();

namespace internal {

using DefaultClasses = SizeClassMap<DefaultBuckets>;

// A bin's slots; every block but the top carries the mark (see FreeMark):
//
//   slots[-1]  slots[0]  slots[1]  ...  slots[count-1]  ...  slots[max-1]
//   ┌─────────┬─────────┬─────────┬─────┬───────────────┬─────┬──────────┐
//   │ &scratch│ oldest  │ marked  │     │ top (mark?)   │     │          │
//   └─────────┴─────────┴─────────┴─────┴───────────────┴─────┴──────────┘
//   a sentinel, so that the fast free has a "top" to mark in an empty bin
//   too: the cache's scratch word (written when the bin gets a bound)
struct CacheBin {
  void** slots = nullptr;          // slots[0..count): oldest first
  std::atomic<uint32_t> count{0};  // written only by the owner; read by stats
  uint32_t max_count = 0;          // 0: every operation takes the slow path
};

class ThreadCache {
 public:
  static constexpr size_t kBins = DefaultClasses::kCount;
  // Bytes a thread's bins may be allowed to hold in all.
  static constexpr size_t kThreadBudget = size_t{2} << 20;

  // Blocks moved per refill or flush: about 32 KiB, between 2 and 32 blocks.
  static constexpr uint32_t BatchFor(size_t bucket) {
    const size_t n = (32 * 1024) / DefaultClasses::BlockSize(bucket);
    return static_cast<uint32_t>(n < 2 ? 2 : n > 32 ? 32 : n);
  }
  // The most a bin may grow to, and its number of slots: 512 KiB of blocks
  // up to 1 KiB, 128 KiB of bigger ones, at most 256 blocks, at least two
  // batches.
  static constexpr uint32_t MaxCountFor(size_t bucket) {
    const size_t size = DefaultClasses::BlockSize(bucket);
    const size_t n = (size <= 1024 ? 512 * 1024 : 128 * 1024) / size;
    const size_t floor = 2 * BatchFor(bucket);
    return static_cast<uint32_t>(n < floor ? floor : n > 256 ? 256 : n);
  }

  static void* AllocateSlow(size_t bucket);
  static void FreeSlow(void* block, size_t bucket);
  static void FreeGeneral(void* p);

  CacheBin bins[kBins];
  uint64_t cookie = 0;         // cache_cookie, next to the bins (0 in the empty cache)
  uint64_t scratch = 0;        // the empty bins' top: the fast free's harmless write
  uint64_t shuffle_state = 0;  // hardened mode's random block order
  size_t capacity_bytes = 0;   // Σ max_count × block size
  std::atomic<size_t> refills{0};
  std::atomic<size_t> flushes{0};
  ThreadCache* next = nullptr;  // registry of live caches
  ThreadCache* prev = nullptr;
  uint64_t retired_ms = 0;      // when its thread exited (on the retired list)
  bool slots_resident = false;  // its slot pages may hold memory
};

// The slots of all the bins of a cache.
inline constexpr size_t kCacheSlots = [] {
  size_t n = 0;
  for (size_t b = 0; b < ThreadCache::kBins; ++b) n += 1 + ThreadCache::MaxCountFor(b);
  return n;
}();

extern constinit thread_local ThreadCache* tls_cache __attribute__((tls_model("initial-exec")));

// A block in a thread cache carries a mark in its first word, keyed by a
// per-process cookie; the allocator keeps nothing else in free blocks, so a
// write after free cannot redirect an allocation:
//
//   block in a bin (or a transfer cache)
//   ┌─────────────────────────────┬──────────────
//   │ word 0: rotl(self,23)^cookie │ (untouched)
//   └─────────────────────────────┴──────────────
//
// A refill writes it too, on every block it takes (one handed out before
// may have reached its region with none; a new one may sit where a stale
// pointer into an unmapped region points).
// free finds the mark on a block that is probably cached already (a double
// free) and takes the slow path to make sure; malloc clears it when it
// hands the block out, so a live block matches only if its owner wrote the
// mark itself (the slow path then finds nothing and goes on).
//
// The fast free marks the block it pushes one free later: it marks the
// bin's top (again, if that already has it: no test, no branch), pushes the
// new block with no mark and only asks for its line (prefetchw). A store into
// the block at free, right after the program read it, cost larson at 2
// threads 1.10× the time on this project's 2-CPU host whenever the host
// was in its slow phase (likely a wait for another CPU's copy of a line it
// wrote last; no counters to prove it); one free later it costs nothing
// measurable. So a bin's top may lack the mark, and the checks that look
// for the mark look at the top too (MaybeCached); the paths that bury or
// move the top mark it first (MarkTop). (An earlier form tagged an
// unmarked top in its slot and tested the tag: 1.2 ns more per malloc and
// free pair in bursts, where the top is always in the CPU cache.)
extern std::atomic<uint64_t> cache_cookie;  // odd once any cache exists
inline uint64_t* BlockWords(const void* p) { return static_cast<uint64_t*>(const_cast<void*>(p)); }
// Fast paths pass the copy of the cookie their ThreadCache holds.
inline uint64_t Cookie() { return cache_cookie.load(std::memory_order_relaxed); }
inline uint64_t FreeMark(const void* self, uint64_t cookie) {
  const uint64_t x = reinterpret_cast<uintptr_t>(self);
  return ((x << 23) | (x >> 41)) ^ cookie;
}
inline void SetFreeMark(void* block, uint64_t cookie = Cookie()) {
  BlockWords(block)[0] = FreeMark(block, cookie);
}
// True if `p` carries the mark: cached, or freed to its region since (the
// callers tell these apart), or user data that forges it.
inline bool LooksCached(const void* p, uint64_t cookie = Cookie()) {
  return BlockWords(p)[0] == FreeMark(p, cookie);
}
// Marks the top of `bin`, which may lack the mark; for the paths that push
// a block on it without the fast path or move it.
inline void MarkTop(CacheBin& bin, uint64_t cookie = Cookie()) {
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  if (count != 0) SetFreeMark(bin.slots[count - 1], cookie);
}
// True if `p` is the top of `bin` (which may lack the mark).
inline bool IsTop(const CacheBin& bin, const void* p) {
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  return count != 0 && bin.slots[count - 1] == p;
}
// Asks for the cache line at `p` in the exclusive state, without waiting.
inline void PrefetchForWrite(const void* p) {
#if defined(__x86_64__)
  // (GCC emits prefetchw for __builtin_prefetch only with -mprfchw.)
  asm volatile("prefetchw %0" ::"m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

inline Heap& DefaultHeap() { return DefaultAllocator().heap(); }

// True if `p`, a handed-out block of `bucket`, may be in a cache: it carries
// the mark, or it is the top of the calling thread's bin. (The
// assertion, on in the ASan+UBSan and fuzz builds, catches a bucket index of
// another instance, whose buckets may outnumber the bins.)
inline bool MaybeCached(const void* p, size_t bucket) {
  assert(bucket < ThreadCache::kBins);
  return LooksCached(p) || IsTop(tls_cache->bins[bucket], p);
}

// size in [1, DefaultClasses::kMaxSize].
__attribute__((always_inline)) inline void* CachedAllocate(size_t size) {
  const size_t bucket = DefaultClasses::BucketFor(size);
  ThreadCache* cache = tls_cache;
  CacheBin& bin = cache->bins[bucket];
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  if (__builtin_expect(count != 0, 1)) {
    void* block = bin.slots[count - 1];
    bin.count.store(count - 1, std::memory_order_relaxed);
    BlockWords(block)[0] = 0;
    return block;
  }
  return ThreadCache::AllocateSlow(bucket);
}

[[noreturn]] void ReportWrongSize(void* p);
// Free with the size the caller gave (kSized), checked against the block.
void FreeSizedGeneral(void* p, size_t size, bool aligned);

// Frees of pointers whose page-map entry has no tag (hardened or aligned
// regions, other kinds, other instances, misuse): the checks through the
// region header.
void FreeUntagged(void* p);
void FreeUntaggedSized(void* p, size_t size);

// True, with its bucket, if `p` is the start of a handed-out block in a
// tagged region (a plain small region of the process allocator). The tag
// gives the bucket, and with it the block layout, so the checks read the
// allocated bitmap but not the region header. An untagged entry's layout
// (tag 0) has room for no block: no test of the tag of its own.
__attribute__((always_inline)) inline bool IsTaggedBlock(const void* p, size_t* bucket) {
  const uintptr_t entry = PageMap::Entry(p);
  const size_t tag = entry & PageMap::kTagMask;
  const TaggedLayout& layout = kTaggedLayouts<DefaultBuckets>[tag];
  const uint32_t index = layout.UncheckedBlockIndex(reinterpret_cast<uintptr_t>(p) - entry);
  if (__builtin_expect(index >= layout.capacity, 0)) return false;
  const uint64_t word = layout.AllocatedBits(entry)[index / 64].load(std::memory_order_relaxed);
  *bucket = tag - 1;
  return (word >> (index % 64)) & 1;
}

// Frees `p`, a block IsTaggedBlock found in `bucket`, into the thread cache.
__attribute__((always_inline)) inline void CachedFreeTagged(void* p, size_t bucket) {
  ThreadCache* cache = tls_cache;
  CacheBin& bin = cache->bins[bucket];
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  // Hardened mode zeroes the block: FreeSlow does that, off the fast path.
  if (__builtin_expect(
          count < bin.max_count && !LooksCached(p, cache->cookie) && !runtime_options.hardened,
          1)) {
    void** slots = bin.slots;
    // The top gets its mark (an empty bin's is the scratch word); a second
    // free of the top itself is left to the slow path, which reports it.
    void* top = (slots + count)[-1];
    if (__builtin_expect(top == p, 0)) return ThreadCache::FreeSlow(p, bucket);
    SetFreeMark(top, cache->cookie);
    PrefetchForWrite(p);
    slots[count] = p;
    bin.count.store(count + 1, std::memory_order_relaxed);
    return;
  }
  ThreadCache::FreeSlow(p, bucket);
}

template <bool kSized = false>
__attribute__((always_inline)) inline void CachedFree(void* p, size_t size = 0) {
  size_t bucket;
  if (__builtin_expect(IsTaggedBlock(p, &bucket), 1)) {
    if (kSized && !SizeFitsBlock(size, DefaultClasses::BlockSize(bucket), false)) {
      ReportWrongSize(p);
    }
    return CachedFreeTagged(p, bucket);
  }
  if (kSized) return FreeUntaggedSized(p, size);
  FreeUntagged(p);
}

// rulloc_malloc, rulloc_free and rulloc_free_sized, for callers that inline
// them (the malloc shim's entry points).
__attribute__((always_inline)) inline void* CachedMalloc(size_t size) {
  if (__builtin_expect(size - 1 < DefaultClasses::kMaxSize, 1)) return CachedAllocate(size);
  if (size == 0) return CachedAllocate(1);  // a block of its own, from the cache too
  return DefaultAllocator().allocate(size);
}
__attribute__((always_inline)) inline void CachedFreeUnlessNull(void* p) {
  if (p != nullptr) CachedFree(p);
}
__attribute__((always_inline)) inline void CachedFreeSizedUnlessNull(void* p, size_t size) {
  if (p != nullptr) CachedFree</*kSized=*/true>(p, size);
}

// Aborts with `fault` if `p` is a small block in the calling thread's cache
// or in a transfer cache: freed, then passed to realloc (say). `region` is
// RegionHolding(p), which the caller looked up.
void CheckNotFreed(RegionHeader* region, void* p, const char* fault);

}  // namespace internal
}  // namespace rulloc

#endif  // RULLOC_CONCURRENCY_THREAD_CACHE_H_
