#include "concurrency/interval_claim.h"

#include <atomic>
#include <cstdint>

#include "gtest/gtest.h"

namespace rulloc {
namespace {

TEST(IntervalClaimTest, OneClaimPerInterval) {
  std::atomic<uint64_t> last{1000};
  EXPECT_FALSE(ClaimInterval(last, 1099, 100));
  EXPECT_TRUE(ClaimInterval(last, 1100, 100));
  EXPECT_EQ(last.load(), 1100u);
  EXPECT_FALSE(ClaimInterval(last, 1150, 100));
}

TEST(IntervalClaimTest, AReadingOlderThanTheLastClaimDoesNotClaim) {
  // A thread read the clock (1000), then another claimed with a newer
  // reading (1001): the first must not claim again, nor move `last` back.
  std::atomic<uint64_t> last{0};
  EXPECT_TRUE(ClaimInterval(last, 1001, 100));
  EXPECT_FALSE(ClaimInterval(last, 1000, 100));
  EXPECT_EQ(last.load(), 1001u);
}

}  // namespace
}  // namespace rulloc
