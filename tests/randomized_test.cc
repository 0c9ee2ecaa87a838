// Long random sequences of allocate / reallocate / free against a model:
// every live block is filled with a pattern and checked before it is
// resized or freed, live blocks never overlap, and alignment and
// usable_size hold.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "core/allocator.h"
#include "gtest/gtest.h"
#include "tests/sanitizers.h"

namespace rulloc {
namespace {

struct Live {
  char* ptr;
  size_t size;
  size_t alignment;
  unsigned char pattern;
};

// Index of the first byte of p[0..size) that is not `pattern`, or size.
size_t FirstMismatch(const char* p, size_t size, unsigned char pattern) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(p);
  return static_cast<size_t>(
      std::find_if(bytes, bytes + size, [pattern](unsigned char c) { return c != pattern; }) -
      bytes);
}

class Model {
 public:
  explicit Model(Allocator& a) : a_(a) {}

  void Add(const Live& b) {
    ASSERT_NE(b.ptr, nullptr);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(b.ptr) % b.alignment, 0u);
    ASSERT_GE(a_.usable_size(b.ptr), b.size);
    const uintptr_t start = reinterpret_cast<uintptr_t>(b.ptr);
    const uintptr_t end = start + (b.size == 0 ? 1 : b.size);
    auto next = ranges_.lower_bound(start);
    if (next != ranges_.end()) {
      ASSERT_LE(end, next->first) << "overlaps a live block";
    }
    if (next != ranges_.begin()) {
      ASSERT_LE(std::prev(next)->second, start) << "overlaps";
    }
    ranges_[start] = end;
    std::memset(b.ptr, b.pattern, b.size);
    blocks_.push_back(b);
  }
  void Check(const Live& b) { ASSERT_EQ(FirstMismatch(b.ptr, b.size, b.pattern), b.size); }
  Live Take(size_t index) {
    Live b = blocks_[index];
    blocks_[index] = blocks_.back();
    blocks_.pop_back();
    ranges_.erase(reinterpret_cast<uintptr_t>(b.ptr));
    return b;
  }
  size_t size() const { return blocks_.size(); }

 private:
  Allocator& a_;
  std::vector<Live> blocks_;
  std::map<uintptr_t, uintptr_t> ranges_;
};

// Mostly small sizes, some large, a few huge.
size_t RandomSize(std::mt19937_64& rng) {
  const unsigned regime = rng() % 64;
  if (regime == 0) return rng() % (size_t{4} << 20);
  if (regime < 8) return rng() % (size_t{256} << 10);
  return rng() % 2048;
}

void RunRandomSequence(uint64_t seed, int steps) {
  Allocator a;
  Model model(a);
  std::mt19937_64 rng(seed);
  for (int step = 0; step < steps; ++step) {
    const unsigned op = rng() % 10;
    if (op < 5 || model.size() == 0) {
      const size_t alignment = rng() % 4 == 0 ? size_t{1} << (rng() % 17) : 16;
      const size_t size = RandomSize(rng);
      Live b{static_cast<char*>(a.allocate(size, alignment)), size, alignment < 16 ? 16 : alignment,
             static_cast<unsigned char>(rng())};
      ASSERT_NO_FATAL_FAILURE(model.Add(b));
    } else if (op < 7) {
      Live b = model.Take(rng() % model.size());
      ASSERT_NO_FATAL_FAILURE(model.Check(b));
      const size_t size = RandomSize(rng);
      auto* moved = static_cast<char*>(a.reallocate(b.ptr, size, b.alignment));
      ASSERT_NE(moved, nullptr);
      const size_t kept = std::min(size, b.size);
      ASSERT_EQ(FirstMismatch(moved, kept, b.pattern), kept) << "realloc lost data";
      Live grown{moved, size, b.alignment, static_cast<unsigned char>(rng())};
      ASSERT_NO_FATAL_FAILURE(model.Add(grown));
    } else {
      Live b = model.Take(rng() % model.size());
      ASSERT_NO_FATAL_FAILURE(model.Check(b));
      a.deallocate(b.ptr);
    }
  }
  while (model.size() > 0) {
    Live b = model.Take(model.size() - 1);
    ASSERT_NO_FATAL_FAILURE(model.Check(b));
    a.deallocate(b.ptr);
  }
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.small_blocks_in_use, 0u);
  EXPECT_EQ(s.large_blocks_in_use, 0u);
  EXPECT_EQ(s.huge_blocks_in_use, 0u);
}

constexpr int kSteps = test_support::kUnderSanitizer ? 4000 : 20000;

TEST(RandomizedTest, SequencesAgainstTheModel) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE(seed);
    RunRandomSequence(seed, kSteps);
  }
}

}  // namespace
}  // namespace rulloc
