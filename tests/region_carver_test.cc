#include "core/region_carver.h"

#include <errno.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {
// While set, every Decommit waits on entry until it is cleared.
std::atomic<bool> hold_decommits{false};
std::atomic<int> held{0};
}  // namespace

// Called by the carver on entry to every Decommit (see platform/pages.h).
extern "C" void rulloc_decommit_observer(void*, size_t) {
  if (!hold_decommits) return;
  ++held;
  held.notify_all();
  hold_decommits.wait(true);
}

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

// Batches go back with no lock held, each from a slot a fork child can
// read. With every slot in flight, a full list stays pending, and the next
// Return waits for a slot: no range is lost.
TEST(RegionCarverTest, AReturnWaitsForASlotWhenEveryBatchIsInFlight) {
  RegionCarver::Flush();
  RegionCarver::ReleaseRetained();
  constexpr size_t kSlots = 8, kBatch = RegionCarver::kPendingRegions;
  std::vector<char*> regions((kSlots + 1) * kBatch + 1);
  for (char*& r : regions) {
    r = static_cast<char*>(RegionCarver::Carve(kRegion));
    ASSERT_NE(r, nullptr);
    r[0] = 1;
  }
  hold_decommits = true;
  // One thread per slot: its batch's first Decommit holds it, and the slot.
  std::vector<std::thread> holders;
  for (size_t t = 0; t < kSlots; ++t) {
    holders.emplace_back([&, t] {
      for (size_t i = 0; i < kBatch; ++i) RegionCarver::Return(regions[t * kBatch + i], kRegion);
    });
    held.wait(static_cast<int>(t));
  }
  // A full list with no slot free stays pending.
  for (size_t i = 0; i < kBatch; ++i) RegionCarver::Return(regions[kSlots * kBatch + i], kRegion);
  EXPECT_EQ(RegionCarver::RetainedBytes(), 0u);
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    RegionCarver::Return(regions.back(), kRegion);
    returned = true;
  });
  EXPECT_FALSE(returned);  // (no slot can be free yet)
  hold_decommits = false;
  hold_decommits.notify_all();
  for (std::thread& t : holders) t.join();
  waiter.join();
  RegionCarver::Flush();
  EXPECT_EQ(RegionCarver::RetainedBytes(), regions.size() * kRegion);
  for (char* r : regions) ASSERT_EQ(r[0], 0) << "a region kept its pages";
  RegionCarver::ReleaseRetained();
}

}  // namespace
}  // namespace rulloc::internal
