// Heap misuse is reported with one line on stderr, then abort.
#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/c_api.h"
#include "core/large_bucket.h"
#include "core/page_map.h"
#include "core/small_bucket.h"
#include "gtest/gtest.h"

namespace rulloc {
namespace {

using MisuseDeathTest = ::testing::Test;

TEST(MisuseDeathTest, DoubleFreeOfASmallBlock) {
  Allocator a;
  void* p = a.allocate(32);
  a.deallocate(p);
  EXPECT_DEATH(a.deallocate(p), "^rulloc: double free: 0x[0-9a-f]+\n$");
}

TEST(MisuseDeathTest, DoubleFreeOfALargeBlock) {
  Allocator a;
  void* p = a.allocate(100000);
  void* pin = a.allocate(100000);
  a.deallocate(p);
  EXPECT_DEATH(a.deallocate(p), "rulloc: double free: 0x");
  a.deallocate(pin);
}

TEST(MisuseDeathTest, DoubleFreeOfALargeBlockMergedIntoItsFreeNeighbour) {
  // Freed in address order, each block merges into the free one before it:
  // its header is gone, a second free of it is still named a double free.
  Allocator a;
  void* first = a.allocate(100000);
  void* second = a.allocate(100000);
  void* pin = a.allocate(100000);
  a.deallocate(first);
  a.deallocate(second);
  EXPECT_DEATH(a.deallocate(second), "^rulloc: double free: 0x");
  // So is an over-aligned block's, whose shadow header its free retired.
  void* aligned = a.allocate(100000, 4096);
  a.deallocate(aligned);
  EXPECT_DEATH(a.deallocate(aligned), "^rulloc: double free: 0x");
  a.deallocate(pin);
}

TEST(MisuseDeathTest, AnOverflowIntoTheNextLargeBlocksHeaderIsReported) {
  // An overflow past a large block's usable end writes the next block's
  // boundary tag: its size (the merge would take in a live block) or its
  // prev_size (the merge would follow it out of the region). The next
  // free that reads the tag reports it.
  using Words = uint64_t[4];  // prev_size, size and flags, check, offset
  EXPECT_DEATH(
      {
        Allocator a;
        void* pin = a.allocate(100000);
        auto* before = static_cast<char*>(a.allocate(100000));
        void* freed = a.allocate(100000);
        void* live = a.allocate(100000);
        a.deallocate(freed);
        auto& header = *reinterpret_cast<Words*>(before + a.usable_size(before));
        header[1] += 0x40000;
        a.deallocate(before);
        a.deallocate(live);
        a.deallocate(pin);
      },
      "^rulloc: corrupted block header \\(overflow from the block before it\\?\\): 0x");
  EXPECT_DEATH(
      {
        Allocator a;
        void* pin = a.allocate(100000);
        auto* before = static_cast<char*>(a.allocate(100000));
        void* after = a.allocate(100000);
        auto& header = *reinterpret_cast<Words*>(before + a.usable_size(before));
        header[0] = 0x4141414141414140;
        a.deallocate(after);
        a.deallocate(before);
        a.deallocate(pin);
      },
      "^rulloc: corrupted block header");
}

TEST(MisuseDeathTest, DoubleFreeOfAHugeBlock) {
  Allocator a;
  void* p = a.allocate(size_t{8} << 20);
  a.deallocate(p);  // the mapping waits in the huge cache
  EXPECT_DEATH(a.deallocate(p), "^rulloc: double free: 0x[0-9a-f]+\n$");
}

TEST(MisuseDeathTest, DoubleFreeOfAHugeBlockAfterItsMappingWentBack) {
  Allocator a;
  void* p = a.allocate(size_t{8} << 20);
  a.deallocate(p);
  a.trim();  // unmaps the cached mapping
  EXPECT_DEATH(a.deallocate(p), "rulloc: free of a pointer not allocated by rulloc: 0x");
}

TEST(MisuseDeathTest, FreeOfAStackAddress) {
  Allocator a;
  int local = 0;
  EXPECT_DEATH(a.deallocate(&local), "rulloc: free of a pointer not allocated by rulloc: 0x");
}

TEST(MisuseDeathTest, FreeOfAnotherAllocatorsMemory) {
  void* foreign = std::malloc(64);
  EXPECT_DEATH(rulloc_free(foreign), "rulloc: free of a pointer not allocated by rulloc: 0x");
  std::free(foreign);
}

TEST(MisuseDeathTest, FreeOfAnInteriorPointer) {
  Allocator a;
  auto* small = static_cast<char*>(a.allocate(64));
  auto* large = static_cast<char*>(a.allocate(100000));
  auto* huge = static_cast<char*>(a.allocate(size_t{8} << 20));
  EXPECT_DEATH(a.deallocate(small + 16), "rulloc: free of a pointer into the middle of a block");
  EXPECT_DEATH(a.deallocate(large + 4096), "rulloc: free of an invalid pointer");
  EXPECT_DEATH(a.deallocate(huge + 16), "rulloc: free of a pointer into the middle of a block");
  a.deallocate(small);
  a.deallocate(large);
  a.deallocate(huge);
}

TEST(MisuseDeathTest, FreeThroughTheWrongInstance) {
  Allocator a;
  Allocator b;
  void* p = a.allocate(64);
  EXPECT_DEATH(b.deallocate(p), "rulloc: pointer belongs to another rulloc allocator instance");
  a.deallocate(p);
}

// The whole line, so that it must name the block at fault, not another of
// its batch.
std::string MisuseLine(const char* fault, const void* p) {
  char line[128];
  std::snprintf(line, sizeof(line), "^rulloc: %s: 0x%016" PRIxPTR "\n$", fault,
                reinterpret_cast<uintptr_t>(p));
  return line;
}

TEST(MisuseDeathTest, DoubleFreeWithinOneBatchOfABucket) {
  Allocator a;
  internal::SmallBucket& bucket = a.heap().SmallBucketFor(64);
  void* b[4];
  ASSERT_EQ(bucket.AllocateBatch(b, 4), 4u);
  void* twice[] = {b[0], b[1], b[0]};
  EXPECT_DEATH(bucket.FreeBatch(twice, 3), MisuseLine("double free", b[0]));
  // In the next run of the region, after another region's block.
  std::vector<void*> other;
  void* more[64];
  do {
    const size_t n = bucket.AllocateBatch(more, 64);
    ASSERT_GT(n, 0u);
    other.insert(other.end(), more, more + n);
  } while (internal::PageMap::Lookup(other.back()) == internal::PageMap::Lookup(b[0]));
  void* across[] = {b[1], other.back(), b[1]};
  EXPECT_DEATH(bucket.FreeBatch(across, 3), MisuseLine("double free", b[1]));
  // A block of another bucket, after a run of this one's.
  internal::SmallBucket& bigger = a.heap().SmallBucketFor(2048);
  void* foreign;
  ASSERT_EQ(bigger.AllocateBatch(&foreign, 1), 1u);
  void* mixed[] = {b[2], b[3], foreign};
  EXPECT_DEATH(bucket.FreeBatch(mixed, 3),
               MisuseLine("free of a block into the wrong bucket", foreign));
  bigger.FreeBatch(&foreign, 1);
  bucket.FreeBatch(other.data(), other.size());
  bucket.FreeBatch(b, 4);
}

// 80 classes, where the process instance's thread caches have 40 bins: the
// C API's checks must not take another instance's bucket index for theirs.
struct ManyBuckets {
  static constexpr auto kSizes = internal::GeometricSizes<64 * 1024, 8>();
};

TEST(MisuseDeathTest, ReallocThroughTheCApiOfAnotherInstancesBlock) {
  BasicAllocator<ManyBuckets> a;
  void* p = a.allocate(60 * 1024);  // bucket 78
  EXPECT_DEATH(rulloc_realloc(p, 100),
               "^rulloc: pointer belongs to another rulloc allocator instance");
  a.deallocate(p);
}

TEST(MisuseDeathTest, FreeOfANeverHandedOutBlock) {
  Allocator a;
  auto* p = static_cast<char*>(a.allocate(64));
  // The next block of the same region has not been carved yet.
  EXPECT_DEATH(a.deallocate(p + 64 * 100), "rulloc: free of a pointer not allocated by rulloc");
  a.deallocate(p);
}

TEST(MisuseDeathTest, ReallocOfAFreedLargeBlock) {
  Allocator a;
  void* p = a.allocate(100000);
  void* pin = a.allocate(100000);
  a.deallocate(p);
  EXPECT_DEATH(a.reallocate(p, 200000), "rulloc: ");
  a.deallocate(pin);
}

TEST(MisuseDeathTest, DoubleFreeThroughTheThreadCache) {
  // The block sits in the calling thread's cache after the first free.
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
  // Other frees in between, so the block is no longer at the head of its bin.
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        void* volatile q = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(q);
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
  // A malloc in between takes the newest block, so the freed one is the
  // bin's top again: the mark the newer block's free gave it still shows.
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        void* volatile q = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(q);
        void* volatile again = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(again);
      },
      "rulloc: double free: 0x");
  // A free into an empty bin marks the sentinel top, the cache's scratch
  // word. (A thread's cache may be one a test's exited thread left; its
  // sentinel was written then.)
  EXPECT_DEATH(std::thread([] {
                 void* volatile p = rulloc_malloc(40);
                 rulloc_thread_cache_flush();  // the bin is empty again
                 rulloc_free(p);
                 rulloc_free(p);
               }).join(),
               "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, DoubleFreeAfterTheBlockLeftTheThreadCache) {
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_thread_cache_flush();  // back in its region
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, DoubleFreeOfABlockARefillTookBackIntoTheCache) {
  // Blocks that go back to their region with no free mark (realloc moves
  // them out of the small classes straight to their bucket; a trim gives
  // back the pages of free blocks, marks and all) and come into the cache
  // again with a refill: a second free of one is still caught.
  EXPECT_DEATH(
      {
        rulloc_thread_cache_flush();
        void* a = rulloc_malloc(100);
        void* volatile p = rulloc_malloc(100);
        void* a2 = rulloc_realloc(a, 40000);  // straight to the bucket
        void* p2 = rulloc_realloc(p, 40000);
        rulloc_thread_cache_flush();
        void* taken = rulloc_malloc(100);  // a refill: one handed out, the rest wait
        ASSERT_NE(taken, p);
        rulloc_free(p);
        rulloc_free(a2);
        rulloc_free(p2);
      },
      "rulloc: double free: 0x");
  EXPECT_DEATH(
      {
        rulloc_thread_cache_flush();
        std::vector<void*> blocks;
        for (int i = 0; i < 200; ++i) blocks.push_back(rulloc_malloc(1000));
        void* volatile p = blocks[8];
        // One block of p's region stays, so that the trim keeps the region
        // (refills on two CPUs take blocks of two arenas' regions).
        const auto* region = internal::PageMap::Lookup(p);
        void* kept = nullptr;
        for (void* b : blocks) {
          if (b == p || kept != nullptr || internal::PageMap::Lookup(b) != region) {
            rulloc_free(b);
          } else {
            kept = b;
          }
        }
        ASSERT_NE(kept, nullptr);
        rulloc_trim();  // the free blocks' pages go back: zero, with no mark
        void* taken = rulloc_malloc(1000);
        ASSERT_NE(taken, p);
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, DoubleFreeOfAStalePointerIntoARegionCutAgainAtItsAddress) {
  // The blocks' regions empty and go (trim); a new region of the class is
  // cut at the same address, and a refill puts its new blocks in the
  // cache. A second free of a stale pointer that names one of them is
  // still caught.
  EXPECT_DEATH(
      {
        constexpr size_t kSize = 2500;
        std::vector<void*> old(20000);
        for (void*& p : old) p = rulloc_malloc(kSize);
        for (void* p : old) rulloc_free(p);
        rulloc_trim();
        void* taken = rulloc_malloc(kSize);  // the first block of a refill
        const auto at = std::find(old.begin(), old.end() - 1, taken);
        ASSERT_NE(at, old.end() - 1) << "no new block at an old address";
        rulloc_free(*(at + 1));  // the next one, in the bin
      },
      "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, WriteAfterFreeIntoACachedBlockCannotRedirectAllocations) {
  std::vector<void*> live;
  for (int i = 0; i < 8; ++i) live.push_back(rulloc_malloc(48));
  auto* p = static_cast<uint64_t*>(live[0]);
  rulloc_free(p);
  std::memset(p, 0x41, 48);  // a dangling write: bins keep pointers, not links
  EXPECT_EQ(rulloc_malloc(48), p);
  for (int i = 0; i < 64; ++i) {
    void* next = rulloc_malloc(48);
    EXPECT_TRUE(std::find(live.begin(), live.end(), next) == live.end());
    EXPECT_NE(reinterpret_cast<uintptr_t>(next), 0x4141414141414141u);
    live.push_back(next);
  }
  for (void* q : live) rulloc_free(q);
}

TEST(MisuseDeathTest, WriteAfterFreeIntoARegionFreeBlockCannotRedirectAllocations) {
  Allocator a;  // no thread cache: the block goes back to its region
  void* p = a.allocate(64);
  void* q = a.allocate(64);
  a.deallocate(p);
  std::memset(p, 0x41, 64);  // regions keep no metadata in free blocks
  EXPECT_EQ(a.allocate(64), p);
  void* next = a.allocate(64);
  EXPECT_TRUE(a.owns(next));
  EXPECT_NE(next, q);
}

TEST(MisuseDeathTest, WriteAfterFreeIntoALargeFreeBlockIsCaughtAtTheNextAllocation) {
  EXPECT_DEATH(
      {
        Allocator a;
        void* p = a.allocate(100000);
        a.allocate(100000);  // keeps p's block from merging with the rest
        a.deallocate(p);
        std::memset(p, 0x41, 64);  // over the free block's links
        // The same size takes p's block back, whose links are checked.
        a.allocate(100000);
      },
      "^rulloc: corrupted free block \\(written after free\\?\\): 0x");
}

TEST(MisuseDeathTest, DoubleFreeAcrossTheCApiAndTheObjectApi) {
  // Freed into the thread cache by the C API, then freed (or reallocated)
  // through the process instance's object API, which goes to the heap.
  void* p = rulloc_malloc(5000);
  rulloc_free(p);
  EXPECT_DEATH(DefaultAllocator().deallocate(p), "^rulloc: double free: 0x");
  EXPECT_DEATH(DefaultAllocator().reallocate(p, 20000), "^rulloc: realloc of a freed pointer: 0x");
  EXPECT_DEATH(DefaultAllocator().deallocate(p, 5000), "^rulloc: double free: 0x");
}

TEST(MisuseDeathTest, ObjectSizedDeallocateWithAWrongSize) {
  Allocator a;
  void* small = a.allocate(100);
  EXPECT_DEATH(a.deallocate(small, 8), "^rulloc: free with a wrong size: 0x");
  EXPECT_DEATH(a.deallocate(small, 4000), "^rulloc: free with a wrong size: 0x");
  a.deallocate(small, 100);
  void* large = a.allocate(200000);
  EXPECT_DEATH(a.deallocate(large, 1000), "^rulloc: free with a wrong size: 0x");
  a.deallocate(large, 200000);
}

TEST(MisuseDeathTest, SizedFreeWithAWrongSize) {
  void* small = rulloc_malloc(100);
  EXPECT_DEATH(rulloc_free_sized(small, 8), "^rulloc: free with a wrong size: 0x[0-9a-f]+\n$");
  EXPECT_DEATH(rulloc_free_sized(small, 4000), "^rulloc: free with a wrong size: 0x");
  rulloc_free_sized(small, 100);
  void* large = rulloc_malloc(200000);
  EXPECT_DEATH(rulloc_free_sized(large, 1000), "^rulloc: free with a wrong size: 0x");
  EXPECT_DEATH(rulloc_free_sized(large, 300000), "^rulloc: free with a wrong size: 0x");
  rulloc_free_sized(large, 200000);
  void* huge = rulloc_malloc(size_t{6} << 20);
  EXPECT_DEATH(rulloc_free_sized(huge, 64), "^rulloc: free with a wrong size: 0x");
  rulloc_free_sized(huge, size_t{6} << 20);
  void* aligned = rulloc_aligned_alloc(256, 24);
  EXPECT_DEATH(rulloc_free_aligned_sized(aligned, 256, 5000),
               "^rulloc: free with a wrong size: 0x");
  rulloc_free_aligned_sized(aligned, 256, 24);
}

TEST(MisuseDeathTest, SizedFreeOfAFreedBlockNamesTheFault) {
  void* large = rulloc_malloc(200000);
  void* pin = rulloc_malloc(200000);
  rulloc_free(large);
  EXPECT_DEATH(rulloc_free_sized(large, 200000), "^rulloc: double free: 0x");
  int local = 0;
  EXPECT_DEATH(rulloc_free_sized(&local, sizeof(local)),
               "^rulloc: free of a pointer not allocated by rulloc: 0x");
  rulloc_free(pin);
}

TEST(MisuseDeathTest, SizedFreeAcceptsEverySizeThatMapsToTheBlock) {
  for (size_t size = 1; size <= 40000; size += size < 512 ? 1 : 97) {
    rulloc_free_sized(rulloc_malloc(size), size);
    void* shrunk = rulloc_realloc(rulloc_malloc(size), size / 2 + 1);  // may stay in place
    rulloc_free_sized(shrunk, size / 2 + 1);
  }
}

TEST(MisuseDeathTest, ReallocOfAFreedSmallBlock) {
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(200);
        rulloc_free(p);  // in this thread's cache
        rulloc_realloc(p, 100);
      },
      "^rulloc: realloc of a freed pointer: 0x[0-9a-f]+\n$");
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(200);
        rulloc_free(p);
        rulloc_thread_cache_flush();
        rulloc::DrainTransferCaches();  // back in its region
        rulloc_realloc(p, 300);
      },
      "^rulloc: realloc of a freed pointer: 0x");
}

