// Small regions cut in order from shared chunks, and given back without
// giving up their address space.
//
//   16 MiB chunk, 2 MiB aligned
//   ┌───────────┬───────────┬───────────┬─────┬─────────────┐
//   │ region    │ region    │ region    │ ... │ not yet cut │   regions of any bucket,
//   │ (16 B)    │ (48 B)    │ (16 B)    │     │             │   cut in order
//   └───────────┴───────────┴───────────┴─────┴─────────────┘
//
//   retained (decommitted, address space kept), sorted, neighbours merged:
//   [ base, size ] [ base, size ] ...   ─► cut again before any new chunk
//
// One mmap per 64 regions of 256 KiB; neighbouring regions share one kernel
// mapping. Pages fault in on touch, or a bucket populates them ahead
// (SmallBucket::kPopulateAfterBytes). Regions that empty go back in
// batches (Return): their pages are given back with madvise(MADV_DONTNEED),
// which, unlike munmap, does not take the lock that other threads' page
// faults wait on, and the range is kept for the next regions. A purge with
// no age (trim, or an allocation that ran out of memory) unmaps what is
// kept; the decay unmaps what stayed unused for its time. The chunks are
// not advised as huge pages (see docs/design.md,
// "Region carving"); on a system whose transparent huge pages are
// "always", the kernel backs them so anyway.
#ifndef RULLOC_CORE_REGION_CARVER_H_
#define RULLOC_CORE_REGION_CARVER_H_

#include <cstddef>
#include <cstdint>

namespace rulloc::internal {

class RegionCarver {
 public:
  // Memory for a small region of `size` bytes (a granule multiple that
  // divides 2 MiB), or nullptr when it must be mapped on its own (Windows,
  // where VirtualFree releases whole reservations only) or the OS refuses.
  static void* Carve(size_t size);
  // Gives back the pages of a small region whose page-map entries are
  // gone, in batches: up to kPendingBytes wait, then go back sorted, with
  // neighbouring regions in one call, and their ranges are retained.
  static void Return(void* base, size_t size);
  // Gives back every region waiting in the batch now.
  static void Flush();
  // Unmaps the retained ranges kept for `max_age_ms` or longer (0: all,
  // and the current chunk's uncut tail); returns the bytes.
  static size_t ReleaseRetained(uint64_t max_age_ms = 0);
  // Address space retained (no resident pages).
  static size_t RetainedBytes();
  static constexpr size_t kPendingRegions = 64;
  static constexpr size_t kPendingBytes = size_t{8} << 20;
  // Ranges retained at most; past that, a range is unmapped instead.
  static constexpr size_t kRetainedRanges = 512;
  // Held across fork(), so that the child never inherits them locked.
  static void LockForFork();
  static void UnlockAfterFork();
  // In a fork child, with the locks held: gives back and retains the
  // batches other threads of the parent were giving back (gone with them).
  static void AdoptInFlightAfterFork();
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_REGION_CARVER_H_
