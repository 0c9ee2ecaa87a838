#include "core/c_api.h"

#include <errno.h>

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace {

TEST(CApiTest, MallocFree) {
  void* p = rulloc_malloc(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
  EXPECT_GE(rulloc_usable_size(p), 100u);
  rulloc_free(p);
  rulloc_free(nullptr);
  EXPECT_EQ(rulloc_usable_size(nullptr), 0u);
}

TEST(CApiTest, MallocZeroIsAUniquePointer) {
  void* a = rulloc_malloc(0);
  void* b = rulloc_malloc(0);
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a, b);
  rulloc_free(a);
  rulloc_free(b);
}

TEST(CApiTest, MallocExhaustionIsEnomem) {
  errno = 0;
  EXPECT_EQ(rulloc_malloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(CApiTest, CallocZeroesAndChecksOverflow) {
  auto* p = static_cast<unsigned char*>(rulloc_calloc(1000, 7));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 7000; ++i) ASSERT_EQ(p[i], 0);
  rulloc_free(p);
  errno = 0;
  EXPECT_EQ(rulloc_calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(rulloc_calloc(size_t{1} << 32, size_t{1} << 32), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(CApiTest, ReallocContracts) {
  void* p = rulloc_realloc(nullptr, 10);  // realloc(NULL, n) == malloc(n)
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "abcdefghi", 10);
  p = rulloc_realloc(p, 100000);
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(static_cast<char*>(p), "abcdefghi");
  EXPECT_EQ(rulloc_realloc(p, 0), nullptr);  // frees
  errno = 0;
  void* q = rulloc_malloc(16);
  EXPECT_EQ(rulloc_realloc(q, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  rulloc_free(q);  // still valid after a failed realloc
}

TEST(CApiTest, AlignedAlloc) {
  for (size_t alignment = 1; alignment <= (size_t{1} << 20); alignment <<= 1) {
    void* p = rulloc_aligned_alloc(alignment, 3);  // any size is accepted
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    rulloc_free(p);
  }
  errno = 0;
  EXPECT_EQ(rulloc_aligned_alloc(0, 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(rulloc_aligned_alloc(48, 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(CApiTest, PosixMemalign) {
  void* p = nullptr;
  EXPECT_EQ(rulloc_posix_memalign(&p, 4096, 10), 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  rulloc_free(p);
  void* untouched = &p;
  void* out = untouched;
  EXPECT_EQ(rulloc_posix_memalign(&out, 4, 10), EINVAL);  // below sizeof(void*)
  EXPECT_EQ(rulloc_posix_memalign(&out, 24, 10), EINVAL);
  EXPECT_EQ(rulloc_posix_memalign(&out, 64, SIZE_MAX), ENOMEM);
  EXPECT_EQ(out, untouched);
}

}  // namespace