// The C entry point hands a large block's region to the heap: an interior
// pointer, a freed block and another instance's block are still reported.
// (A large bucket keeps one emptied region mapped: the freed block's
// header is still there to read.)
TEST(MisuseDeathTest, ReallocThroughTheCApiOfABadLargePointer) {
  void* kept = rulloc_malloc(100000);
  auto* p = static_cast<char*>(rulloc_malloc(100000));
  EXPECT_DEATH(rulloc_realloc(p + 16, 200000),
               "^rulloc: realloc of an invalid or freed pointer: 0x");
  rulloc_free(p);
  EXPECT_DEATH(rulloc_realloc(p, 200000), "^rulloc: realloc of an invalid or freed pointer: 0x");
  Allocator other;
  void* theirs = other.allocate(100000);
  EXPECT_DEATH(rulloc_realloc(theirs, 200000),
               "^rulloc: pointer belongs to another rulloc allocator instance");
  other.deallocate(theirs);
  rulloc_free(kept);
}

TEST(MisuseDeathTest, ReallocOfAFreedHugeBlock) {
  void* p = rulloc_malloc(size_t{5} << 20);
  rulloc_free(p);  // cached mapping
  EXPECT_DEATH(rulloc_realloc(p, size_t{6} << 20), "^rulloc: realloc of a freed pointer: 0x");
}

