#include "concurrency/thread_cache.h"

#include <errno.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <utility>

#include "concurrency/interval_claim.h"
#include "concurrency/spin_lock.h"
#include "concurrency/transfer_cache.h"
#include "core/diagnostics.h"
#include "core/region_carver.h"
#include "core/runtime_options.h"
#include "core/secret.h"
#include "platform/cpu.h"
#include "platform/pages.h"

namespace rulloc {
namespace internal {
namespace {

// The cache every thread starts on: all bins empty with a bound of 0.
constinit ThreadCache empty_cache;

// Set while a thread builds its cache (pthread_setspecific may allocate),
// and after its cache was torn down at exit: such a thread allocates
// straight from the buckets.
thread_local bool tls_bypass __attribute__((tls_model("initial-exec"))) = false;

// Live caches (for statistics) and retired ones (for reuse by new threads).
// Only thread start, thread exit and statistics take this lock.
struct Registry {
  SpinLock lock;
  ThreadCache* live = nullptr;
  ThreadCache* retired = nullptr;
  size_t live_count = 0;
  size_t retired_resident = 0;  // retired caches whose slot pages may hold memory
  size_t retired_refills = 0;
  size_t retired_flushes = 0;
  bool key_created = false;
  pthread_key_t key{};
};
constinit Registry registry;

SmallBucket& BucketAt(size_t arena, size_t bucket) {
  return DefaultHeap().SmallBucketAt(arena, bucket);
}

static_assert(kProcessArenas <= 256, "arena indices are stored in bytes");

// 1 + the highest arena a refill has used: loops over arenas stop there,
// so that the caches of arenas no CPU maps to stay untouched memory.
constinit std::atomic<size_t> arenas_used{1};

// Refills come from the arena of the CPU the thread runs on.
// It grows under the registry lock (at most kProcessArenas - 1 times), so
// that PrepareFork, which holds that lock, sees a count that cannot change.
size_t CurrentArena() {
  const size_t arena = platform::CurrentCpu() % kProcessArenas;
  if (arena >= arenas_used.load(std::memory_order_relaxed)) {
    SpinLockHolder hold(registry.lock);
    if (arena >= arenas_used.load(std::memory_order_relaxed)) {
      arenas_used.store(arena + 1, std::memory_order_relaxed);
    }
  }
  return arena;
}
size_t ArenasUsed() { return arenas_used.load(std::memory_order_relaxed); }

// The bucket a cached block came from (the free path checked that it is a
// handed-out small block of the process allocator).
SmallBucket& OwnerOf(const void* block) {
  return *reinterpret_cast<SmallRegion*>(PageMap::Lookup(block))->bucket;
}

constinit TransferCaches<kProcessArenas, ThreadCache::kBins> transfer;

// Aborts if `block` (which MaybeCached found) is in the calling
// thread's bin or in its bucket's transfer cache: a double free. A block in
// another thread's cache cannot be seen from here; its second free is caught
// when both copies reach the bucket.
void CheckNotCached(ThreadCache* cache, size_t bucket, void* block,
                    const char* fault = "double free") {
  const CacheBin& bin = cache->bins[bucket];
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < count; ++i) {
    if (bin.slots[i] == block) ReportHeapMisuse(fault, block);
  }
  if (transfer.Contains(OwnerOf(block).arena(), bucket, block)) ReportHeapMisuse(fault, block);
}

// Blocks a bucket's transfer cache may hold. Over all the arenas in use:
// about 512 KiB, at least four batches, at most one cache's slots (the
// bound ThreadCacheTest.BinsStayWithinTheirBounds checks); each arena's
// share is at least one batch (at most 8 × 32 blocks in all).
uint32_t TransferCapacity(size_t bucket) {
  const size_t batch = ThreadCache::BatchFor(bucket);
  const size_t n = (512 * 1024) / DefaultClasses::BlockSize(bucket);
  const size_t total = std::min<size_t>(std::max(n, 4 * batch), kTransferSlots);
  return static_cast<uint32_t>(std::max(total / ArenasUsed(), batch));
}

// Returns blocks of one arena to its transfer cache, or to its bucket when
// that is full.
void ReleaseToArena(size_t arena, size_t bucket, void* const* blocks, uint32_t n) {
  if (!transfer.Put(arena, bucket, blocks, n, TransferCapacity(bucket))) {
    BucketAt(arena, bucket).FreeBatch(blocks, n);
  }
}

// Returns up to 64 blocks to the arenas they came from: usually one (a
// thread frees mostly what it allocated); blocks freed on another thread
// than their own go back to their own arena, sorted out here.
void ReleaseBatch(size_t bucket, void* const* blocks, uint32_t n) {
  if (n == 0) return;  // (no caller passes none; arena_of[0] is read below)
  uint8_t arena_of[64];
  bool mixed = false;
  // A batch mostly holds neighbours: a block of the previous block's region
  // needs no page-map lookup and no look at its bucket.
  const RegionHeader* last_region = nullptr;
  uint8_t last_arena = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (last_region == nullptr || !last_region->Holds(blocks[i])) {
      last_region = PageMap::Lookup(blocks[i]);
      last_arena =
          static_cast<uint8_t>(reinterpret_cast<const SmallRegion*>(last_region)->bucket->arena());
    }
    arena_of[i] = last_arena;
    mixed |= arena_of[i] != arena_of[0];
  }
  if (!mixed) return ReleaseToArena(arena_of[0], bucket, blocks, n);
  void* group[64];
  for (size_t arena = 0; arena < kProcessArenas; ++arena) {
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; ++i) {
      if (arena_of[i] == arena) group[count++] = blocks[i];
    }
    if (count != 0) ReleaseToArena(arena, bucket, group, count);
  }
}

