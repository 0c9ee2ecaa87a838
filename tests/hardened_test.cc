// Hardened mode: guard pages, zero on free, random block order. The mode is
// switched on before main(), as the malloc shim does from RULLOC_HARDENED.
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/c_api.h"
#include "core/huge.h"
#include "core/page_map.h"
#include "core/runtime_options.h"
#include "core/small_bucket.h"
#include "gtest/gtest.h"
#include "platform/pages.h"

namespace rulloc {
namespace {

const bool hardened_on = [] { return runtime_options.hardened = true; }();

TEST(HardenedTest, GuardPageAfterSmallRegionMetadata) {
  ASSERT_TRUE(hardened_on);
  auto* p = static_cast<char*>(rulloc_malloc(48));
  auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
  ASSERT_NE(region, nullptr);
  char* first = reinterpret_cast<char*>(region) + region->layout.first_offset;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % platform::PageSize(), 0u);
  // The byte before block 0 is a guard: an underflow there faults.
  EXPECT_DEATH(*reinterpret_cast<volatile char*>(first - 1) = 1, "");
  // So is the last page of the region: the next region's header is safe.
  char* end = reinterpret_cast<char*>(region) + region->header.size;
  EXPECT_DEATH(*reinterpret_cast<volatile char*>(end - 1) = 1, "");
  rulloc_free(p);
}

TEST(HardenedTest, FreeOrReallocOfAGuardPageAddressIsReported) {
  // Reported, not a fault: nothing reads the memory of a pointer that is
  // not a block handed out (the guard before block 0 starts a page).
  auto* p = static_cast<char*>(rulloc_malloc(48));
  auto* region = reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(p));
  char* guard =
      reinterpret_cast<char*>(region) + region->layout.first_offset - platform::PageSize();
  EXPECT_DEATH(rulloc_free(guard), "^rulloc: free of a pointer");
  EXPECT_DEATH(DefaultAllocator().deallocate(guard), "^rulloc: free of a pointer");
  // realloc too: it looks for a cached block's mark only at a block start.
  EXPECT_DEATH(rulloc_realloc(guard, 100), "^rulloc: realloc of an invalid pointer");
  char* end = reinterpret_cast<char*>(region) + region->header.size;  // after the end guard
  EXPECT_DEATH(rulloc_realloc(end - 4, 100), "^rulloc: realloc of an invalid pointer");
  EXPECT_DEATH(rulloc_realloc(p + 1, 100), "^rulloc: realloc of an invalid pointer");
  rulloc_free(p);
}

// Emptied regions of one size class, with guard pages where that class's
// layout puts them, must not lend their address space to another class
// (here, 512 KiB regions over two former 256 KiB ones, whose end guard
// would fall inside): every byte of the new blocks must be writable.
TEST(HardenedTest, RegionsOfAnotherClassNeverInheritGuardPages) {
  Allocator a;
  std::vector<void*> blocks;
  for (int i = 0; i < 120000; ++i) blocks.push_back(a.allocate(16));
  for (void* p : blocks) a.deallocate(p);
  blocks.clear();
  a.heap().Purge(1);  // returned regions go back, as in decay (trim would unmap them)
  for (int i = 0; i < 200; ++i) {
    auto* p = static_cast<char*>(a.allocate(20000));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x3c, 20000);
    blocks.push_back(p);
  }
  for (void* p : blocks) a.deallocate(p);
}

TEST(HardenedTest, LargeBlocksEndAgainstAGuardPage) {
  for (size_t size : {size_t{40000}, size_t{100000}, size_t{1} << 20, size_t{3} << 20}) {
    auto* p = static_cast<char*>(rulloc_malloc(size));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, size);
    EXPECT_LT(rulloc_usable_size(p) - size, 16u);
    EXPECT_DEATH(p[size + 16] = 1, "") << size;  // overflow
    // The page after the mapping's header is a guard too.
    char* base = reinterpret_cast<char*>(internal::PageMap::Lookup(p));
    const size_t page = platform::PageSize();
    char* guard = base + (sizeof(internal::HugeRegion) + page - 1) / page * page;
    EXPECT_LT(guard, p);
    EXPECT_DEATH(*reinterpret_cast<volatile char*>(guard + page - 1) = 1, "") << size;
    rulloc_free(p);
  }
  auto* aligned = static_cast<char*>(rulloc_aligned_alloc(4096, 50000));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(aligned) % 4096, 0u);
  std::memset(aligned, 1, 50000);
  rulloc_free(aligned);
}

