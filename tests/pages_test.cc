#include "platform/pages.h"

#ifndef _WIN32
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernel.h"

namespace rulloc::platform {
namespace {

TEST(PagesTest, PageSizeIsAPowerOfTwo) {
  const size_t page = PageSize();
  EXPECT_GE(page, 4096u);
  EXPECT_EQ(page & (page - 1), 0u);
}

TEST(PagesTest, ReserveHonoursAlignment) {
  for (size_t alignment = PageSize(); alignment <= (size_t{1} << 26); alignment <<= 3) {
    void* p = Reserve(PageSize() * 3, alignment, /*commit=*/true);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u) << alignment;
    std::memset(p, 0xab, PageSize() * 3);
    EXPECT_TRUE(Release(p, PageSize() * 3));
  }
}

TEST(PagesTest, CommitAfterReserveMakesMemoryWritable) {
  const size_t size = PageSize() * 4;
  char* p = static_cast<char*>(Reserve(size, PageSize(), /*commit=*/false));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(Commit(p, size));
  p[0] = 1;
  p[size - 1] = 2;
  EXPECT_EQ(p[0] + p[size - 1], 3);
  EXPECT_TRUE(Release(p, size));
}

TEST(PagesTest, DecommitZeroesAndDropsResidentMemory) {
  const size_t size = size_t{64} << 20;
  char* p = static_cast<char*>(Reserve(size, PageSize(), /*commit=*/true));
  ASSERT_NE(p, nullptr);
  const size_t before = ResidentBytes();
  std::memset(p, 0x5a, size);
  const size_t touched = ResidentBytes();
  EXPECT_GE(touched, before + size / 2);
  ASSERT_TRUE(Decommit(p, size));
  EXPECT_LE(ResidentBytes(), touched - size / 2);
  EXPECT_EQ(p[12345], 0);  // contents are gone, the range stays usable
  p[12345] = 7;
  EXPECT_EQ(p[12345], 7);
  EXPECT_TRUE(Release(p, size));
}

#ifndef _WIN32
// Decommit and Release go in pieces of kMaxPagesDroppedPerCall: every page
// of a range of several pieces, the last one partial, goes.
TEST(PagesTest, DecommitAndReleaseCoverARangeOfSeveralPieces) {
  const size_t page = PageSize();
  const size_t size = 3 * kMaxPagesDroppedPerCall + 5 * page;
  char* mapping = static_cast<char*>(Reserve(size + page, PageSize(), /*commit=*/true));
  ASSERT_NE(mapping, nullptr);
  char* p = mapping + page;  // pieces that start off any piece boundary
  std::memset(p, 0x5a, size);
  ASSERT_TRUE(Decommit(p, size));
  for (size_t at = 0; at < size; at += page) ASSERT_EQ(p[at], 0) << at;
  std::memset(p, 0x5a, size);
  ASSERT_TRUE(Release(p, size));
  unsigned char resident;
  for (size_t at = 0; at < size; at += page) {
    ASSERT_EQ(mincore(p + at, page, &resident), -1) << at;  // unmapped
    ASSERT_EQ(errno, ENOMEM);
  }
  EXPECT_EQ(mincore(mapping, page, &resident), 0);  // the page before stays
  EXPECT_TRUE(Release(mapping, page));
}
#endif

#ifndef _WIN32
// Ranges of one to many pieces (one of more pieces than a batched call
// takes, one empty), each one page apart: DecommitRanges zeroes every page
// of every range and none between them.
void ExpectDecommitRangesZeroesRangesOnly() {
  const size_t page = PageSize();
  const size_t piece = kMaxPagesDroppedPerCall;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 90; ++i)
    sizes.push_back(i % 3 == 0 ? 2 * piece + page : page * (1 + i % 5));
  sizes[7] = 0;
  sizes[40] = 65 * piece;
  size_t total = page;
  for (size_t size : sizes) total += size + page;
  char* mapping = static_cast<char*>(Reserve(total, page, /*commit=*/true));
  ASSERT_NE(mapping, nullptr);
  std::memset(mapping, 0x5a, total);
  std::vector<PageRange> ranges;
  for (char* at = mapping + page; size_t size : sizes) {
    ranges.push_back({at, size});
    at += size + page;
  }
  bool decommitted[90];
  std::memset(decommitted, 0, sizeof(decommitted));
  DecommitRanges(ranges.data(), ranges.size(), decommitted);
  char* next = mapping;  // the first page not yet checked
  for (size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_TRUE(decommitted[i]) << i;
    char* base = static_cast<char*>(ranges[i].base);
    for (; next < base; next += page) ASSERT_EQ(*next, 0x5a) << i;  // the gap before
    for (; next < base + ranges[i].size; next += page) ASSERT_EQ(*next, 0) << i;
  }
  ASSERT_EQ(*next, 0x5a);  // the last gap
  EXPECT_TRUE(Release(mapping, total));
}

