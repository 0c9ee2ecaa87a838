// The thread caches of the process-wide allocator (rulloc_malloc/free).
#include "concurrency/thread_cache.h"

#include <pthread.h>
#include <sched.h>  // cpu_set_t
#include <sys/mman.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "bench/batch_queue.h"
#include "concurrency/transfer_cache.h"
#include "core/allocator.h"
#include "core/c_api.h"
#include "gtest/gtest.h"
#include "platform/cpu.h"
#include "platform/pages.h"
#include "tests/sanitizers.h"

namespace rulloc {
namespace {

constexpr int kScale = test_support::kUnderSanitizer ? 1 : 10;

// Keeps the calling thread on `cpu`.
void PinTo(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
}

// Keeps the calling thread on the CPU it runs on: refills come from the
// arena of the current CPU, and a move would switch arenas mid-test.
void PinToCurrentCpu() { PinTo(static_cast<int>(platform::CurrentCpu())); }

// Every block handed out by a bucket is either in some cache or held by the
// program: with nothing held, the program's share must be zero.
void ExpectNothingInUse() {
  for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
    const BucketCounts counts = GetBucketCounts(b);
    EXPECT_EQ(counts.handed_out, counts.in_caches) << "bucket " << b;
  }
}

TEST(ThreadCacheTest, FreedBlockIsReusedFirst) {
  void* p = rulloc_malloc(40);
  rulloc_free(p);
  void* q = rulloc_malloc(40);
  EXPECT_EQ(p, q);  // LIFO: the cache hands back the block it just got
  rulloc_free(q);
}

TEST(ThreadCacheTest, SmallRegionsCarryTheirBucketInThePageMap) {
  using internal::PageMap;
  void* p = rulloc_malloc(100);
  const uintptr_t entry = PageMap::Entry(p);
  EXPECT_EQ(entry & PageMap::kTagMask, internal::DefaultClasses::BucketFor(100) + 1);
  EXPECT_EQ(entry & ~PageMap::kTagMask, reinterpret_cast<uintptr_t>(PageMap::Lookup(p)));
  rulloc_free(p);
  // A standalone instance's blocks never go to the thread caches.
  Allocator instance;
  void* q = instance.allocate(100);
  EXPECT_EQ(PageMap::Entry(q) & PageMap::kTagMask, 0u);
  instance.deallocate(q);
}

TEST(ThreadCacheTest, AnAlignedPointerInsideABlockUntagsItsRegion) {
  using internal::PageMap;
  // aligned_alloc(64, 48) takes a 96-byte block; every other one starts
  // 64-aligned, the others hand out a pointer 32 bytes inside.
  std::vector<void*> blocks;
  void* inside = nullptr;
  for (int i = 0; i < 16 && inside == nullptr; ++i) {
    void* p = rulloc_aligned_alloc(64, 48);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
    auto* region = reinterpret_cast<internal::SmallRegion*>(PageMap::Lookup(p));
    if (region->BlockStart(p) != p) inside = p;
  }
  ASSERT_NE(inside, nullptr);
  EXPECT_EQ(PageMap::Entry(inside) & PageMap::kTagMask, 0u);
  // Frees in the region now read its header, which knows the offset
  // (MisuseDeathTest.StartOfTheBlockOfAnOverAlignedAllocation checks that
  // the block's own start is refused).
  for (void* p : blocks) rulloc_free(p);
}

TEST(ThreadCacheTest, CachedBlocksCarryTheFreeMarkAndHandedOutOnesDoNot) {
  // A cached block carries a keyed mark in its first word. The fast free
  // writes it on the block freed before (the bin's previous top), so the
  // newest block of a bin may lack it until the next free, and the checks
  // look at the top as well. malloc clears it, so a new owner cannot read it.
  size_t bucket = 0;
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(rulloc_malloc(48));
  ASSERT_TRUE(internal::IsTaggedBlock(blocks[0], &bucket));
  for (size_t i = 0; i < blocks.size(); ++i) {
    rulloc_free(blocks[i]);
    EXPECT_TRUE(internal::MaybeCached(blocks[i], bucket)) << i;
    if (i > 0) EXPECT_TRUE(internal::LooksCached(blocks[i - 1])) << i;
  }
  for (int i = 0; i < 64; ++i) {
    auto* words = static_cast<uint64_t*>(rulloc_malloc(48));
    EXPECT_EQ(words[0], 0u);
    EXPECT_FALSE(internal::MaybeCached(words, bucket));
    blocks[i] = words;
  }
  for (void* p : blocks) rulloc_free(p);
}

TEST(ThreadCacheTest, FreesNeverMarkABlockMallocHandedOut) {
  // The fast free marks its bin's top, the newest cached block; the slots
  // above the top still point at blocks malloc has handed out since. Their
  // owners' first words must stay as written through any mix of frees and
  // mallocs.
  std::mt19937 rng(7);
  std::vector<uint64_t*> live;
  std::vector<uint64_t> written;
  for (uint64_t step = 1; step <= 4000; ++step) {
    if (live.empty() || rng() % 2 == 0) {
      live.push_back(static_cast<uint64_t*>(rulloc_malloc(48)));
      live.back()[0] = step;
      written.push_back(step);
    } else {
      const size_t i = rng() % live.size();
      rulloc_free(live[i]);
      live[i] = live.back();
      written[i] = written.back();
      live.pop_back();
      written.pop_back();
    }
    for (size_t i = 0; i < live.size(); ++i) ASSERT_EQ(live[i][0], written[i]) << step;
  }
  for (uint64_t* p : live) rulloc_free(p);
}

// Takes out of every arena's regions the freed blocks of `bucket` (which
// earlier tests left there), so that refills cut new blocks.
std::vector<void*> HoldFreedBlocks(size_t bucket) {
  DrainTransferCaches();
  std::vector<void*> held;
  void* some[64];
  for (size_t a = 0; a < internal::kProcessArenas; ++a) {
    internal::SmallBucket& b = internal::DefaultHeap().SmallBucketAt(a, bucket);
    while (const size_t n = b.AllocateFreed(some, 64)) held.insert(held.end(), some, some + n);
  }
  return held;
}

void ReleaseHeld(const std::vector<void*>& held) {
  for (void* p : held) rulloc_free(p);
  rulloc_thread_cache_flush();
}

TEST(ThreadCacheTest, NewBlocksComeInAddressOrder) {
  // Refills find no freed block in any arena: they cut new ones.
  const std::vector<void*> held = HoldFreedBlocks(internal::DefaultClasses::BucketFor(4000));
  std::thread([] {      // a fresh cache
    PinToCurrentCpu();  // so that every refill cuts from one arena
    void* first = rulloc_malloc(4000);
    void* second = rulloc_malloc(4000);
    void* third = rulloc_malloc(4000);
    EXPECT_LT(first, second);
    EXPECT_LT(second, third);
    rulloc_free(first);
    rulloc_free(second);
    rulloc_free(third);
    rulloc_thread_cache_flush();
  })
      .join();
  ReleaseHeld(held);
}

// A refill whose arena has no freed block takes the blocks freed to another
// arena's regions before it cuts new ones. Frees go back to a block's own
// arena, so a thread that allocates on one CPU and then on another (or
// producers on both CPUs) would otherwise cut new blocks in the second
// arena while the first one's regions hold freed ones.
TEST(ThreadCacheTest, RefillsReuseBlocksFreedToAnotherArenaBeforeCuttingNewOnes) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpus[2] = {-1, -1};
  for (int c = 0; c < CPU_SETSIZE && cpus[1] < 0; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (cpus[0] < 0) {
      cpus[0] = c;
    } else if (static_cast<size_t>(c) % internal::kProcessArenas !=
               static_cast<size_t>(cpus[0]) % internal::kProcessArenas) {
      cpus[1] = c;
    }
  }
  // With one arena in reach there is no other arena to reuse from.
  if (cpus[1] < 0) GTEST_SKIP() << "needs two CPUs of different arenas";
  constexpr size_t kSize = 3000;
  const size_t bucket = internal::DefaultClasses::BucketFor(kSize);
  const std::vector<void*> held = HoldFreedBlocks(bucket);
  std::set<void*> freed;
  std::thread([&] {  // cuts and frees blocks in the first CPU's arena
    PinTo(cpus[0]);
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(rulloc_malloc(kSize));
    for (void* p : blocks) rulloc_free(p);
    freed.insert(blocks.begin(), blocks.end());
    rulloc_thread_cache_flush();
  })
      .join();
  DrainTransferCaches();  // the freed blocks are in their regions: the only freed ones
  std::thread([&] {       // on the other CPU, whose arena has no freed block of that size
    PinTo(cpus[1]);
    void* p = rulloc_malloc(kSize);
    EXPECT_TRUE(freed.count(p)) << p << " was cut anew";
    rulloc_free(p);
    rulloc_thread_cache_flush();
  })
      .join();
  ReleaseHeld(held);
}