TEST(MisuseDeathTest, InteriorPointerOfAnOverAlignedBlock) {
  Allocator a;
  // Served from a bigger block at an offset: only the aligned pointer is valid.
  auto* p = static_cast<char*>(a.allocate(100, 64));
  EXPECT_DEATH(a.deallocate(p + 48), "rulloc: free of a pointer into the middle of a block");
  a.deallocate(p);
}

TEST(MisuseDeathTest, StartOfTheBlockOfAnOverAlignedAllocation) {
  // aligned_alloc(64, 48) takes a 96-byte block; when the block does not
  // start 64-aligned, the pointer handed out lies inside it, and the
  // block's own start was never handed out. Through the process allocator,
  // whose page map no longer tags the region for the fast path.
  std::vector<void*> blocks;
  void* inside = nullptr;
  for (int i = 0; i < 16 && inside == nullptr; ++i) {
    void* p = rulloc_aligned_alloc(64, 48);
    blocks.push_back(p);
    auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
    if (region->BlockStart(p) != p) inside = p;
  }
  ASSERT_NE(inside, nullptr);
  auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(inside));
  void* start = region->BlockStart(inside);
  EXPECT_DEATH(rulloc_free(start), "^rulloc: free of a pointer into the middle of a block: 0x");
  for (void* p : blocks) rulloc_free(p);
}

