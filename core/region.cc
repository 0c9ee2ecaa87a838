#include "core/region.h"

#include <new>

#include "core/huge_page_carver.h"
#include "core/page_map.h"
#include "platform/pages.h"

namespace rulloc::internal {

RegionHeader* MapRegion(RegionKind kind, size_t size, size_t alignment, Heap* heap) {
  if (alignment < kGranule) alignment = kGranule;
  const bool small = kind == RegionKind::kSmall;
  void* base = small && alignment == kGranule ? HugePageCarver::Carve(size) : nullptr;
  if (base == nullptr) base = platform::Reserve(size, alignment, /*commit=*/true);
  if (base == nullptr) return nullptr;
  auto* region = new (base) RegionHeader{kind, 0, size, heap};
  if (!PageMap::Register(base, size, region)) {
    PageMap::Unregister(base, size);
    platform::Release(base, size);
    return nullptr;
  }
  if (small) HugePageCarver::Mapped(size);
  return region;
}

void UnmapRegion(RegionHeader* region) {
  const size_t size = region->size;
  if (region->kind == RegionKind::kSmall) HugePageCarver::Unmapped(size);
  PageMap::Unregister(region, size);
  platform::Release(region, size);
}

}  // namespace rulloc::internal