// Fills out[0..n) from the transfer cache of the calling thread's arena,
// then those of the other arenas (before it carves new blocks, which would
// leave theirs idle: short-lived threads that move between CPUs would fill
// every arena's transfer caches), then its bucket; returns the count.
size_t AcquireBatch(size_t bucket, void** out, uint32_t n) {
  const size_t arena = CurrentArena();
  const size_t used = ArenasUsed();
  uint32_t got = 0;
  for (size_t i = 0; i < used && got < n; ++i) {
    got += transfer.Take((arena + i) % used, bucket, out + got, n - got);
  }
  if (got == n) return got;
  // Before the bucket cuts new blocks (new pages), blocks freed to another
  // arena's regions. Frees go back to a block's own arena: producers that
  // run on both CPUs would otherwise cut new blocks in one arena while the
  // other's regions hold freed ones, and grow both to the data in flight.
  SmallBucket& own = BucketAt(arena, bucket);
  if (used > 1 && own.reusable() == 0) {
    for (size_t i = 1; i < used && got < n; ++i) {
      got += BucketAt((arena + i) % used, bucket).AllocateFreed(out + got, n - got);
    }
    if (got == n) return got;
  }
  return got + own.AllocateBatch(out + got, n - got);
}

// Moves what `take` removes from each transfer cache back to its bucket.
template <typename Take>
void ReturnToBuckets(Take take) {
  void* blocks[kTransferSlots];
  for (size_t a = 0; a < ArenasUsed(); ++a) {
    for (size_t b = 0; b < ThreadCache::kBins; ++b) {
      if (const uint32_t n = take(a, b, blocks)) BucketAt(a, b).FreeBatch(blocks, n);
    }
  }
}

void DrainTransferCaches() {
  ReturnToBuckets([](size_t arena, size_t bucket, void** out) {
    return transfer.Take(arena, bucket, out, kTransferSlots);
  });
}

// The decay step of the caches shared by threads: what stayed in a transfer
// cache for a whole decay period goes back to its regions (which the heap's
// own decay then handles on its next step).
void DecaySharedCaches() {
  ReturnToBuckets([](size_t arena, size_t bucket, void** out) {
    return transfer.TakeIdle(arena, bucket, out);
  });
}

// DecaySharedCaches at most once per decay period.
constinit std::atomic<uint64_t> last_shared_decay_ms{0};
void MaybeDecaySharedCaches() {
  if (ClaimInterval(last_shared_decay_ms, platform::CoarseMonotonicMillis(), Heap::kDecayMillis)) {
    DecaySharedCaches();
    ReleaseRetiredCachePages(Heap::kDecayMillis);
  }
}

