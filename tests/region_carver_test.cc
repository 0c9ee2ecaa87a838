#include "core/region_carver.h"

#include <errno.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

constexpr size_t kRegion = size_t{256} << 10;

// The carver is process-wide: this binary is its only user.
TEST(RegionCarverTest, ReturnedRegionsAreDecommittedKeptAndCutAgain) {
  char* regions[RegionCarver::kPendingRegions];
  for (char*& r : regions) {
    r = static_cast<char*>(RegionCarver::Carve(kRegion));
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(r) % kRegion, 0u);
    std::memset(r, 0x5a, kRegion);
  }
  const size_t before = RegionCarver::RetainedBytes();
  // Full batches go back at once: pages given back, addresses kept.
  for (char* r : regions) RegionCarver::Return(r, kRegion);
  EXPECT_EQ(RegionCarver::RetainedBytes(), before + RegionCarver::kPendingRegions * kRegion);
  for (char* r : regions) {
    for (size_t i = 0; i < kRegion; i += 4096) ASSERT_EQ(r[i], 0) << "offset " << i;
  }
  // The lowest kept range is cut first.
  char* lowest = regions[0];
  for (char* r : regions) lowest = r < lowest ? r : lowest;
  char* again = static_cast<char*>(RegionCarver::Carve(kRegion));
  EXPECT_EQ(again, lowest);
  EXPECT_EQ(RegionCarver::RetainedBytes(), before + (RegionCarver::kPendingRegions - 1) * kRegion);
  RegionCarver::Return(again, kRegion);
  RegionCarver::Flush();
  // The decay unmaps only what stayed unused for its time.
  EXPECT_EQ(RegionCarver::ReleaseRetained(/*max_age_ms=*/3'600'000), 0u);
  // Released: the address space goes back.
  EXPECT_GE(RegionCarver::ReleaseRetained(), RegionCarver::kPendingRegions * kRegion);
  EXPECT_EQ(RegionCarver::RetainedBytes(), 0u);
}

TEST(RegionCarverTest, ReleasingEverythingGivesBackTheChunksUncutTail) {
  RegionCarver::ReleaseRetained();
  char* a = static_cast<char*>(RegionCarver::Carve(kRegion));  // from a new chunk
  ASSERT_NE(a, nullptr);
  unsigned char resident;
  EXPECT_EQ(mincore(a + kRegion, platform::PageSize(), &resident), 0);  // reserved
  EXPECT_GE(RegionCarver::ReleaseRetained(), kRegion);
  errno = 0;
  EXPECT_EQ(mincore(a + kRegion, platform::PageSize(), &resident), -1);  // unmapped
  EXPECT_EQ(errno, ENOMEM);
  RegionCarver::Return(a, kRegion);
  RegionCarver::Flush();
  RegionCarver::ReleaseRetained();
}

TEST(RegionCarverTest, NeighboursMergeIntoOneRangeThatServesABiggerRegion) {
  RegionCarver::ReleaseRetained();
  char* a = static_cast<char*>(RegionCarver::Carve(kRegion));
  char* b = static_cast<char*>(RegionCarver::Carve(kRegion));
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(b, a + kRegion);  // cut in order from one chunk
  RegionCarver::Return(b, kRegion);
  RegionCarver::Return(a, kRegion);
  RegionCarver::Flush();
  // Two 256 KiB neighbours serve one 512 KiB region.
  EXPECT_EQ(RegionCarver::Carve(2 * kRegion), a);
  RegionCarver::Return(a, 2 * kRegion);
  RegionCarver::Flush();
  RegionCarver::ReleaseRetained();
}

}  // namespace
}  // namespace rulloc::internal
