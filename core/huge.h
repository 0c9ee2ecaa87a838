// Huge allocations: one mapping each, returned to the OS on free.
//
//   mapping base (64 KiB aligned, or `alignment` aligned)
//   ┌────────────┬──────────┬──────────────────────────────────┐
//   │ HugeRegion │ (padding)│ payload ...                      │
//   └────────────┴──────────┴──────────────────────────────────┘
//                            ▲ base + payload_offset
//
// Live mappings are kept on lists sharded by address, each with its own
// lock, so that an allocator can unmap them all when it is destroyed.
#ifndef RULLOC_CORE_HUGE_H_
#define RULLOC_CORE_HUGE_H_

#include <cstddef>

#include "concurrency/spin_lock.h"
#include "core/region.h"

namespace rulloc::internal {

struct HugeRegion {
  RegionHeader header;
  size_t payload_offset;

  void* payload() { return reinterpret_cast<char*>(this) + payload_offset; }
  size_t usable() const { return header.size - payload_offset; }
};

struct HugeStats {
  size_t blocks_in_use = 0;
  size_t bytes_mapped = 0;
};

class HugeBlocks {
 public:
  constexpr explicit HugeBlocks(Heap* heap) : heap_(heap) {}

  void* Allocate(size_t size, size_t alignment);
  // `region` is the page map's answer for `p`.
  void Free(HugeRegion* region, void* p);
  static size_t UsableSize(HugeRegion* region, const void* p);
  void ReleaseAll();
  HugeStats Stats();
  void LockAll();
  void UnlockAll();

 private:
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    SpinLock lock;
    RegionList list;
    size_t bytes = 0;
  };
  Shard& ShardOf(const void* base);

  Heap* const heap_;
  Shard shards_[kShards];
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_HUGE_H_