TEST(ThreadCacheTest, RefillsGrowToAWholeBatch) {
  std::thread([] {  // a fresh cache
    const size_t batch = internal::ThreadCache::BatchFor(1);
    const size_t refills = GetProcessStats().refills;
    std::vector<void*> blocks;
    const size_t cached_before = GetProcessStats().blocks_in_caches;  // other threads'
    void* first = rulloc_malloc(24);
    const size_t cached_after_first = GetProcessStats().blocks_in_caches - cached_before;
    // Slow start: the first refill takes an eighth of a batch...
    EXPECT_GE(cached_after_first + 1, batch / 8);
    EXPECT_LT(cached_after_first, batch / 2);
    // ...then a quarter, a half, a whole batch: ten batches' worth of blocks
    // take a few refills more than ten, not one per block.
    for (size_t i = 0; i < 10 * batch; ++i) blocks.push_back(rulloc_malloc(24));
    const size_t taken = GetProcessStats().refills - refills;
    EXPECT_GE(taken, 10u);
    EXPECT_LE(taken, 14u);
    rulloc_free(first);
    for (void* p : blocks) rulloc_free(p);
    rulloc_thread_cache_flush();
  })
      .join();
}

TEST(ThreadCacheTest, ExplicitFlushEmptiesTheCallingThreadsCache) {
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(rulloc_malloc(100));
  for (void* p : blocks) rulloc_free(p);
  EXPECT_GT(GetProcessStats().blocks_in_caches, 0u);
  rulloc_thread_cache_flush();
  EXPECT_EQ(GetProcessStats().blocks_in_caches, 0u);
  ExpectNothingInUse();
}

