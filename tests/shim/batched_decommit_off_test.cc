// RULLOC_BATCHED_DECOMMIT=0 (set for this test in BUILD.bazel) reaches the
// page layer at start-up: pages go back one madvise per range, and they
// still go back. The binary's allocator is Rulloc.
#include <malloc.h>
#include <stdlib.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {

TEST(BatchedDecommitOffTest, TheVariableTurnsBatchesOffAndPagesStillGoBack) {
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

}  // namespace
