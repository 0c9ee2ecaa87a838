#include "core/region.h"

#include <new>

#include "core/page_map.h"
#include "core/region_carver.h"
#include "core/runtime_options.h"
#include "platform/pages.h"

namespace rulloc::internal {

RegionHeader* MapRegion(RegionKind kind, size_t size, size_t alignment, Heap* heap,
                        platform::Charge charge) {
  if (alignment < kGranule) alignment = kGranule;
  const bool small = kind == RegionKind::kSmall;
  void* base = small && alignment == kGranule ? RegionCarver::Carve(size) : nullptr;
  if (base == nullptr) base = platform::Reserve(size, alignment, /*commit=*/true, charge);
  if (base == nullptr) return nullptr;
  return InstallRegion(base, kind, size, heap);
}

RegionHeader* InstallRegion(void* base, RegionKind kind, size_t size, Heap* heap) {
  auto* region = new (base) RegionHeader{kind, 0, size, heap};
  if (!PageMap::Register(base, size, region)) {
    PageMap::Unregister(base, size);
    platform::Release(base, size);
    return nullptr;
  }
  return region;
}

void UnmapRegion(RegionHeader* region) {
  const size_t size = region->size;
  const bool small = region->kind == RegionKind::kSmall;
  PageMap::Unregister(region, size);
  // A hardened small region carries guard pages (PROT_NONE) where its
  // bucket's layout puts them: its address space is not kept for another.
  if (small && !runtime_options.hardened) {
    RegionCarver::Return(region, size);
  } else {
    platform::Release(region, size);
  }
}

}  // namespace rulloc::internal