// Transfer caches with nothing else in their huge pages' span: 2 MiB of
// untouched padding on either side.
struct PaddedTransferCaches {
  char head[2 << 20];
  internal::TransferCaches<2, 3> caches;
  char tail[2 << 20];
};
constinit PaddedTransferCaches padded{};  // zero: nothing written at load

// Looking at empty transfer caches (a refill that tries every arena, the
// decay, statistics, the locks taken around fork) reads their header lines
// only: each cache's page of slots stays out of memory until a batch is
// stored in it, and a stored batch comes back whole.
TEST(TransferCacheTest, EmptyCachesLeaveTheirSlotPagesUntouched) {
  internal::TransferCaches<2, 3>& caches = padded.caches;
  const size_t page = platform::PageSize();
  if (page != 4096) GTEST_SKIP() << "a page of slots per cache assumes 4 KiB pages";
  void* const start = &caches;
  const size_t bytes = sizeof(caches);
  ASSERT_EQ(bytes, 7 * page);  // the headers' page, then six of slots
  // A fault maps one page, not a transparent huge page around it (EINVAL:
  // a kernel without them).
  ASSERT_TRUE(madvise(start, bytes, MADV_NOHUGEPAGE) == 0 || errno == EINVAL);
  // Back to untouched zero pages, should an earlier repetition have run.
  ASSERT_EQ(madvise(start, bytes, MADV_DONTNEED), 0);
  auto resident_pages = [&] {
    unsigned char resident[7];
    EXPECT_EQ(mincore(start, bytes, resident), 0);
    size_t n = 0;
    for (unsigned char r : resident) n += r & 1;
    return n;
  };
  EXPECT_EQ(resident_pages(), 0u);

  void* out[internal::kTransferSlots];
  int marker;
  for (size_t a = 0; a < 2; ++a) {
    for (size_t b = 0; b < 3; ++b) {
      EXPECT_EQ(caches.Take(a, b, out, 32), 0u);
      EXPECT_EQ(caches.TakeIdle(a, b, out), 0u);
      EXPECT_FALSE(caches.Contains(a, b, &marker));
      EXPECT_EQ(caches.count(a, b), 0u);
    }
  }
  caches.LockAll(2);  // as around fork
  caches.UnlockAll(2);
  // The headers' page. (Looking at the slots of an empty cache would map
  // its page; the copies of zero pointers a Take of an empty cache would
  // make touch nothing, so the empty() checks are not what this sees.)
  EXPECT_EQ(resident_pages(), 1u);

  void* batch[3] = {&marker, &out[0], &out[1]};
  ASSERT_TRUE(caches.Put(1, 2, batch, 3, internal::kTransferSlots));
  EXPECT_EQ(resident_pages(), 2u);  // and the one cache's slots
  EXPECT_TRUE(caches.Contains(1, 2, &marker));
  EXPECT_EQ(caches.count(1, 2), 3u);
  EXPECT_EQ(caches.Take(1, 2, out, 32), 3u);
  EXPECT_EQ(std::set<void*>(out, out + 3), std::set<void*>(batch, batch + 3));
}

