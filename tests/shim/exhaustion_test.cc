// Running out of memory under RLIMIT_AS (`ulimit -v`): every allocation
// function answers null with errno ENOMEM (operator new throws bad_alloc),
// the process keeps running, and memory freed afterwards serves new
// requests of any size. The binary's allocator is Rulloc.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "concurrency/thread_cache.h"
#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {

constexpr size_t kHeadroom = size_t{384} << 20;

// Lowers RLIMIT_AS to the current address space plus kHeadroom for the
// lifetime of the object.
class AddressSpaceLimit {
 public:
  AddressSpaceLimit() {
    getrlimit(RLIMIT_AS, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = rulloc::platform::AddressSpaceBytes() + kHeadroom;
    ok_ = setrlimit(RLIMIT_AS, &lowered) == 0;
  }
  ~AddressSpaceLimit() { setrlimit(RLIMIT_AS, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

void FreeAll(std::vector<void*>& blocks) {
  for (void* p : blocks) free(p);
  blocks.clear();
}

// Allocates `size`-byte blocks (writing to each) until malloc says no;
// returns them. Checks the failure is a clean ENOMEM.
std::vector<void*> FillWith(size_t size) {
  std::vector<void*> blocks;
  blocks.reserve(kHeadroom / 64);  // before the limit bites
  for (;;) {
    errno = 0;
    void* p = malloc(size);
    if (p == nullptr) {
      const int error = errno;
      if (error != ENOMEM) {
        FreeAll(blocks);
        ADD_FAILURE() << "errno " << error << " for size " << size;
      }
      break;
    }
    std::memset(p, 0x6b, size < 4096 ? size : 4096);
    blocks.push_back(p);
    if (blocks.size() == blocks.capacity()) {
      ADD_FAILURE() << "no failure after " << blocks.size() << " blocks of " << size;
      break;
    }
  }
  return blocks;
}

TEST(ExhaustionTest, EverySizeGetsEnomemThenMemoryIsReused) {
  std::vector<size_t> got;
  {
    AddressSpaceLimit limit;
    ASSERT_TRUE(limit.ok());
    for (size_t size : {size_t{100}, size_t{3000}, size_t{200000}, size_t{8} << 20, size_t{100},
                        size_t{8} << 20}) {
      std::vector<void*> blocks = FillWith(size);
      const size_t bytes = blocks.size() * size;
      std::printf("%zu-byte blocks: %zu (%zu MiB) before ENOMEM\n", size, blocks.size(),
                  bytes >> 20);
      // Most of the headroom was usable, whatever ran out before.
      EXPECT_GT(bytes, kHeadroom / 2) << "size " << size;
      got.push_back(blocks.size());
      // The process carries on: other sizes still fail cleanly (checked
      // after the blocks are freed, so that a failure message can be made)...
      errno = 0;
      const bool malloc_enomem = malloc(size_t{64} << 20) == nullptr && errno == ENOMEM;
      void* q = nullptr;
      const int memalign_result = posix_memalign(&q, 4096, size_t{64} << 20);
      errno = 0;
      const bool aligned_enomem =
          aligned_alloc(1 << 16, size_t{64} << 20) == nullptr && errno == ENOMEM;
      void* kept = blocks.back();
      errno = 0;
      const bool realloc_enomem = realloc(kept, size_t{64} << 20) == nullptr && errno == ENOMEM;
      const bool kept_intact = static_cast<unsigned char*>(kept)[0] == 0x6b;
      errno = 0;
      const bool calloc_enomem = calloc(size_t{1} << 20, 64) == nullptr && errno == ENOMEM;
      bool new_threw = false;
      try {
        char* volatile p = new char[size_t{64} << 20];
        delete[] p;
      } catch (const std::bad_alloc&) {
        new_threw = true;
      }
      const bool nothrow_null = new (std::nothrow) char[size_t{64} << 20] == nullptr;
      // ...and everything freed serves the next size.
      FreeAll(blocks);
      EXPECT_TRUE(malloc_enomem);
      EXPECT_EQ(memalign_result, ENOMEM);
      EXPECT_TRUE(aligned_enomem);
      EXPECT_TRUE(realloc_enomem);
      EXPECT_TRUE(kept_intact);
      EXPECT_TRUE(calloc_enomem);
      EXPECT_TRUE(new_threw);
      EXPECT_TRUE(nothrow_null);
    }
  }
  // The second round of each size got about as much as the first.
  EXPECT_GT(got[4], got[0] * 9 / 10);
  EXPECT_GT(got[5], got[3] * 9 / 10);
}

TEST(ExhaustionTest, AFailedRefillLeavesTheBinBoundAsItWas) {
  // A size class this thread has not used: its first malloc grows the bin's
  // bound and refills it, which fails once the address space is full.
  constexpr size_t kSize = 12288;
  const size_t bucket = rulloc::internal::DefaultClasses::BucketFor(kSize);
  rulloc::internal::ThreadCache* cache = rulloc::internal::tls_cache;
  std::vector<void*> blocks;
  void* p;
  int error;
  uint32_t bound_before, bound_after;
  size_t capacity_before, capacity_after;
  {
    AddressSpaceLimit limit;
    ASSERT_TRUE(limit.ok());
    blocks = FillWith(100);
    cache = rulloc::internal::tls_cache;  // built by the fills
    bound_before = cache->bins[bucket].max_count;
    capacity_before = cache->capacity_bytes;
    errno = 0;
    p = malloc(kSize);
    error = errno;
    bound_after = cache->bins[bucket].max_count;
    capacity_after = cache->capacity_bytes;
  }
  FreeAll(blocks);
  free(p);
  ASSERT_EQ(p, nullptr) << "the refill did not fail";
  EXPECT_EQ(error, ENOMEM);
  EXPECT_EQ(bound_after, bound_before);
  EXPECT_EQ(capacity_after, capacity_before);
}

TEST(ExhaustionTest, OperatorNewThrowsAndRecovers) {
  AddressSpaceLimit limit;
  ASSERT_TRUE(limit.ok());
  std::vector<char*> blocks;
  blocks.reserve(100000);
  bool threw = false;
  try {
    for (;;) blocks.push_back(new char[size_t{1} << 20]);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  EXPECT_GT(blocks.size(), (kHeadroom >> 20) / 2);
  for (char* p : blocks) delete[] p;
  char* again = new char[size_t{100} << 20];  // fits again once freed
  again[0] = 1;
  delete[] again;
}

TEST(ExhaustionTest, HugeReallocRefusedUnderTheLimitLeavesNoMapping) {
  // realloc of a 4 MiB block to 10 MiB reserves the target, then asks the
  // kernel to move the pages there. Under a limit a little above the
  // target, the kernel refuses the move (ENOMEM) before it touches the
  // target: the reservation must go back (the realloc then copies, or
  // fails cleanly), not stay mapped for good.
  constexpr size_t kMiB = size_t{1} << 20;
  for (size_t headroom = 11 * kMiB; headroom <= 17 * kMiB; headroom += kMiB) {
    malloc_trim(0);
    const size_t before = rulloc::platform::AddressSpaceBytes();
    auto* p = static_cast<char*>(malloc(4 * kMiB));
    ASSERT_NE(p, nullptr);
    std::memset(p, 7, 4 * kMiB);
    rlimit saved{};
    getrlimit(RLIMIT_AS, &saved);
    rlimit lowered = saved;
    lowered.rlim_cur = rulloc::platform::AddressSpaceBytes() + headroom;
    ASSERT_EQ(setrlimit(RLIMIT_AS, &lowered), 0);
    errno = 0;
    char* q = static_cast<char*>(realloc(p, 10 * kMiB));
    const int error = errno;
    setrlimit(RLIMIT_AS, &saved);
    if (q != nullptr) {
      EXPECT_EQ(q[4 * kMiB - 1], 7);
      p = q;
    } else {
      EXPECT_EQ(error, ENOMEM);
      EXPECT_EQ(p[4 * kMiB - 1], 7);  // untouched
    }
    free(p);
    malloc_trim(0);
    EXPECT_LE(rulloc::platform::AddressSpaceBytes(), before + 2 * kMiB)
        << "headroom " << headroom / kMiB << " MiB";
  }
}

}  // namespace
