// Which pages of freshly allocated blocks are resident before anything
// writes them, for the tests of page population.
#ifndef RULLOC_TESTS_RESIDENT_PAGES_H_
#define RULLOC_TESTS_RESIDENT_PAGES_H_

#include <stdlib.h>
#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "platform/pages.h"

namespace rulloc::test {

struct FreshPages {
  size_t count = 0;     // pages wholly inside the blocks, past their first
  size_t resident = 0;  // of those, resident with nothing written to them
};

// Allocates `count` blocks of `size` bytes with `allocate(size)` into
// `blocks` and looks at their pages past the one each starts in (the
// allocator may write there: a cache's mark).
template <typename Allocate>
FreshPages AllocateAndLook(size_t count, size_t size, Allocate allocate,
                           std::vector<void*>* blocks) {
  const uintptr_t page = platform::PageSize();
  FreshPages pages;
  for (size_t i = 0; i < count; ++i) {
    blocks->push_back(allocate(size));
    const uintptr_t start = reinterpret_cast<uintptr_t>(blocks->back());
    for (uintptr_t at = (start + page) & ~(page - 1); at + page <= start + size; at += page) {
      unsigned char resident = 0;
      EXPECT_EQ(mincore(reinterpret_cast<void*>(at), page, &resident), 0);
      ++pages.count;
      pages.resident += resident & 1;
    }
  }
  return pages;
}

// The same through malloc.
inline FreshPages MallocAndLook(size_t count, size_t size, std::vector<void*>* blocks) {
  return AllocateAndLook(
      count, size, [](size_t n) { return malloc(n); }, blocks);
}

}  // namespace rulloc::test

#endif  // RULLOC_TESTS_RESIDENT_PAGES_H_
