#include <array>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/memory_resource.h"
#include "core/std_allocator.h"
#include "gtest/gtest.h"

namespace rulloc {
namespace {

struct ThreeBuckets {
  static constexpr std::array<uint32_t, 3> kSizes{64, 512, 4096};
};
template <class T>
using ThreeBucketsVector = std::vector<T, StdAllocator<T, ThreeBuckets>>;

// Built before the table's process instance is first used, destroyed after
// main: its blocks are freed at exit through that instance, which must
// still be there (it is never destroyed).
std::vector<ThreeBucketsVector<int>> built_before_the_instance;

TEST(StdAllocatorTest, ACustomTablesInstanceOutlivesStaticContainers) {
  built_before_the_instance.emplace_back(100, 7);
  EXPECT_EQ(built_before_the_instance[0].get_allocator().instance(),
            &ProcessInstance<ThreeBuckets>());
  EXPECT_TRUE(ProcessInstance<ThreeBuckets>().owns(built_before_the_instance[0].data()));
}

TEST(MemoryResourceTest, ACustomTablesDefaultResource) {
  BasicMemoryResource<ThreeBuckets> resource;
  EXPECT_EQ(&resource.instance(), &ProcessInstance<ThreeBuckets>());
  std::pmr::vector<int> numbers(&resource);
  numbers.assign(1000, 3);
  EXPECT_TRUE(resource.instance().owns(numbers.data()));
}

TEST(StdAllocatorTest, VectorMapUnorderedMap) {
  Allocator instance;
  StdAllocator<int> alloc(instance);
  std::vector<int, StdAllocator<int>> v(alloc);
  for (int i = 0; i < 100000; ++i) v.push_back(i);
  long sum = 0;
  for (int x : v) sum += x;
  EXPECT_EQ(sum, 100000L * 99999 / 2);

  using Pair = std::pair<const int, std::string>;
  std::map<int, std::string, std::less<int>, StdAllocator<Pair>> m(alloc);
  std::unordered_map<int, std::string, std::hash<int>, std::equal_to<int>, StdAllocator<Pair>> u(
      alloc);
  for (int i = 0; i < 5000; ++i) {
    m[i] = std::to_string(i);
    u[i] = std::to_string(i * 2);
  }
  EXPECT_EQ(m[4321], "4321");
  EXPECT_EQ(u[4321], "8642");
  EXPECT_GE(instance.stats().small_blocks_in_use, 10000u);
  v = {};
  m.clear();
  u.clear();
}

TEST(StdAllocatorTest, EqualityFollowsTheInstance) {
  Allocator a;
  Allocator b;
  StdAllocator<int> x(a);
  StdAllocator<double> y(a);
  StdAllocator<int> z(b);
  EXPECT_TRUE(x == y);
  EXPECT_FALSE(x == z);
  EXPECT_TRUE(StdAllocator<int>() == StdAllocator<char>());
}

TEST(StdAllocatorTest, OverAlignedTypes) {
  struct alignas(256) Wide {
    char bytes[256];
  };
  std::vector<Wide, StdAllocator<Wide>> v(10);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 256, 0u);
}

TEST(StdAllocatorTest, HugeCountThrows) {
  StdAllocator<long> alloc;
  EXPECT_THROW(alloc.allocate(SIZE_MAX / 4), std::bad_array_new_length);
  EXPECT_THROW(alloc.allocate(SIZE_MAX / 16), std::bad_alloc);
}

TEST(MemoryResourceTest, PmrContainers) {
  Allocator instance;
  MemoryResource resource(instance);
  std::pmr::vector<std::pmr::string> words(&resource);
  for (int i = 0; i < 1000; ++i)
    words.emplace_back(std::string(50, static_cast<char>('a' + i % 26)));
  EXPECT_EQ(words[27][0], 'b');
  EXPECT_GE(instance.stats().small_blocks_in_use, 1000u);
  EXPECT_TRUE(resource.is_equal(resource));
  MemoryResource other(instance);
  EXPECT_TRUE(resource.is_equal(other));
  EXPECT_FALSE(resource.is_equal(*std::pmr::new_delete_resource()));
  words.clear();
  words.shrink_to_fit();
  EXPECT_EQ(instance.stats().small_blocks_in_use, 0u);
}

TEST(MemoryResourceTest, DefaultResourceAndAlignment) {
  std::pmr::memory_resource* r = DefaultMemoryResource();
  void* p = r->allocate(100, 4096);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  r->deallocate(p, 100, 4096);
}

}  // namespace
}  // namespace rulloc