TEST(MisuseDeathTest, DoubleFreeOfAnOverAlignedBlockHandedOutInsideItsBlock) {
  // The same 64-aligned pointer inside its block, freed twice: the first
  // free cleared its aligned bit, its offset word names it still.
  std::vector<void*> blocks;
  void* inside = nullptr;
  for (int i = 0; i < 16 && inside == nullptr; ++i) {
    void* p = rulloc_aligned_alloc(64, 48);
    auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
    if (region->BlockStart(p) != p) {
      inside = p;
    } else {
      blocks.push_back(p);
    }
  }
  ASSERT_NE(inside, nullptr);
  EXPECT_DEATH(
      {
        rulloc_free(inside);
        rulloc_free(inside);
      },
      "^rulloc: double free: 0x");
  rulloc_free(inside);
  for (void* p : blocks) rulloc_free(p);
}

TEST(MisuseDeathTest, StartOfTheBlockOfAnOverAlignedLargeAllocation) {
  // A large block whose payload is not 4096-aligned hands out a pointer
  // past a shadow header; the block's own payload was never handed out.
  Allocator a;
  void* pin = a.allocate(40000);
  void* p = a.allocate(40000, 4096);
  const internal::LargeBlock* shadow = internal::LargeBlock::FromPayload(p);
  ASSERT_TRUE(shadow->size_flags & internal::LargeBlock::kShadow);
  void* start = static_cast<char*>(p) - shadow->offset;
  EXPECT_DEATH(a.deallocate(start), "^rulloc: free of an invalid pointer");
  EXPECT_DEATH(a.reallocate(start, 50000), "^rulloc: ");
  a.deallocate(p);
  a.deallocate(pin);
}

