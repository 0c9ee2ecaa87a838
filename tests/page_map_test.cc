#include "core/page_map.h"

#include <gtest/gtest.h>

#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// A range of four granules that the test owns, so that its page-map entries
// are no region's but the test's.
class PageMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = static_cast<char*>(platform::Reserve(4 * kGranule, kGranule, /*commit=*/false));
    ASSERT_NE(base_, nullptr);
  }
  void TearDown() override {
    if (base_ == nullptr) return;
    PageMap::Unregister(base_, 4 * kGranule);
    platform::Release(base_, 4 * kGranule);
  }
  RegionHeader* HeaderAt(size_t granule) {
    return reinterpret_cast<RegionHeader*>(base_ + granule * kGranule);
  }
  char* base_ = nullptr;
};

TEST_F(PageMapTest, RegisterMapsEveryGranuleAndUnregisterClearsThem) {
  ASSERT_TRUE(PageMap::Register(base_, 4 * kGranule, HeaderAt(0)));
  for (size_t offset = 0; offset < 4 * kGranule; offset += kGranule / 2) {
    EXPECT_EQ(PageMap::Lookup(base_ + offset), HeaderAt(0)) << offset;
  }
  PageMap::Unregister(base_, 4 * kGranule);
  for (size_t offset = 0; offset < 4 * kGranule; offset += kGranule / 2) {
    EXPECT_EQ(PageMap::Lookup(base_ + offset), nullptr) << offset;
  }
}

TEST(PageMapBigRangeTest, UnregisterGivesBackTheLeafPagesOfABigRange) {
  // 64 GiB of address space (no memory: never committed) takes 8 MiB of
  // entries; a region on each side shares the first and last leaf pages.
  constexpr size_t kBig = size_t{64} << 30;
  auto* space =
      static_cast<char*>(platform::Reserve(kBig + 2 * kGranule, kGranule, /*commit=*/false));
  ASSERT_NE(space, nullptr);
  char* big = space + kGranule;
  auto* before = reinterpret_cast<RegionHeader*>(space);
  auto* inside = reinterpret_cast<RegionHeader*>(big);
  auto* after = reinterpret_cast<RegionHeader*>(big + kBig);
  ASSERT_TRUE(PageMap::Register(space, kGranule, before));
  ASSERT_TRUE(PageMap::Register(big + kBig, kGranule, after));
  const size_t start = platform::ResidentBytes();
  ASSERT_TRUE(PageMap::Register(big, kBig, inside));
  const size_t registered = platform::ResidentBytes();
  EXPECT_GE(registered, start + (size_t{7} << 20));
  EXPECT_EQ(PageMap::Lookup(big + kBig / 2), inside);
  PageMap::Unregister(big, kBig);
  // The entries' pages went back (a sanitizer's shadow of them stays).
  EXPECT_GE(registered, platform::ResidentBytes() + (size_t{7} << 20));
  for (size_t offset = 0; offset < kBig; offset += kBig / 64 + kGranule) {
    EXPECT_EQ(PageMap::Lookup(big + offset), nullptr) << offset;
  }
  EXPECT_EQ(PageMap::Lookup(big + kBig - 1), nullptr);
  EXPECT_EQ(PageMap::Lookup(big - 1), before);  // the neighbours keep theirs
  EXPECT_EQ(PageMap::Lookup(big + kBig), after);
  PageMap::Unregister(space, kGranule);
  PageMap::Unregister(big + kBig, kGranule);
  platform::Release(space, kBig + 2 * kGranule);
}

}  // namespace
}  // namespace rulloc::internal
