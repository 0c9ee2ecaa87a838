#include "core/page_map.h"

#include "platform/pages.h"

namespace rulloc::internal {

constinit std::atomic<PageMap::Leaf*> PageMap::root_[PageMap::kRootSize] = {};

bool PageMap::Register(const void* base, size_t size, RegionHeader* header) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(base) >> kGranuleShift;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(base) + size - 1) >> kGranuleShift;
  for (uintptr_t granule = first; granule <= last; ++granule) {
    std::atomic<Leaf*>& slot = root_[granule >> kLeafBits];
    Leaf* leaf = slot.load(std::memory_order_acquire);
    if (leaf == nullptr) {
      if (header == nullptr) continue;
      auto* fresh = static_cast<Leaf*>(platform::Reserve(sizeof(Leaf), platform::PageSize(), true));
      if (fresh == nullptr) return false;
      if (slot.compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) {
        leaf = fresh;
      } else {
        platform::Release(fresh, sizeof(Leaf));  // another thread won
      }
    }
    leaf->entries[granule & (kLeafSize - 1)].store(reinterpret_cast<uintptr_t>(header),
                                                   std::memory_order_relaxed);
  }
  return true;
}

void PageMap::SetTag(const void* base, size_t size, uintptr_t tag) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(base) >> kGranuleShift;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(base) + size - 1) >> kGranuleShift;
  for (uintptr_t granule = first; granule <= last; ++granule) {
    Leaf* leaf = root_[granule >> kLeafBits].load(std::memory_order_acquire);
    std::atomic<uintptr_t>& entry = leaf->entries[granule & (kLeafSize - 1)];
    entry.store((entry.load(std::memory_order_relaxed) & ~kTagMask) | tag,
                std::memory_order_relaxed);
  }
}

}  // namespace rulloc::internal