// The heap's purge step, and the shared caches' decay on its own clock:
// slow paths of large blocks claim the heap's purge intervals far more
// often than these flushes do, and must not keep the shared caches from
// decaying. The clock is read once every 64 calls of a thread, as there.
void MaybeDecay() {
  DefaultHeap().MaybePurge();
  static thread_local uint32_t calls __attribute__((tls_model("initial-exec"))) = 0;
  if ((++calls & 63) == 0) MaybeDecaySharedCaches();
}

// Returns the oldest blocks of a bin to the shared caches, keeping the
// `keep` most recently freed (the ones likeliest to be in the CPU cache).
void FlushBin(ThreadCache* cache, size_t bucket, uint32_t keep) {
  CacheBin& bin = cache->bins[bucket];
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  if (count <= keep) return;
  MarkTop(bin);  // it is released or moves
  const uint32_t released = count - keep;
  for (uint32_t i = 0; i < released; i += 64) {
    ReleaseBatch(bucket, bin.slots + i, std::min(64u, released - i));
  }
  std::memmove(bin.slots, bin.slots + released, keep * sizeof(void*));
  bin.count.store(keep, std::memory_order_relaxed);
  cache->flushes.store(cache->flushes.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
}

void FlushAll(ThreadCache* cache) {
  for (size_t b = 0; b < ThreadCache::kBins; ++b) {
    if (cache->bins[b].count.load(std::memory_order_relaxed) != 0) FlushBin(cache, b, 0);
  }
}

void OnThreadExit(void* arg) {
  auto* cache = static_cast<ThreadCache*>(arg);
  FlushAll(cache);
  tls_cache = &empty_cache;
  tls_bypass = true;  // destructors that run later still allocate, uncached
  SpinLockHolder hold(registry.lock);
  if (cache->prev != nullptr) cache->prev->next = cache->next;
  if (cache->next != nullptr) cache->next->prev = cache->prev;
  if (registry.live == cache) registry.live = cache->next;
  --registry.live_count;
  registry.retired_refills += cache->refills.load(std::memory_order_relaxed);
  registry.retired_flushes += cache->flushes.load(std::memory_order_relaxed);
  cache->retired_ms = platform::CoarseMonotonicMillis();
  registry.retired_resident += cache->slots_resident;
  cache->next = registry.retired;
  registry.retired = cache;
}

// A cache and, after it, the slot arrays of its bins.
constexpr size_t kCacheFootprint = sizeof(ThreadCache) + kCacheSlots * sizeof(void*);
// The pages of a cache's mapping.
size_t CacheMappingBytes() { return AlignUp(kCacheFootprint, platform::PageSize()); }

ThreadCache* Construct(void* memory) {
  auto* cache = new (memory) ThreadCache();
  cache->slots_resident = true;
  void** slots = reinterpret_cast<void**>(cache + 1);
  for (size_t b = 0; b < ThreadCache::kBins; ++b) {
    // Its sentinel, slots[-1], is written when the bin gets a bound
    // (GrowBin), so the slot pages of bins a thread never uses stay
    // untouched.
    cache->bins[b].slots = ++slots;
    slots += ThreadCache::MaxCountFor(b);
  }
  return cache;
}

ThreadCache* NewCache() {
  {
    SpinLockHolder hold(registry.lock);
    if (!registry.key_created) {
      if (pthread_key_create(&registry.key, OnThreadExit) != 0) return nullptr;
      registry.key_created = true;
    }
    if (ThreadCache* reused = registry.retired) {
      registry.retired = reused->next;
      registry.retired_resident -= reused->slots_resident;
      // Hardened mode's random order goes on from where it was: a thread on
      // a reused cache must not replay the last one's.
      const uint64_t shuffle_state = reused->shuffle_state;
      ThreadCache* cache = Construct(reused);
      cache->shuffle_state = shuffle_state;
      return cache;
    }
  }
  // One mapping per cache, never given back: retired caches are reused by
  // the next threads. Slot pages a thread never uses stay untouched.
  void* memory = platform::Reserve(CacheMappingBytes(), platform::PageSize(), true);
  return memory == nullptr ? nullptr : Construct(memory);
}

// The heap's check of blocks that reach it directly (Heap::CachedBlockCheck).
void CheckNotCachedByHeap(void* p, size_t bucket, const char* fault) {
  if (MaybeCached(p, bucket)) CheckNotCached(tls_cache, bucket, p, fault);
}

// Gives the calling thread its own cache; nullptr if it must go uncached.
ThreadCache* InitThread() {
  if (tls_bypass) return nullptr;
  if (cache_cookie.load(std::memory_order_relaxed) == 0) {
    uint64_t expected = 0;
    cache_cookie.compare_exchange_strong(expected, ProcessSecret() * 0x9e3779b97f4a7c15ull | 1,
                                         std::memory_order_relaxed);
    DefaultHeap().SetCachedBlockCheck(CheckNotCachedByHeap);  // before any block is cached
  }
  tls_bypass = true;       // allocations made from here on are served uncached
  RegisterForkHandlers();  // with no lock of Rulloc's held: fork may be waiting for them
  ThreadCache* cache = NewCache();
  if (cache == nullptr) return nullptr;  // tls_bypass stays set: uncached
  cache->cookie = cache_cookie.load(std::memory_order_relaxed);
  if (pthread_setspecific(registry.key, cache) != 0) {
    SpinLockHolder hold(registry.lock);
    cache->retired_ms = platform::CoarseMonotonicMillis();
    registry.retired_resident += cache->slots_resident;
    cache->next = registry.retired;
    registry.retired = cache;
    return nullptr;
  }
  {
    SpinLockHolder hold(registry.lock);
    cache->next = registry.live;
    if (registry.live != nullptr) registry.live->prev = cache;
    registry.live = cache;
    ++registry.live_count;
  }
  tls_bypass = false;
  tls_cache = cache;
  return cache;
}

// Hardened mode: the blocks of a refill are handed out in random order, so
// that the address of the next block cannot be predicted from the last.
void Shuffle(ThreadCache* cache, void** batch, size_t n) {
  uint64_t x = cache->shuffle_state;
  if (x == 0) x = (ProcessSecret() ^ reinterpret_cast<uintptr_t>(cache)) | 1;
  for (size_t i = n; i > 1; --i) {
    x ^= x << 13;  // xorshift64
    x ^= x >> 7;
    x ^= x << 17;
    std::swap(batch[i - 1], batch[x % i]);
  }
  cache->shuffle_state = x;
}

// Bytes of blocks a bin's bound allows.
size_t BoundBytes(const ThreadCache* cache, size_t bucket) {
  return size_t{cache->bins[bucket].max_count} * DefaultClasses::BlockSize(bucket);
}

// Makes `need` bytes of room in the thread budget for bin `bucket`, which
// has no bound yet: the bins whose bounds allow more than `need` give up a
// batch each (their blocks past the new bound go back), the biggest first.
// False if that is not enough. Without it, classes a thread used once
// would keep its budget, and its other classes uncached, for good.
bool MakeRoom(ThreadCache* cache, size_t bucket, size_t need) {
  while (cache->capacity_bytes + need > ThreadCache::kThreadBudget) {
    size_t victim = ThreadCache::kBins;
    for (size_t b = 0; b < ThreadCache::kBins; ++b) {
      if (b == bucket || BoundBytes(cache, b) <= need) continue;
      if (victim == ThreadCache::kBins || BoundBytes(cache, b) > BoundBytes(cache, victim)) {
        victim = b;
      }
    }
    if (victim == ThreadCache::kBins) return false;
    CacheBin& bin = cache->bins[victim];
    const uint32_t cut = std::min(ThreadCache::BatchFor(victim), bin.max_count);
    bin.max_count -= cut;
    cache->capacity_bytes -= size_t{cut} * DefaultClasses::BlockSize(victim);
    FlushBin(cache, victim, bin.max_count);
  }
  return true;
}

// Raises a bin's bound by one batch (slow start), within the thread budget.
// Only a bin with no bound at all takes room from the others: bins that
// have some stay as they are, so that a thread whose classes share the
// budget does not move batches between them at every refill.
void GrowBin(ThreadCache* cache, size_t bucket) {
  CacheBin& bin = cache->bins[bucket];
  const uint32_t batch = ThreadCache::BatchFor(bucket);
  const size_t cost = size_t{batch} * DefaultClasses::BlockSize(bucket);
  if (bin.max_count + batch > ThreadCache::MaxCountFor(bucket)) return;
  if (cache->capacity_bytes + cost > ThreadCache::kThreadBudget &&
      (bin.max_count != 0 || !MakeRoom(cache, bucket, cost))) {
    return;
  }
  if (bin.max_count == 0) bin.slots[-1] = &cache->scratch;  // the fast free's first top
  bin.max_count += batch;
  cache->capacity_bytes += cost;
}

// One block straight from its bucket, for a thread that cannot cache it.
void* AllocateUncached(size_t bucket) {
  SmallBucket& from = BucketAt(CurrentArena(), bucket);
  void* block = DefaultHeap().RetryAfterPurge([&]() -> void* {
    void* b;
    return from.AllocateBatch(&b, 1) == 1 ? b : nullptr;
  });
  if (block == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  BlockWords(block)[0] = 0;  // a stale mark
  return block;
}

}  // namespace

constinit thread_local ThreadCache* tls_cache __attribute__((tls_model("initial-exec"))) =
    &empty_cache;
constinit std::atomic<uint64_t> cache_cookie{0};

void* ThreadCache::AllocateSlow(size_t bucket) {
  ThreadCache* cache = tls_cache;
  if (cache == &empty_cache && (cache = InitThread()) == nullptr) return AllocateUncached(bucket);
  CacheBin& bin = cache->bins[bucket];  // empty: the fast path found no block
  // Slow start of the refill size too: 1/8 of a batch, then 1/4, 1/2, a
  // whole one, as the bin's bound grows, so that a thread that uses a size
  // class once holds a block or two of it, not a whole batch.
  const uint32_t full = BatchFor(bucket);
  const uint32_t grown = std::min(bin.max_count / full, 3u);
  const uint32_t bound = bin.max_count;
  GrowBin(cache, bucket);
  if (bin.max_count == 0) return AllocateUncached(bucket);  // no budget left for this bin
  const uint32_t want = std::min(std::max(full >> (3 - grown), 1u), bin.max_count);
  const uint32_t got = DefaultHeap().RetryAfterPurge(
      [&] { return static_cast<uint32_t>(AcquireBatch(bucket, bin.slots, want)); });
  if (got == 0) {
    // Out of memory: the bin gets no room for blocks it could not have.
    cache->capacity_bytes -= size_t{bin.max_count - bound} * DefaultClasses::BlockSize(bucket);
    bin.max_count = bound;
    errno = ENOMEM;
    return nullptr;
  }
  cache->refills.store(cache->refills.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  // Every block gets the mark a free gives a cached block, so that a second
  // free of one is caught while it waits in the bin: a block that went back
  // to its region without it (freed there directly, or its page given back
  // since), and a new block too, where a stale pointer may name it (its
  // region's address held an older region, emptied and unmapped).
  for (size_t i = 0; i < got; ++i) SetFreeMark(bin.slots[i], cache->cookie);
  // Pops come from the top: reversed, a batch carved in address order is
  // handed out in address order, as a program that walks its new objects
  // (and the CPU's prefetcher) expects.
  if (runtime_options.hardened) {
    Shuffle(cache, bin.slots, got);
  } else {
    std::reverse(bin.slots, bin.slots + got);
  }
  void* block = bin.slots[got - 1];
  BlockWords(block)[0] = 0;
  bin.count.store(got - 1, std::memory_order_relaxed);
  MaybeDecay();
  return block;
}

void ThreadCache::FreeSlow(void* block, size_t bucket) {
  ThreadCache* cache = tls_cache;
  if (MaybeCached(block, bucket)) CheckNotCached(cache, bucket, block);
  // Hardened: zeroed on every path (the caller checked it is handed out).
  if (runtime_options.hardened) std::memset(block, 0, DefaultClasses::BlockSize(bucket));
  if (cache == &empty_cache && (cache = InitThread()) == nullptr) {
    OwnerOf(block).Free(block);
    return;
  }
  CacheBin& bin = cache->bins[bucket];
  if (bin.max_count == 0) GrowBin(cache, bucket);
  const uint32_t count = bin.count.load(std::memory_order_relaxed);
  if (count >= bin.max_count) {
    if (bin.max_count == 0) {
      OwnerOf(block).Free(block);  // no budget left for this bin
      return;
    }
    const uint32_t batch = BatchFor(bucket);
    FlushBin(cache, bucket, count > batch ? count - batch : 0);
    MaybeDecay();
  }
  MarkTop(bin);
  SetFreeMark(block);
  const uint32_t count_now = bin.count.load(std::memory_order_relaxed);
  bin.slots[count_now] = block;
  bin.count.store(count_now + 1, std::memory_order_relaxed);
}

void ReportWrongSize(void* p) { ReportHeapMisuse("free with a wrong size", p); }

void FreeSizedGeneral(void* p, size_t size, bool aligned) {
  // A pointer that is not a live block is left to free, which names the fault.
  size_t usable;
  if (DefaultHeap().TryUsableSize(p, &usable) && !SizeFitsBlock(size, usable, aligned)) {
    ReportWrongSize(p);
  }
  CachedFree(p);
}

void CheckNotFreed(RegionHeader* region, void* p, const char* fault) {
  if (region == nullptr) return;
  if (region->kind == RegionKind::kHuge && reinterpret_cast<HugeRegion*>(region)->cached) {
    ReportHeapMisuse(fault, p);
  }
  // (Only the process instance's blocks can be in its caches; another
  // instance's bucket index may be past the bins.)
  if (region->kind != RegionKind::kSmall || region->heap != &DefaultHeap()) return;
  // Only a handed-out block start is read: `p` may point into a guard page.
  auto* small = reinterpret_cast<SmallRegion*>(region);
  if (small->HandedOutBlockAt(p) == small->layout.capacity ||
      !MaybeCached(p, small->bucket_index)) {
    return;
  }
  CheckNotCached(tls_cache, small->bucket_index, p, fault);
}

void ThreadCache::FreeGeneral(void* p) { DefaultAllocator().deallocate(p); }

namespace {

// A block of an untagged small region of the process allocator that can
// go to the thread cache, or nullptr.
SmallRegion* CacheableUntagged(void* p) {
  RegionHeader* region = PageMap::Lookup(p);
  if (region == nullptr || region->kind != RegionKind::kSmall || region->heap != &DefaultHeap()) {
    return nullptr;
  }
  // (Over-aligned blocks, handed out at an offset, are not: the bucket
  // checks their pointers.)
  auto* small = reinterpret_cast<SmallRegion*>(region);
  return small->HandedOutBlockAt(p) == small->layout.capacity ? nullptr : small;
}

}  // namespace

void FreeUntagged(void* p) {
  if (SmallRegion* small = CacheableUntagged(p))
    return ThreadCache::FreeSlow(p, small->bucket_index);
  ThreadCache::FreeGeneral(p);
}

void FreeUntaggedSized(void* p, size_t size) {
  if (SmallRegion* small = CacheableUntagged(p)) {
    if (!SizeFitsBlock(size, small->layout.block_size, false)) ReportWrongSize(p);
    return ThreadCache::FreeSlow(p, small->bucket_index);
  }
  FreeSizedGeneral(p, size, false);
}

}  // namespace internal

void RunDecay() {
  internal::DefaultHeap().Purge(internal::Heap::kDecayMillis);
  internal::MaybeDecaySharedCaches();
}

void FlushThreadCache() {
  internal::ThreadCache* cache = internal::tls_cache;
  if (cache != &internal::empty_cache) internal::FlushAll(cache);
}

void DrainTransferCaches() { internal::DrainTransferCaches(); }

size_t ReleaseRetiredCachePages(uint64_t max_age_ms) {
  using internal::registry;
  // The whole pages of slots, after the cache's header.
  const size_t slots_from = internal::AlignUp(sizeof(internal::ThreadCache), platform::PageSize());
  const size_t mapping = internal::CacheMappingBytes();
  if (slots_from >= mapping) return 0;
  // A decay step takes a bounded number, under the lock new threads wait on.
  const size_t limit = max_age_ms == 0 ? SIZE_MAX : 64;
  size_t released = 0;
  SpinLockHolder hold(registry.lock);
  // (Read under the lock: no cache retires later than this.)
  const uint64_t now_ms = platform::CoarseMonotonicMillis();
  for (internal::ThreadCache* c = registry.retired;
       c != nullptr && registry.retired_resident != 0 && released < limit; c = c->next) {
    if (!c->slots_resident || (max_age_ms != 0 && now_ms - c->retired_ms < max_age_ms)) continue;
    platform::Decommit(reinterpret_cast<char*>(c) + slots_from, mapping - slots_from);
    c->slots_resident = false;
    --registry.retired_resident;
    ++released;
  }
  return released;
}

void PrepareFork() {
  internal::registry.lock.lock();  // ArenasUsed() cannot grow from here on
  internal::transfer.LockAll(internal::ArenasUsed());
  internal::DefaultHeap().LockAll();
  internal::RegionCarver::LockForFork();  // taken under bucket locks: after them
}

void RegisterForkHandlers() {
  static std::atomic<bool> registered{false};
  if (registered.load(std::memory_order_relaxed) || registered.exchange(true)) return;
  pthread_atfork(PrepareFork, AfterForkInParent, AfterForkInChild);
}

void AfterForkInParent() {
  internal::RegionCarver::UnlockAfterFork();
  internal::DefaultHeap().UnlockAll();
  internal::transfer.UnlockAll(internal::ArenasUsed());
  internal::registry.lock.unlock();
}

void AfterForkInChild() {
  using internal::registry;
  internal::RegionCarver::AdoptInFlightAfterFork();
  internal::RegionCarver::UnlockAfterFork();
  internal::DefaultHeap().AfterForkInChildLocked();
  internal::DefaultHeap().UnlockAll();
  internal::transfer.UnlockAll(internal::ArenasUsed());
  // Only the forking thread exists in the child: keep its cache alone.
  internal::ThreadCache* own = internal::tls_cache;
  if (own != &internal::empty_cache) {
    own->next = own->prev = nullptr;
    registry.live = own;
    registry.live_count = 1;
  } else {
    registry.live = nullptr;
    registry.live_count = 0;
  }
  registry.lock.unlock();
}

BucketCounts GetBucketCounts(size_t bucket) {
  using internal::registry;
  BucketCounts counts;
  const internal::SmallBucketStats s = internal::DefaultHeap().SmallStats(bucket);
  counts.handed_out = s.blocks_in_use;
  counts.free_in_regions = s.blocks_free;
  for (size_t a = 0; a < internal::ArenasUsed(); ++a) {
    counts.in_caches += internal::transfer.count(a, bucket);
  }
  SpinLockHolder hold(registry.lock);
  for (internal::ThreadCache* c = registry.live; c != nullptr; c = c->next) {
    counts.in_caches += c->bins[bucket].count.load(std::memory_order_relaxed);
  }
  return counts;
}

ProcessStats GetProcessStats() {
  using internal::registry;
  ProcessStats stats;
  for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
    const BucketCounts counts = GetBucketCounts(b);
    stats.blocks_in_buckets += counts.free_in_regions;
    stats.blocks_in_caches += counts.in_caches;
    stats.blocks_in_use += counts.in_use();
  }
  SpinLockHolder hold(registry.lock);
  stats.threads_with_cache = registry.live_count;
  stats.refills = registry.retired_refills;
  stats.flushes = registry.retired_flushes;
  for (internal::ThreadCache* c = registry.live; c != nullptr; c = c->next) {
    stats.refills += c->refills.load(std::memory_order_relaxed);
    stats.flushes += c->flushes.load(std::memory_order_relaxed);
  }
  return stats;
}

}  // namespace rulloc
