#include <cstdint>
#include <set>

#include "core/size_classes.h"
#include "core/small_bucket.h"
#include "gtest/gtest.h"

namespace rulloc::internal {
namespace {

constexpr auto& kLayouts = kUnguardedLayouts<DefaultBuckets>;

TEST(SmallLayoutTest, HeaderBitmapsAndBlocksDoNotOverlapAndFit) {
  for (size_t b = 0; b < kLayouts.size(); ++b) {
    const SmallLayout& l = kLayouts[b];
    const uint32_t region = SmallBucket::RegionSizeFor(l.block_size);
    EXPECT_GE(l.bitmap_offset, sizeof(SmallRegion)) << b;
    EXPECT_EQ(l.bitmap_offset % 8, 0u) << b;
    EXPECT_LE(l.bitmap_offset + 2 * BitmapWords(l.capacity) * 8, l.first_offset) << b;
    EXPECT_EQ(l.first_offset % kBlockStartAlignment, 0u) << b;
    EXPECT_LE(l.first_offset + uint64_t{l.capacity} * l.block_size, region) << b;
    // As many blocks as fit: one more would overrun the region.
    EXPECT_GT(l.first_offset + uint64_t{l.capacity + 1} * l.block_size, region) << b;
  }
}

// Region bases are multiples of 64 KiB: without colours every region's
// bitmap would sit in one L1 set. Each run of kCacheColours buckets puts
// its bitmaps on distinct cache lines modulo 4 KiB.
TEST(SmallLayoutTest, NeighbouringBucketsUseDistinctCacheSets) {
  for (size_t start = 0; start + kCacheColours <= kLayouts.size(); start += kCacheColours) {
    std::set<uint32_t> bitmap_sets;
    for (size_t b = start; b < start + kCacheColours; ++b) {
      bitmap_sets.insert(kLayouts[b].bitmap_offset % 4096 / kCacheLine);
    }
    EXPECT_EQ(bitmap_sets.size(), kCacheColours) << start;
  }
}

// The guarded (hardened) layout of a bucket keeps its colour.
TEST(SmallLayoutTest, GuardedLayoutKeepsTheBitmapOffset) {
  for (uint32_t b = 0; b < kLayouts.size(); ++b) {
    const SmallLayout guarded = SmallLayoutFor(
        kLayouts[b].block_size, SmallBucket::RegionSizeFor(kLayouts[b].block_size), b, 4096);
    EXPECT_EQ(guarded.bitmap_offset, kLayouts[b].bitmap_offset);
    EXPECT_EQ(guarded.first_offset % 4096, 0u);
    EXPECT_LE(guarded.bitmap_offset + 2 * BitmapWords(guarded.capacity) * 8,
              guarded.first_offset - 4096);
  }
}

}  // namespace
}  // namespace rulloc::internal