// A block above the small sizes is a mapping of its own; realloc keeps it
// when the new size still fits without wasting more than half, instead of
// mapping, copying and unmapping.
TEST(HardenedTest, ReallocKeepsABlockThatStillFits) {
  auto* p = static_cast<char*>(rulloc_malloc(100000));
  ASSERT_NE(p, nullptr);
  std::memset(p, 7, 100000);
  EXPECT_EQ(rulloc_realloc(p, 90000), p);
  EXPECT_EQ(rulloc_realloc(p, 100000), p);
  auto* moved = static_cast<char*>(rulloc_realloc(p, 30000));  // less than half: moves
  ASSERT_NE(moved, nullptr);
  EXPECT_EQ(moved[29999], 7);
  rulloc_free(moved);
}

TEST(HardenedTest, DoubleFreeAcrossTheCApiAndTheObjectApi) {
  // Freed into the thread cache, then freed through the process instance:
  // found before hardened mode zeroes the block (which erases its mark).
  void* p = rulloc_malloc(5000);
  rulloc_free(p);
  EXPECT_DEATH(DefaultAllocator().deallocate(p), "^rulloc: double free: 0x");
}

TEST(HardenedTest, LargeUseAfterFreeFaults) {
  auto* p = static_cast<volatile char*>(rulloc_malloc(200000));
  p[0] = 1;
  rulloc_free(const_cast<char*>(p));
  EXPECT_DEATH(p[100] = 1, "");
}

TEST(HardenedTest, FreedBlocksAreZeroed) {
  auto* p = static_cast<unsigned char*>(rulloc_malloc(200));
  std::memset(p, 0xab, 200);
  rulloc_free(p);
  // Words 0 and 1 hold the cache's list link; the user's bytes are gone.
  for (size_t i = 16; i < 200; ++i) ASSERT_EQ(p[i], 0) << i;
  void* again = rulloc_malloc(200);
  rulloc_free(again);
}

TEST(HardenedTest, BlockOrderIsRandom) {
  std::thread([] {  // a fresh thread cache
    std::vector<uintptr_t> addresses;
    for (int i = 0; i < 64; ++i)
      addresses.push_back(reinterpret_cast<uintptr_t>(rulloc_malloc(80)));
    size_t ascending = 0, descending = 0;
    for (size_t i = 1; i < addresses.size(); ++i) {
      ascending += addresses[i] > addresses[i - 1];
      descending += addresses[i] < addresses[i - 1];
    }
    EXPECT_GT(ascending, 10u);
    EXPECT_GT(descending, 10u);
    EXPECT_EQ(std::set<uintptr_t>(addresses.begin(), addresses.end()).size(), addresses.size());
    for (uintptr_t a : addresses) rulloc_free(reinterpret_cast<void*>(a));
  })
      .join();
}

TEST(HardenedTest, AThreadOnAReusedCacheDoesNotReplayTheRandomOrder) {
  // Each thread's first refill, on the cache the last thread left.
  auto first_refill = [](const internal::ThreadCache** cache, uint64_t* state) {
    std::thread([=] {
      rulloc_free(rulloc_malloc(80));
      *cache = internal::tls_cache;
      *state = internal::tls_cache->shuffle_state;
    }).join();
  };
  const internal::ThreadCache *first_cache, *second_cache;
  uint64_t first_state, second_state;
  first_refill(&first_cache, &first_state);
  first_refill(&second_cache, &second_state);
  ASSERT_EQ(first_cache, second_cache);  // retired, then reused
  EXPECT_NE(first_state, second_state);
}

TEST(HardenedTest, ManyThreadsStillRoundTrip) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
      std::vector<std::pair<unsigned char*, size_t>> live;
      for (int i = 0; i < 20000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (!live.empty() && x % 3 == 0) {
          auto [p, n] = live[x % live.size()];
          for (size_t k = 0; k < n; k += 7) ASSERT_EQ(p[k], static_cast<unsigned char>(n));
          rulloc_free(p);
          live[x % live.size()] = live.back();
          live.pop_back();
        } else {
          const size_t n = x % 16 == 0 ? 40000 + x % 100000 : 1 + x % 2000;
          auto* p = static_cast<unsigned char*>(rulloc_malloc(n));
          std::memset(p, static_cast<int>(n), n);
          live.emplace_back(p, n);
        }
      }
      for (auto [p, n] : live) rulloc_free(p);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace rulloc
