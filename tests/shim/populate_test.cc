// Blocks that malloc hands out through the thread caches have their pages
// made resident once their size class has a mebibyte of regions besides the
// one it carves (SmallBucket::kPopulateAfterBytes), and not before;
// page_calls_off_test turns it off.
#include <malloc.h>
#include <sched.h>
#include <stdlib.h>

#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"
#include "tests/kernel.h"
#include "tests/resident_pages.h"

namespace {

TEST(PopulateTest, BlocksPastTheirClassFirstMebibytesArriveResident) {
  rulloc::kernel::SmallPagesOnly small_pages;
  malloc_trim(0);  // new regions in new mappings
  // On one CPU, so that every refill comes from one arena's bucket (each
  // arena's first mebibyte faults in on touch).
  cpu_set_t all, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  // MADV_POPULATE_WRITE: Linux 5.14.
  if (rulloc::kernel::AtLeast(5, 14)) {
    ASSERT_TRUE(rulloc::platform::PopulateInUse());
  }
  // The first blocks of a size class (16 KiB: regions of 256 KiB) fault in
  // on touch: nothing wrote them (bar a block or two that the test
  // framework may have written and freed).
  std::vector<void*> blocks;
  const rulloc::test::FreshPages first = rulloc::test::MallocAndLook(16, 16384, &blocks);
  ASSERT_GT(first.count, 0u);
  EXPECT_LE(first.resident, first.count / 4);
  // Past a mebibyte of them.
  rulloc::test::MallocAndLook(1000, 16384, &blocks);
  const rulloc::test::FreshPages later = rulloc::test::MallocAndLook(200, 16384, &blocks);
  ASSERT_GT(later.count, 0u);
  EXPECT_EQ(later.resident, rulloc::platform::PopulateInUse() ? later.count : 0u);
  for (void* p : blocks) free(p);
  sched_setaffinity(0, sizeof(all), &all);
}

}  // namespace
