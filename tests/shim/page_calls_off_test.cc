// RULLOC_BATCHED_DECOMMIT=0 and RULLOC_POPULATE_PAGES=0 (set for this test
// in BUILD.bazel) reach the page layer at start-up: pages go back one
// madvise per range, and still go back; blocks' pages fault in on touch,
// none is made resident ahead (populate_test: what it does when on). The binary's allocator is
// Rulloc.
#include <malloc.h>
#include <stdlib.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"
#include "tests/kernel.h"
#include "tests/resident_pages.h"

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
  rulloc::kernel::SmallPagesOnly small_pages;
  malloc_trim(0);  // new regions in new mappings
  // 16 MiB of 8 KiB blocks, never written: populated, every page of them
  // past their buckets' first mebibytes would be resident.
  std::vector<void*> blocks;
  const rulloc::test::FreshPages pages = rulloc::test::MallocAndLook(2048, 8192, &blocks);
  ASSERT_GT(pages.count, 0u);
  // (A few may be blocks the test framework had written and freed.)
  EXPECT_LT(pages.resident, pages.count / 8);
  for (void* p : blocks) free(p);
}

}  // namespace