// Locked pages cannot be decommitted (EINVAL): DecommitRanges says which
// range failed, and the ranges before and after it go, whether the locked
// range comes first (the kernel refuses the whole call) or after others
// (it stops part way).
void ExpectDecommitRangesReportsALockedRange() {
  const size_t page = PageSize();
  char* mapping = static_cast<char*>(Reserve(11 * page, page, /*commit=*/true));
  ASSERT_NE(mapping, nullptr);
  std::memset(mapping, 0x5a, 11 * page);
  // The system call itself: sanitizer runtimes make mlock() a no-op.
  for (size_t locked : {1, 5}) {
    ASSERT_EQ(syscall(SYS_mlock, mapping + locked * page, page), 0) << errno;
  }
  const PageRange first[] = {{mapping + page, page}, {mapping + 3 * page, page}};
  bool decommitted[3] = {true, false, false};
  DecommitRanges(first, 2, decommitted);
  EXPECT_FALSE(decommitted[0]);
  EXPECT_TRUE(decommitted[1]);
  const PageRange after_others[] = {
      {mapping + 7 * page, page}, {mapping + 5 * page, page}, {mapping + 9 * page, page}};
  decommitted[1] = true;
  DecommitRanges(after_others, 3, decommitted);
  EXPECT_TRUE(decommitted[0]);
  EXPECT_FALSE(decommitted[1]);
  EXPECT_TRUE(decommitted[2]);
  for (size_t i = 0; i < 11; ++i) {
    const bool given_back = i % 2 == 1 && i != 1 && i != 5;
    EXPECT_EQ(mapping[i * page], given_back ? 0 : 0x5a) << i;
  }
  for (size_t locked : {1, 5}) syscall(SYS_munlock, mapping + locked * page, page);
  EXPECT_TRUE(Release(mapping, 11 * page));
}

TEST(PagesTest, DecommitRangesGivesBackEachRangeOrSaysWhichItCouldNot) {
  // Batched where the kernel names the calling thread to process_madvise
  // (6.15), and still after a range it refused.
  const bool batched = BatchedDecommitInUse();
  if (kernel::AtLeast(6, 15)) {
    EXPECT_TRUE(batched);
  }
  ExpectDecommitRangesZeroesRangesOnly();
  ExpectDecommitRangesReportsALockedRange();
  EXPECT_EQ(BatchedDecommitInUse(), batched);
  // The same with one call a range, as for a program that turns batches off.
  DisableBatchedDecommit();
  EXPECT_FALSE(BatchedDecommitInUse());
  ExpectDecommitRangesZeroesRangesOnly();
  ExpectDecommitRangesReportsALockedRange();
}
#endif

#ifdef __linux__
// Pages of [p, p + pages * PageSize()) that are resident, one flag each.
std::vector<bool> ResidentPages(const char* p, size_t pages) {
  std::vector<unsigned char> flags(pages);
  EXPECT_EQ(mincore(const_cast<char*>(p), pages * PageSize(), flags.data()), 0);
  return std::vector<bool>(flags.begin(), flags.end());
}

TEST(PagesTest, PopulateMakesExactlyItsPagesResidentAndZero) {
  kernel::SmallPagesOnly small_pages;
  const size_t page = PageSize();
  char* p = static_cast<char*>(Reserve(32 * page, page, /*commit=*/true));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(ResidentPages(p, 32), std::vector<bool>(32, false));
  // MADV_POPULATE_WRITE: Linux 5.14.
  const bool populated = Populate(p + 8 * page, 16 * page);
  EXPECT_EQ(populated, PopulateInUse());
  if (kernel::AtLeast(5, 14)) {
    EXPECT_TRUE(populated);
  }
  std::vector<bool> expected(32, false);
  if (populated) std::fill(expected.begin() + 8, expected.begin() + 24, true);
  EXPECT_EQ(ResidentPages(p, 32), expected);
  for (size_t i = 0; i < 32 * page; i += 512) ASSERT_EQ(p[i], 0) << i;
  EXPECT_FALSE(Populate(p, 0));
  EXPECT_TRUE(Release(p, 32 * page));
}
#endif

TEST(PagesTest, BadRequestsReturnNull) {
  EXPECT_EQ(Reserve(0, PageSize(), true), nullptr);
  EXPECT_EQ(Reserve(PageSize() + 1, PageSize(), true), nullptr);
  EXPECT_EQ(Reserve(PageSize(), PageSize() * 3, true), nullptr);  // not a power of two
  EXPECT_EQ(Reserve(~size_t{0} - PageSize() + 1, PageSize(), true), nullptr);
  EXPECT_EQ(Reserve(size_t{1} << 62, size_t{1} << 30, true), nullptr);
}

}  // namespace
}  // namespace rulloc::platform