TEST(MisuseDeathTest, OtherAlignedPointerInsideAnOverAlignedBlock) {
  // A block handed out 64-aligned at an offset also holds addresses that a
  // larger alignment would have given: those were never handed out.
  Allocator a;
  std::vector<void*> blocks;
  char* p = nullptr;
  char* other = nullptr;
  for (int i = 0; i < 64 && other == nullptr; ++i) {
    p = static_cast<char*>(a.allocate(100, 64));
    blocks.push_back(p);
    auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
    const uintptr_t start = reinterpret_cast<uintptr_t>(region->BlockStart(p));
    if (start == reinterpret_cast<uintptr_t>(p)) continue;  // handed out at its start
    const uintptr_t end = start + region->layout.block_size;
    for (uintptr_t q = reinterpret_cast<uintptr_t>(p) + 16; q < end && other == nullptr; q += 16) {
      if (q - start < (q & (~q + 1)))
        other = reinterpret_cast<char*>(q);  // AlignUp(start, lowbit(q))
    }
  }
  ASSERT_NE(other, nullptr);
  EXPECT_DEATH(a.deallocate(other), "rulloc: free of a pointer into the middle of a block");
  EXPECT_DEATH(a.reallocate(other, 200), "rulloc: ");
  for (void* b : blocks) a.deallocate(b);
}

