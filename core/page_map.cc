#include "core/page_map.h"

#include <algorithm>

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

void PageMap::Unregister(const void* base, size_t size) {
  const size_t page = platform::PageSize();
  const size_t per_page = page / sizeof(uintptr_t);
  uintptr_t granule = reinterpret_cast<uintptr_t>(base) >> kGranuleShift;
  const uintptr_t end = ((reinterpret_cast<uintptr_t>(base) + size - 1) >> kGranuleShift) + 1;
  while (granule < end) {
    Leaf* leaf = root_[granule >> kLeafBits].load(std::memory_order_acquire);
    const uintptr_t leaf_end = std::min(end, ((granule >> kLeafBits) + 1) << kLeafBits);
    if (leaf == nullptr) {
      granule = leaf_end;
      continue;
    }
    // Whole pages of entries that are all this range's read back as zero
    // (no region) once given back; the entries around them, or all of them
    // where that is refused (mlockall) or not so (Windows), are cleared.
    const auto clear = [leaf](uintptr_t from, uintptr_t to) {
      for (; from < to; ++from)
        leaf->entries[from & (kLeafSize - 1)].store(0, std::memory_order_relaxed);
    };
    const uintptr_t pages_begin = (granule + per_page - 1) / per_page * per_page;
    const uintptr_t pages_end = leaf_end / per_page * per_page;
    if (pages_begin < pages_end && platform::kDecommitReadsZero &&
        platform::Decommit(&leaf->entries[pages_begin & (kLeafSize - 1)],
                           (pages_end - pages_begin) * sizeof(uintptr_t))) {
      clear(granule, pages_begin);
      clear(pages_end, leaf_end);
    } else {
      clear(granule, leaf_end);
    }
    granule = leaf_end;
  }
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