TEST(ThreadCacheTest, BinsStayWithinTheirBounds) {
  std::vector<void*> blocks;
  for (int i = 0; i < 40000; ++i) blocks.push_back(rulloc_malloc(16));
  for (void* p : blocks) rulloc_free(p);
  const BucketCounts counts = GetBucketCounts(0);
  // This thread's bin, plus the bucket's transfer cache.
  EXPECT_LE(counts.in_caches, internal::ThreadCache::MaxCountFor(0) + internal::kTransferSlots);
  rulloc_thread_cache_flush();
}

TEST(ThreadCacheTest, ClassesUsedOnceGiveTheirBudgetBackToTheOthers) {
  std::thread([] {  // a fresh thread cache
    using internal::DefaultClasses;
    using internal::ThreadCache;
    // Every class above 1 KiB, to its bin's full bound: past the budget.
    for (size_t b = DefaultClasses::BucketFor(1025); b < ThreadCache::kBins; ++b) {
      std::vector<void*> blocks;
      for (uint32_t i = 0; i < 4 * ThreadCache::MaxCountFor(b); ++i) {
        blocks.push_back(rulloc_malloc(DefaultClasses::BlockSize(b)));
      }
      for (void* p : blocks) rulloc_free(p);
    }
    const ThreadCache* cache = internal::tls_cache;
    EXPECT_GT(cache->capacity_bytes, ThreadCache::kThreadBudget * 3 / 4);
    // A class of 1 KiB blocks (a batch is 32 KiB) still gets cached blocks.
    for (int i = 0; i < 1000; ++i) rulloc_free(rulloc_malloc(1024));
    const size_t small = DefaultClasses::BucketFor(1024);
    EXPECT_GT(cache->bins[small].max_count, 0u);
    EXPECT_GT(cache->bins[small].count.load(), 0u);
    // The bounds still add up to the budget they count.
    size_t bound_bytes = 0;
    for (size_t b = 0; b < ThreadCache::kBins; ++b) {
      bound_bytes += size_t{cache->bins[b].max_count} * DefaultClasses::BlockSize(b);
      EXPECT_LE(cache->bins[b].count.load(), cache->bins[b].max_count) << b;
    }
    EXPECT_EQ(bound_bytes, cache->capacity_bytes);
    EXPECT_LE(cache->capacity_bytes, ThreadCache::kThreadBudget);
  })
      .join();
}

TEST(ThreadCacheTest, MallocOfZeroIsServedFromTheCache) {
  void* p = rulloc_malloc(0);
  ASSERT_NE(p, nullptr);
  rulloc_free(p);
  EXPECT_EQ(rulloc_malloc(0), p);  // the cache's last freed block
  rulloc_free(p);
}