TEST(MisuseDeathTest, DoubleFreeOfACachedBlockInARegionWithOverAlignedBlocks) {
  // The block is cached; then its region hands out an over-aligned block,
  // which takes its frees off the fast path. The second free is still
  // caught, not given to the region while the block sits in the cache.
  FlushThreadCache();
  DrainTransferCaches();
  void* p = rulloc_malloc(48);  // from a refill: its region is the bucket's current one
  rulloc_free(p);
  auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
  std::vector<void*> aligned;
  for (int i = 0; i < 64 && !region->has_aligned.load(); ++i) {
    aligned.push_back(region->bucket->AllocateAligned(32));
  }
  ASSERT_TRUE(region->has_aligned.load());
  EXPECT_DEATH(rulloc_free(p), "^rulloc: double free: 0x");
  for (void* b : aligned) rulloc_free(b);
}

TEST(MisuseDeathTest, SecondFreeOfAnOverAlignedLargeBlockAfterReuse) {
  Allocator a;
  void* pin = a.allocate(40000);
  void* p = a.allocate(40000, 4096);
  a.deallocate(p);
  void* q = a.allocate(40000);  // may reuse p's block
  EXPECT_DEATH(a.deallocate(p), "rulloc: ");
  a.deallocate(q);
  a.deallocate(pin);
}

}  // namespace
}  // namespace rulloc
