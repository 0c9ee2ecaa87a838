#include "core/huge_zone.h"

#include <atomic>
#include <cstdint>

namespace rulloc::internal {
namespace {

constexpr uintptr_t kSlot = uintptr_t{1} << 30;
constexpr uintptr_t kZoneGap = uintptr_t{64} << 30;
// The zone ends here: below, the program's heap (brk) and binary may lie.
constexpr uintptr_t kZoneFloor = uintptr_t{1} << 36;
// zone_next values: 0 before the first huge mapping, kNoZone when the
// address space has no room for a zone.
constexpr uintptr_t kNoZone = 1;

constinit std::atomic<uintptr_t> zone_next{0};

// The zone's top: kZoneGap below where the kernel places a mapping now.
uintptr_t ZoneTop() {
  const size_t page = platform::PageSize();
  void* probe = platform::Reserve(page, page, /*commit=*/false);
  if (probe == nullptr) return 0;  // asked again next time
  const auto bottom = reinterpret_cast<uintptr_t>(probe);
  platform::Release(probe, page);
  if (bottom < kZoneFloor + kZoneGap + kSlot) return kNoZone;
  return (bottom - kZoneGap) & ~(kSlot - 1);
}

}  // namespace

void* ReserveInHugeZone(size_t size, size_t alignment, platform::Charge charge) {
  uintptr_t next = zone_next.load(std::memory_order_relaxed);
  if (next == 0) {
    const uintptr_t top = ZoneTop();
    if (top == 0) return nullptr;
    if (!zone_next.compare_exchange_strong(next, top, std::memory_order_relaxed)) {
      // Another thread placed it: `next` is its value.
    } else {
      next = top;
    }
  }
  // Two places at most: a range taken (by the program's own mappings, once
  // they reach this far down) is passed over once, then the kernel chooses.
  for (int tries = 0; tries < 2;) {
    if (next == kNoZone || next < kZoneFloor + size + alignment) return nullptr;
    const uintptr_t at = (next - size) & ~(uintptr_t{alignment} - 1);
    if (!zone_next.compare_exchange_weak(next, at, std::memory_order_relaxed)) continue;
    if (void* mapped = platform::ReserveAt(reinterpret_cast<void*>(at), size, charge)) {
      return mapped;
    }
    next = at;
    ++tries;
  }
  return nullptr;
}

}  // namespace rulloc::internal