TEST(ThreadCacheTest, BatchesAndBoundsScaleWithBlockSize) {
  using internal::ThreadCache;
  const size_t last = ThreadCache::kBins - 1;
  EXPECT_EQ(ThreadCache::BatchFor(0), 32u);
  EXPECT_EQ(ThreadCache::BatchFor(last), 2u);
  for (size_t b = 0; b < ThreadCache::kBins; ++b) {
    const size_t bytes = ThreadCache::MaxCountFor(b) * internal::DefaultClasses::BlockSize(b);
    EXPECT_LE(bytes, size_t{512} << 10) << b;
  }
}

// One thread allocates, another frees, through a bounded queue: the freeing
// thread's cache must hand the blocks back, so memory stays bounded.
TEST(ThreadCacheTest, ProducerConsumerStaysBounded) {
  constexpr size_t kBatch = 1000;
  const size_t total = size_t{500000} * kScale;  // 5 million blocks in a plain build
  bench::BatchQueue<std::vector<void*>> queue(16);
  // The allocator's own figure: under a sanitizer the process's resident
  // memory also holds the shadow of every page touched.
  const size_t mapped_before = DefaultAllocator().stats().bytes_mapped;

  std::thread consumer([&] {
    std::vector<void*> batch;
    while (queue.Pop(&batch)) {
      for (void* p : batch) rulloc_free(p);
    }
  });
  std::mt19937 rng(7);
  for (size_t made = 0; made < total; made += kBatch) {
    std::vector<void*> batch(kBatch);
    for (void*& p : batch) {
      p = rulloc_malloc(16 + rng() % 512);
      std::memset(p, 1, 16);
    }
    queue.Push(std::move(batch));
  }
  queue.Close();
  consumer.join();
  const size_t mapped_after = DefaultAllocator().stats().bytes_mapped;
  std::printf("producer/consumer: %zu blocks, regions %zu -> %zu MiB\n", total, mapped_before >> 20,
              mapped_after >> 20);
  // Live at most 17 batches of 1000 blocks of <= 528 bytes: ~9 MB.
  EXPECT_LT(mapped_after, mapped_before + (size_t{48} << 20));
  rulloc_thread_cache_flush();
  ExpectNothingInUse();
}

struct Handoff {
  std::mutex mu;
  std::vector<void*> blocks;
};

void ShortLivedWork(Handoff* handoff, unsigned seed) {
  std::mt19937 rng(seed);
  void* mine[64];
  for (void*& p : mine) p = rulloc_malloc(1 + rng() % 4000);
  for (int i = 0; i < 32; ++i) rulloc_free(mine[i]);
  std::lock_guard<std::mutex> hold(handoff->mu);
  for (int i = 32; i < 64; ++i) handoff->blocks.push_back(mine[i]);
}

// Thousands of threads come and go, some made by std::thread and some by
// pthread_create; each leaves blocks in its cache when it exits, and hands
// others to the main thread. Every block must be accounted for.
TEST(ThreadCacheTest, SharedCachesDecayWhileAnotherThreadMakesLargeBlocks) {
  // A thread's blocks wait in the transfer caches after it exits; they go
  // back to their regions once idle for the decay time (1 s), even while
  // another thread's large-block slow paths claim every purge of the heap.
  const size_t bucket = internal::DefaultClasses::BucketFor(1024);
  DrainTransferCaches();
  std::thread([] {
    std::vector<void*> blocks(4000);
    for (void*& p : blocks) p = rulloc_malloc(1024);
    for (void* p : blocks) rulloc_free(p);
  }).join();
  ASSERT_GT(GetBucketCounts(bucket).in_caches, 0u);
  std::atomic<bool> stop{false};
  std::thread large([&] {
    while (!stop.load()) rulloc_free(rulloc_malloc(100000));
  });
  // Small slow paths (refills and flushes), at a server's pace of a round
  // per millisecond, until the blocks have gone back or 10 decay periods
  // have passed. (Before, the large blocks' purges took the intervals, and
  // the blocks stayed.)
  std::vector<void*> small(1000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (GetBucketCounts(bucket).in_caches != 0 && std::chrono::steady_clock::now() < deadline) {
    for (void*& p : small) p = rulloc_malloc(64);
    for (void* p : small) rulloc_free(p);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  large.join();
  EXPECT_EQ(GetBucketCounts(bucket).in_caches, 0u);
}

TEST(ThreadCacheTest, ShortLivedThreadsLoseNothing) {
  Handoff handoff;
  const int rounds = 40 * kScale;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 5; ++t) threads.emplace_back(ShortLivedWork, &handoff, round * 10 + t);
    pthread_t raw[5];
    for (int t = 0; t < 5; ++t) {
      auto start = [](void* arg) -> void* {
        ShortLivedWork(static_cast<Handoff*>(arg), 99);
        return nullptr;
      };
      ASSERT_EQ(pthread_create(&raw[t], nullptr, start, &handoff), 0);
    }
    for (auto& t : threads) t.join();
    for (pthread_t t : raw) pthread_join(t, nullptr);
  }
  EXPECT_EQ(handoff.blocks.size(), size_t(rounds) * 10 * 32);
  for (void* p : handoff.blocks) rulloc_free(p);  // frees of blocks of exited threads
  rulloc_thread_cache_flush();
  const ProcessStats stats = GetProcessStats();
  EXPECT_EQ(stats.blocks_in_caches, 0u);
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_LE(stats.threads_with_cache, 1u);  // only the main thread's
  ExpectNothingInUse();
}

