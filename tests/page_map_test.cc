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

}  // namespace
}  // namespace rulloc::internal
