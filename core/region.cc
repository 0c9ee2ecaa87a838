#include "core/region.h"

#include <new>

#include "core/page_map.h"
#include "core/region_carver.h"
#include "core/runtime_options.h"
#include "platform/pages.h"

namespace rulloc::internal {

namespace {
// Calls `f(from, bytes)` for the parts of `region` the page map names.
template <typename F>
void ForEachNamedPart(void* base, size_t size, uint32_t gap_granules, F f) {
  if (gap_granules == 0) return f(base, size);
  const size_t skipped = (size_t{1} + gap_granules) * kGranule;
  f(base, kGranule);
  f(static_cast<char*>(base) + skipped, size - skipped);
}
}  // namespace

RegionHeader* MapRegion(RegionKind kind, size_t size, size_t alignment, Heap* heap,
                        platform::Charge charge, uint32_t gap_granules) {
  if (alignment < kGranule) alignment = kGranule;
  const bool small = kind == RegionKind::kSmall;
  void* base = small && alignment == kGranule ? RegionCarver::Carve(size) : nullptr;
  if (base == nullptr) base = platform::Reserve(size, alignment, /*commit=*/true, charge);
  if (base == nullptr) return nullptr;
  return InstallRegion(base, kind, size, heap, gap_granules);
}

RegionHeader* InstallRegion(void* base, RegionKind kind, size_t size, Heap* heap,
                            uint32_t gap_granules) {
  auto* region = new (base) RegionHeader{kind, gap_granules, size, heap};
  bool registered = true;
  ForEachNamedPart(base, size, gap_granules, [&](void* from, size_t bytes) {
    registered = registered && PageMap::Register(from, bytes, region);
  });
  if (!registered) {
    ForEachNamedPart(base, size, gap_granules, PageMap::Unregister);
    platform::Release(base, size);
    return nullptr;
  }
  return region;
}

void UnmapRegion(RegionHeader* region) {
  const size_t size = region->size;
  const bool small = region->kind == RegionKind::kSmall;
  ForEachNamedPart(region, size, region->gap_granules, PageMap::Unregister);
  // A hardened small region carries guard pages (PROT_NONE) where its
  // bucket's layout puts them: its address space is not kept for another.
  if (small && !runtime_options.hardened) {
    RegionCarver::Return(region, size);
  } else {
    platform::Release(region, size);
  }
}

}  // namespace rulloc::internal
