// Heap misuse is reported with one line on stderr, then abort.
#include <cstdlib>
#include <vector>

#include "core/allocator.h"
#include "core/c_api.h"
#include "gtest/gtest.h"

namespace rulloc {
namespace {

using MisuseDeathTest = ::testing::Test;

TEST(MisuseDeathTest, DoubleFreeOfASmallBlock) {
  Allocator a;
  void* p = a.allocate(32);
  a.deallocate(p);
  EXPECT_DEATH(a.deallocate(p), "^rulloc: double free: 0x[0-9a-f]+\n$");
}

TEST(MisuseDeathTest, DoubleFreeOfALargeBlock) {
  Allocator a;
  void* p = a.allocate(100000);
  void* pin = a.allocate(100000);
  a.deallocate(p);
  EXPECT_DEATH(a.deallocate(p), "rulloc: double free: 0x");
  a.deallocate(pin);
}

TEST(MisuseDeathTest, DoubleFreeOfAHugeBlock) {
  Allocator a;
  void* p = a.allocate(size_t{8} << 20);
  a.deallocate(p);  // the mapping waits in the huge cache
  EXPECT_DEATH(a.deallocate(p), "^rulloc: double free: 0x[0-9a-f]+\n$");
}

TEST(MisuseDeathTest, DoubleFreeOfAHugeBlockAfterItsMappingWentBack) {
  Allocator a;
  void* p = a.allocate(size_t{8} << 20);
  a.deallocate(p);
  a.trim();  // unmaps the cached mapping
  EXPECT_DEATH(a.deallocate(p), "rulloc: free of a pointer not allocated by rulloc: 0x");
}

TEST(MisuseDeathTest, FreeOfAStackAddress) {
  Allocator a;
  int local = 0;
  EXPECT_DEATH(a.deallocate(&local), "rulloc: free of a pointer not allocated by rulloc: 0x");
}

TEST(MisuseDeathTest, FreeOfAnotherAllocatorsMemory) {
  void* foreign = std::malloc(64);
  EXPECT_DEATH(rulloc_free(foreign), "rulloc: free of a pointer not allocated by rulloc: 0x");
  std::free(foreign);
}

TEST(MisuseDeathTest, FreeOfAnInteriorPointer) {
  Allocator a;
  auto* small = static_cast<char*>(a.allocate(64));
  auto* large = static_cast<char*>(a.allocate(100000));
  auto* huge = static_cast<char*>(a.allocate(size_t{8} << 20));
  EXPECT_DEATH(a.deallocate(small + 16), "rulloc: free of a pointer into the middle of a block");
  EXPECT_DEATH(a.deallocate(large + 4096), "rulloc: free of an invalid pointer");
  EXPECT_DEATH(a.deallocate(huge + 16), "rulloc: free of a pointer into the middle of a block");
  a.deallocate(small);
  a.deallocate(large);
  a.deallocate(huge);
}

TEST(MisuseDeathTest, FreeThroughTheWrongInstance) {
  Allocator a;
  Allocator b;
  void* p = a.allocate(64);
  EXPECT_DEATH(b.deallocate(p), "rulloc: pointer belongs to another rulloc allocator instance");
  a.deallocate(p);
}

TEST(MisuseDeathTest, FreeOfANeverHandedOutBlock) {
  Allocator a;
  auto* p = static_cast<char*>(a.allocate(64));
  // The next block of the same region has not been carved yet.
  EXPECT_DEATH(a.deallocate(p + 64 * 100), "rulloc: free of a pointer not allocated by rulloc");
  a.deallocate(p);
}

TEST(MisuseDeathTest, ReallocOfAFreedLargeBlock) {
  Allocator a;
  void* p = a.allocate(100000);
  void* pin = a.allocate(100000);
  a.deallocate(p);
  EXPECT_DEATH(a.reallocate(p, 200000), "rulloc: ");
  a.deallocate(pin);
}

TEST(MisuseDeathTest, DoubleFreeThroughTheThreadCache) {
  // The block sits in the calling thread's cache after the first free.
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
  // Other frees in between, so the block is no longer at the head of its bin.
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        void* volatile q = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_free(q);
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, DoubleFreeAfterTheBlockLeftTheThreadCache) {
  EXPECT_DEATH(
      {
        void* volatile p = rulloc_malloc(40);
        rulloc_free(p);
        rulloc_thread_cache_flush();  // back in its region
        rulloc_free(p);
      },
      "rulloc: double free: 0x");
}

TEST(MisuseDeathTest, InteriorPointerOfAnOverAlignedBlock) {
  Allocator a;
  // Served from a bigger block at an offset: only the aligned pointer is valid.
  auto* p = static_cast<char*>(a.allocate(100, 64));
  EXPECT_DEATH(a.deallocate(p + 48), "rulloc: free of a pointer into the middle of a block");
  a.deallocate(p);
}

TEST(MisuseDeathTest, SecondFreeOfAnOverAlignedLargeBlockAfterReuse) {
  Allocator a;
  void* pin = a.allocate(40000);
  void* p = a.allocate(40000, 4096);
  a.deallocate(p);
  void* q = a.allocate(40000);  // may reuse p's block
  EXPECT_DEATH(a.deallocate(p), "rulloc: ");
  a.deallocate(q);
  a.deallocate(pin);
}

}  // namespace
}  // namespace rulloc