// A thread-specific-data destructor that runs after the cache's own
// teardown still allocates and frees, uncached, and loses nothing.
TEST(ThreadCacheTest, TrimGivesBackTheSlotPagesOfExitedThreadsCaches) {
  // Threads that fill every bin touch all their slots; their caches wait
  // for the next threads once they exit. A trim gives those pages back.
  constexpr int kThreads = 8;
  std::vector<const internal::ThreadCache*> caches(kThreads);
  std::vector<std::thread> threads;
  std::barrier all_filled(kThreads);  // (so that no thread reuses another's cache)
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
        std::vector<void*> blocks;
        for (uint32_t i = 0; i < internal::ThreadCache::MaxCountFor(b); ++i) {
          blocks.push_back(rulloc_malloc(internal::DefaultClasses::BlockSize(b)));
        }
        for (void* p : blocks) rulloc_free(p);
      }
      caches[t] = internal::tls_cache;
      all_filled.arrive_and_wait();
    });
  }
  for (std::thread& t : threads) t.join();
  const size_t page = platform::PageSize();
  // A page of slots in the middle of the cache's mapping.
  const auto slots_page = [&](const internal::ThreadCache* cache) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(cache) + (16 << 10);
    return reinterpret_cast<void*>(at & ~(page - 1));
  };
  const auto resident = [&](const internal::ThreadCache* cache) {
    unsigned char in_core = 0;
    EXPECT_EQ(mincore(slots_page(cache), page, &in_core), 0);
    return (in_core & 1) != 0;
  };
  for (const internal::ThreadCache* cache : caches) ASSERT_TRUE(resident(cache));
  rulloc_trim();
  for (const internal::ThreadCache* cache : caches) EXPECT_FALSE(resident(cache));
  // A thread that takes a retired cache again works as before.
  std::thread([] {
    std::vector<void*> blocks;
    for (int i = 0; i < 5000; ++i) blocks.push_back(rulloc_malloc(48));
    for (void* p : blocks) rulloc_free(p);
  }).join();
}

TEST(ThreadCacheTest, AllocationAfterThreadTeardown) {
  static pthread_key_t late_key;
  ASSERT_EQ(pthread_key_create(&late_key,
                               [](void* p) {
                                 rulloc_free(p);
                                 void* q = rulloc_malloc(77);
                                 rulloc_free(q);
                               }),
            0);
  std::thread t([] {
    void* p = rulloc_malloc(10);
    pthread_setspecific(late_key, rulloc_malloc(20));
    rulloc_free(p);
  });
  t.join();
  pthread_key_delete(late_key);
  rulloc_thread_cache_flush();
  EXPECT_EQ(GetProcessStats().blocks_in_use, 0u);
}

}  // namespace
}  // namespace rulloc
