// RULLOC_BATCHED_DECOMMIT=0 and RULLOC_POPULATE_PAGES=0 (set for this test
// in BUILD.bazel) reach the page layer at start-up: pages go back one
// madvise per range, and still go back; blocks' pages fault in on touch,
// none is made resident ahead. The binary's allocator is Rulloc.
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {

TEST(PageCallsOffTest, TheVariableTurnsBatchesOffAndPagesStillGoBack) {
  ASSERT_STREQ(getenv("RULLOC_BATCHED_DECOMMIT"), "0");
  EXPECT_FALSE(rulloc::platform::BatchedDecommitInUse());
  // 64 MiB of small blocks, freed and trimmed: their regions go back
  // through the carver's batches.
  malloc_trim(0);
  const size_t start = rulloc::platform::ResidentBytes();
  std::vector<void*> blocks;
  for (size_t i = 0; i < (size_t{64} << 20) / 256; ++i) {
    blocks.push_back(malloc(256));
    std::memset(blocks.back(), 0x5a, 256);
  }
  const size_t peak = rulloc::platform::ResidentBytes();
  EXPECT_GT(peak, start + (size_t{48} << 20));
  for (void* p : blocks) free(p);
  std::vector<void*>().swap(blocks);
  malloc_trim(0);
  EXPECT_LT(rulloc::platform::ResidentBytes(), start + (size_t{16} << 20));
}

TEST(PageCallsOffTest, TheVariableTurnsPopulateOffAndBlocksFaultInOnTouch) {
  ASSERT_STREQ(getenv("RULLOC_POPULATE_PAGES"), "0");
  EXPECT_FALSE(rulloc::platform::PopulateInUse());
  // 16 MiB of 8 KiB blocks, never written: with populate on, every page of
  // them past the bucket's first mebibyte would be resident.
  const uintptr_t page = rulloc::platform::PageSize();
  std::vector<void*> blocks;
  size_t not_resident = 0;
  for (size_t i = 0; i < (size_t{16} << 20) / 8192; ++i) {
    blocks.push_back(malloc(8192));
    // A page inside the block, past the one it starts in (a cache's mark).
    const uintptr_t inside = (reinterpret_cast<uintptr_t>(blocks.back()) + page) & ~(page - 1);
    unsigned char resident = 0;
    ASSERT_EQ(mincore(reinterpret_cast<void*>(inside), page, &resident), 0);
    not_resident += (resident & 1) == 0;
  }
  EXPECT_GT(not_resident, blocks.size() / 4);
  for (void* p : blocks) free(p);
}

}  // namespace
