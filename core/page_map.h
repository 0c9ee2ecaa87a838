// The page map: which region owns an address, in O(1), for every address.
//
//   address bits  47 ........ 32 31 ........ 16 15 ....... 0
//                 [ root index ] [ leaf index ] [ in granule ]
//
//   root[2^16] ──► leaf[2^16] ──► entry            (one per 64 KiB granule)
//
//   entry:  63 ........................ 16 15 ........ 0
//           [ RegionHeader* (64 KiB aligned) ][   tag    ]
//
// Leaves are mapped on first use and never unmapped; untouched parts of a
// leaf cost no memory, and the pages of it that only an unregistered range
// used (a huge block of 32 MiB or more) go back to the OS. Every granule of every region is
// registered, so a pointer that maps to nullptr is certainly not Rulloc's: free() can reject it
// without touching the memory it points to. The tag, in the low bits a
// region header's alignment leaves clear, lets free() skip the header:
// non-zero means "a small region of the process allocator, bucket tag-1,
// laid out as every unguarded region of that bucket" (see SmallLayout).
#ifndef RULLOC_CORE_PAGE_MAP_H_
#define RULLOC_CORE_PAGE_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rulloc::internal {

struct RegionHeader;

inline constexpr size_t kGranuleShift = 16;
inline constexpr size_t kGranule = size_t{1} << kGranuleShift;

class PageMap {
 public:
  static constexpr uintptr_t kTagMask = kGranule - 1;

  // The region header and tag of `ptr`'s granule (0 if none).
  static uintptr_t Entry(const void* ptr) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(ptr);
    if (addr >> kAddressBits != 0) return 0;
    const uintptr_t granule = addr >> kGranuleShift;
    Leaf* leaf = root_[granule >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) return 0;
    return leaf->entries[granule & (kLeafSize - 1)].load(std::memory_order_relaxed);
  }
  static RegionHeader* Lookup(const void* ptr) {
    return reinterpret_cast<RegionHeader*>(Entry(ptr) & ~kTagMask);
  }

  // Maps every granule of [base, base+size) to `header`, with no tag.
  // `base` is granule aligned. Returns false if a leaf could not be mapped.
  static bool Register(const void* base, size_t size, RegionHeader* header);
  static void Unregister(const void* base, size_t size);
  // Sets the tag of every granule of the registered region [base, base+size).
  static void SetTag(const void* base, size_t size, uintptr_t tag);

 private:
  static constexpr size_t kAddressBits = 48;
  static constexpr size_t kLeafBits = 16;
  static constexpr size_t kLeafSize = size_t{1} << kLeafBits;
  static constexpr size_t kRootSize = size_t{1} << (kAddressBits - kGranuleShift - kLeafBits);

  struct Leaf {
    std::atomic<uintptr_t> entries[kLeafSize];
  };

  static std::atomic<Leaf*> root_[kRootSize];
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_PAGE_MAP_H_
