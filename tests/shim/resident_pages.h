// Which pages of blocks malloc hands out are resident before anything writes
// them, for the tests of the page-population option.
#ifndef RULLOC_TESTS_SHIM_RESIDENT_PAGES_H_
#define RULLOC_TESTS_SHIM_RESIDENT_PAGES_H_

#include <stdlib.h>
#include <sys/mman.h>

#include <cstdint>
#include <vector>

#include "platform/pages.h"

namespace rulloc::test {

struct FreshPages {
  size_t count = 0;     // pages wholly inside the blocks, past their first
  size_t resident = 0;  // of those, resident with nothing written to them
};

// Mallocs `count` blocks of `size` bytes into `blocks` and looks at their
// pages past the one each starts in (a thread cache may write there).
inline FreshPages MallocAndLook(size_t count, size_t size, std::vector<void*>* blocks) {
  const uintptr_t page = platform::PageSize();
  FreshPages pages;
  for (size_t i = 0; i < count; ++i) {
    blocks->push_back(malloc(size));
    const uintptr_t start = reinterpret_cast<uintptr_t>(blocks->back());
    for (uintptr_t at = (start + page) & ~(page - 1); at + page <= start + size; at += page) {
      unsigned char resident = 0;
      if (mincore(reinterpret_cast<void*>(at), page, &resident) != 0) continue;
      ++pages.count;
      pages.resident += resident & 1;
    }
  }
  return pages;
}

}  // namespace rulloc::test

#endif  // RULLOC_TESTS_SHIM_RESIDENT_PAGES_H_
