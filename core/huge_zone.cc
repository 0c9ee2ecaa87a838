#include "core/huge_zone.h"

#include <atomic>
#include <cstdint>

namespace rulloc::internal {
namespace {

constexpr uintptr_t kSlot = uintptr_t{1} << 30;
constexpr uintptr_t kZoneGap = uintptr_t{64} << 30;
// The zone spans at most this much below its top, and never reaches below
// kLowest (the program's binary and brk heap may lie further down).
constexpr uintptr_t kZoneSpan = uintptr_t{16} << 40;
constexpr uintptr_t kLowest = uintptr_t{1} << 36;
// A mapping larger than this is placed by the kernel: one would use up the
// zone (a failed malloc of terabytes too).
constexpr size_t kLargestZoned = size_t{16} << 30;
// After this many places in a row were taken, the zone is given up: the
// program's own mappings have reached it.
constexpr int kMaxTakenInARow = 4;
// zone_next values: 0 before the first huge mapping, kNoZone when there is
// no zone (no room in the address space, or given up).
constexpr uintptr_t kNoZone = 1;

constinit std::atomic<uintptr_t> zone_next{0};
constinit std::atomic<uintptr_t> zone_floor{0};
constinit std::atomic<int> taken_in_a_row{0};

// The zone's top: kZoneGap below where the kernel places a mapping now.
uintptr_t ZoneTop() {
  const size_t page = platform::PageSize();
  void* probe = platform::Reserve(page, page, /*commit=*/false);
  if (probe == nullptr) return 0;  // asked again next time
  const auto bottom = reinterpret_cast<uintptr_t>(probe);
  platform::Release(probe, page);
  if (bottom < kLowest + kZoneGap + kSlot) return kNoZone;
  return (bottom - kZoneGap) & ~(kSlot - 1);
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define RULLOC_HUGE_ZONE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RULLOC_HUGE_ZONE 0
#endif
#endif
#if !defined(RULLOC_HUGE_ZONE) && defined(__linux__)
#define RULLOC_HUGE_ZONE 1
#endif

void* ReserveInHugeZone(size_t size, size_t alignment, platform::Charge charge) {
#if !RULLOC_HUGE_ZONE
  // Only Linux takes the huge-page advice this zone keeps apart. Nor under
  // AddressSanitizer: the cursor moves only down, so each new mapping has
  // shadow pages of its own, which its runtime here never gives back (a
  // fuzzing run grew to 2.5 GB).
  (void)size;
  (void)alignment;
  (void)charge;
  return nullptr;
#else
  if (size > kLargestZoned || alignment > kLargestZoned) return nullptr;
  uintptr_t next = zone_next.load(std::memory_order_acquire);
  if (next == 0) {
    const uintptr_t top = ZoneTop();
    if (top == 0) return nullptr;
    const uintptr_t floor = top > kLowest + kZoneSpan ? top - kZoneSpan : kLowest;
    zone_floor.store(floor, std::memory_order_relaxed);
    // (A thread that lost the race takes the winner's value, into `next`.)
    if (zone_next.compare_exchange_strong(next, top, std::memory_order_acq_rel)) next = top;
  }
  const uintptr_t floor = zone_floor.load(std::memory_order_relaxed);
  for (;;) {
    if (next == kNoZone || next < floor + size + alignment) return nullptr;
    const uintptr_t at = (next - size) & ~(uintptr_t{alignment} - 1);
    if (!zone_next.compare_exchange_weak(next, at, std::memory_order_relaxed)) continue;
    bool taken;
    if (void* mapped = platform::ReserveAt(reinterpret_cast<void*>(at), size, charge, &taken)) {
      taken_in_a_row.store(0, std::memory_order_relaxed);
      return mapped;
    }
    if (!taken) {
      // Refused (no memory, a limit): the place goes back if still next.
      uintptr_t expected = at;
      zone_next.compare_exchange_strong(expected, next, std::memory_order_relaxed);
      return nullptr;
    }
    if (taken_in_a_row.fetch_add(1, std::memory_order_relaxed) + 1 >= kMaxTakenInARow) {
      zone_next.store(kNoZone, std::memory_order_relaxed);
      return nullptr;
    }
    next = at;  // passed over; one more place
  }
#endif
}

}  // namespace rulloc::internal
