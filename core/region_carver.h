// Small regions cut in order from shared 2 MiB chunks.
//
//   2 MiB chunk, 2 MiB aligned
//   ┌───────────┬───────────┬───────────┬─────┬─────────────┐
//   │ region    │ region    │ region    │ ... │ not yet cut │   regions of any bucket,
//   │ (16 B)    │ (48 B)    │ (16 B)    │     │             │   cut in order
//   └───────────┴───────────┴───────────┴─────┴─────────────┘
//
// One mmap per eight 256 KiB regions instead of an over-sized mmap and two
// trimming munmaps per region; neighbouring regions share one kernel
// mapping. Pages are touched on demand, as in a region mapped on its own.
// Regions that empty go back in batches (Return), neighbours in one munmap.
// The chunks are not advised as huge pages (see docs/design.md, "Region
// carving"); on a system whose transparent huge pages are "always", the
// kernel backs them so anyway.
#ifndef RULLOC_CORE_REGION_CARVER_H_
#define RULLOC_CORE_REGION_CARVER_H_

#include <cstddef>

namespace rulloc::internal {

class RegionCarver {
 public:
  // Memory for a small region of `size` bytes (a granule multiple that
  // divides 2 MiB), or nullptr when it must be mapped on its own (Windows,
  // where VirtualFree releases whole reservations only) or the OS refuses.
  static void* Carve(size_t size);
  // Gives back the pages of a small region whose page-map entries are
  // gone, in batches: up to kPendingBytes wait, then go back sorted, with
  // neighbouring regions in one munmap (each munmap takes the lock that
  // other threads' page faults wait on, and interrupts the CPUs they run
  // on to flush their TLBs).
  static void Return(void* base, size_t size);
  // Gives back every region waiting in the batch now.
  static void Flush();
  static constexpr size_t kPendingRegions = 64;
  static constexpr size_t kPendingBytes = size_t{8} << 20;
  // Held across fork(), so that the child never inherits them locked.
  static void LockForFork();
  static void UnlockAfterFork();
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_REGION_CARVER_H_
