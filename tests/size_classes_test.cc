#include "core/size_classes.h"

#include <array>
#include <cstdio>

#include "gtest/gtest.h"

namespace rulloc {
namespace {

using Default = SizeClassMap<DefaultBuckets>;

TEST(SizeClassesTest, DefaultTableShape) {
  EXPECT_EQ(Default::kCount, 40u);
  EXPECT_EQ(Default::BlockSize(0), 16u);
  EXPECT_EQ(Default::kMaxSize, 32u * 1024);
}

TEST(SizeClassesTest, LookupPicksTheSmallestFittingBucket) {
  for (size_t size = 1; size <= Default::kMaxSize; ++size) {
    const size_t bucket = Default::BucketFor(size);
    ASSERT_LT(bucket, Default::kCount);
    ASSERT_GE(Default::BlockSize(bucket), size) << size;
    if (bucket > 0) {
      ASSERT_LT(Default::BlockSize(bucket - 1), size) << size;
    }
  }
}

// Worst-case internal waste of a bucket: a request one byte above the
// previous bucket's size. 16-byte granularity bounds the tiny buckets; the
// four-per-doubling spacing bounds everything above 128 bytes by 20%.
TEST(SizeClassesTest, WorstCaseWastePerBucket) {
  for (size_t b = 0; b < Default::kCount; ++b) {
    const size_t block = Default::BlockSize(b);
    const size_t smallest_request = b == 0 ? 1 : Default::BlockSize(b - 1) + 1;
    const double waste = double(block - smallest_request) / double(block);
    std::printf("bucket %2zu: %6zu bytes, worst-case waste %5.1f%%\n", b, block, waste * 100);
    if (b == 0) {
      EXPECT_LE(waste, 15.0 / 16);  // a 1-byte request in a 16-byte block
    } else if (block <= 128) {
      EXPECT_LE(waste, 0.5);
    } else {
      EXPECT_LE(waste, 0.20);
    }
  }
}

struct FiveBuckets {
  static constexpr std::array<uint32_t, 5> kSizes{32, 64, 256, 1024, 4096};
};

TEST(SizeClassesTest, CustomTable) {
  using Map = SizeClassMap<FiveBuckets>;
  static_assert(Map::kCount == 5);
  static_assert(Map::BucketFor(1) == 0);
  static_assert(Map::BucketFor(32) == 0);
  static_assert(Map::BucketFor(33) == 1);
  static_assert(Map::BucketFor(65) == 2);
  static_assert(Map::BucketFor(4096) == 4);
  EXPECT_EQ(Map::kMaxSize, 4096u);
}

}  // namespace
}  // namespace rulloc
