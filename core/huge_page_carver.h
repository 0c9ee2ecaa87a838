// Small regions carved from shared transparent huge pages, once the process
// holds many of them.
//
//   2 MiB chunk, 2 MiB aligned, MADV_HUGEPAGE
//   ┌───────────┬───────────┬───────────┬─────┬─────────────┐
//   │ region    │ region    │ region    │ ... │ not yet cut │   regions of any bucket,
//   │ (16 B)    │ (48 B)    │ (16 B)    │     │             │   cut in order
//   └───────────┴───────────┴───────────┴─────┴─────────────┘
//
// The first touch of a chunk maps a whole huge page: one page fault instead
// of 512, and one TLB entry. That commits the whole chunk, so chunks are
// used only once small regions take kThresholdBytes: a small program keeps
// 4 KiB pages and its small footprint. A region that empties is unmapped on
// its own, which splits its huge page (and returns the memory), as any
// decommit inside it does.
#ifndef RULLOC_CORE_HUGE_PAGE_CARVER_H_
#define RULLOC_CORE_HUGE_PAGE_CARVER_H_

#include <cstddef>

namespace rulloc::internal {

class HugePageCarver {
 public:
  static constexpr size_t kThresholdBytes = size_t{32} << 20;

  // Memory for a small region of `size` bytes (a granule multiple that
  // divides 2 MiB), or nullptr when regions should be mapped on their own:
  // huge pages are off, hardened mode is on (its guard pages would split
  // them), small regions take less than kThresholdBytes, or the OS refuses.
  static void* Carve(size_t size);
  // Bookkeeping of the bytes held by small regions, however they were mapped.
  static void Mapped(size_t size);
  static void Unmapped(size_t size);
  // Held across fork(), so that the child never inherits it locked.
  static void LockForFork();
  static void UnlockAfterFork();
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_HUGE_PAGE_CARVER_H_
