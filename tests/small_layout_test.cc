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

// BlockStartingAt (no division) against a division, at every offset of the
// region and a little past it: the index of the block starting there, or
// capacity. For every bucket of the default table, guarded or not, and for
// block sizes with odd factors up to 255 and powers of two up to 64 KiB.
void ExpectBlockStartsFound(const SmallLayout& l, uint32_t region) {
  uint32_t mismatches = 0;
  for (uint32_t offset = 0; offset < region + 2 * l.block_size; ++offset) {
    uint32_t expected = l.capacity;
    if (offset >= l.first_offset && (offset - l.first_offset) % l.block_size == 0 &&
        (offset - l.first_offset) / l.block_size < l.capacity) {
      expected = (offset - l.first_offset) / l.block_size;
    }
    if (l.BlockStartingAt(offset) != expected && ++mismatches <= 3) {
      ADD_FAILURE() << "block size " << l.block_size << ", offset " << offset << ": "
                    << l.BlockStartingAt(offset) << " instead of " << expected;
    }
  }
}

TEST(SmallLayoutTest, BlockStartingAtFindsExactlyTheBlockStarts) {
  for (uint32_t b = 0; b < kLayouts.size(); ++b) {
    const uint32_t size = kLayouts[b].block_size;
    const uint32_t region = SmallBucket::RegionSizeFor(size);
    ExpectBlockStartsFound(kLayouts[b], region);
    ExpectBlockStartsFound(SmallLayoutFor(size, region, b, 4096), region);
  }
  for (uint32_t odd = 1; odd < 256; odd += 2) {
    const uint32_t size = odd * 16;
    ExpectBlockStartsFound(SmallLayoutFor(size, SmallBucket::RegionSizeFor(size), 0, 0),
                           SmallBucket::RegionSizeFor(size));
  }
  for (uint32_t size = 16; size <= 64 * 1024; size *= 2) {
    ExpectBlockStartsFound(SmallLayoutFor(size, SmallBucket::RegionSizeFor(size), 0, 0),
                           SmallBucket::RegionSizeFor(size));
  }
}

// The fast free's table by tag finds the same block starts from the tagged
// page-map entry, and no block at all from an untagged one.
TEST(SmallLayoutTest, TaggedLayoutsFindTheSameBlockStarts) {
  constexpr auto& kTagged = kTaggedLayouts<DefaultBuckets>;
  ASSERT_EQ(kTagged.size(), kLayouts.size() + 1);
  constexpr uintptr_t kBase = uintptr_t{0x7f1234560000};
  EXPECT_EQ(kTagged[0].capacity, 0u);  // so no index passes for tag 0
  for (uint32_t b = 0; b < kLayouts.size(); ++b) {
    const SmallLayout& l = kLayouts[b];
    const TaggedLayout& t = kTagged[b + 1];
    const uintptr_t entry = kBase + b + 1;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.AllocatedBits(entry)), kBase + l.bitmap_offset) << b;
    const uint32_t region = SmallBucket::RegionSizeFor(l.block_size);
    uint32_t mismatches = 0;
    for (uint32_t offset = 0; offset < region; ++offset) {
      const uint32_t index = t.UncheckedBlockIndex(kBase + offset - entry);
      const uint32_t found = index < t.capacity ? index : t.capacity;
      if (found != l.BlockStartingAt(offset) && ++mismatches <= 3) {
        ADD_FAILURE() << "bucket " << b << ", offset " << offset << ": " << found << " instead of "
                      << l.BlockStartingAt(offset);
      }
    }
  }
}

}  // namespace
}  // namespace rulloc::internal
