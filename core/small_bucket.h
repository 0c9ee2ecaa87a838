// Small buckets: one per size class; slabs of equal blocks with no headers.
//
// A small region (64 KiB .. 1 MiB, sized for at least 16 blocks):
//
//   ┌──────────────┬─────────────┬─────────────┬────────┬────────┬─────┬───────────┐
//   │ RegionHeader │ SmallRegion │ allocated / │ block0 │ block1 │ ... │ uncarved  │
//   │              │ fields      │ aligned bits│        │        │     │ (bump)    │
//   └──────────────┴─────────────┴─────────────┴────────┴────────┴─────┴───────────┘
//                                               ▲ first_offset
//   A free block holds the next free block of its region in its first word.
//
// A bucket (one cache line of hot state, its own lock):
//
//   SmallBucket ── lock
//              ├── partial: regions with a free or uncarved block ─► R ⇄ R ⇄ R
//              └── full:    regions with every block in use       ─► R ⇄ R
//
// Empty regions are unmapped, except kReserveRegions kept for reuse.
#ifndef RULLOC_CORE_SMALL_BUCKET_H_
#define RULLOC_CORE_SMALL_BUCKET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/spin_lock.h"
#include "core/region.h"

namespace rulloc::internal {

class SmallBucket;

struct SmallRegion {
  RegionHeader header;
  SmallBucket* bucket;
  uint32_t block_size;
  uint32_t capacity;      // blocks that fit in the region
  uint32_t carved;        // blocks handed out at least once (bump index)
  uint32_t used;          // blocks not free in the region
  uint32_t first_offset;  // offset of block 0 from the region base
  bool in_full_list;
  std::atomic<bool> has_aligned;  // some block was handed out at an offset
  void* free_list;
  std::atomic<uint64_t>* allocated_bits;  // one bit per block: handed out
  std::atomic<uint64_t>* aligned_bits;    // one bit per block: handed out at an offset

  char* base() { return reinterpret_cast<char*>(this); }
  char* BlockAt(uint32_t index) { return base() + first_offset + size_t{index} * block_size; }
  // Index of the block that contains `p`, and whether `p` is its start.
  uint32_t IndexOf(const void* p, bool* at_start) const;
  // The start of the block holding `p`, or nullptr if `p` is not a pointer
  // this region handed out (interior pointer of a plain block, or header).
  void* BlockStart(const void* p) const;
};

struct SmallBucketStats {
  size_t block_size = 0;
  size_t blocks_in_use = 0;     // handed out of the bucket (to users or caches)
  size_t blocks_free = 0;       // free or uncarved in the bucket's regions
  size_t regions = 0;
  size_t bytes_mapped = 0;
  size_t regions_mapped = 0;    // cumulative
  size_t regions_unmapped = 0;  // cumulative
};

class alignas(64) SmallBucket {
 public:
  static constexpr size_t kReserveRegions = 1;

  constexpr SmallBucket(uint32_t block_size, Heap* heap)
      : block_size_(block_size), region_size_(RegionSizeFor(block_size)), heap_(heap) {}
  SmallBucket(const SmallBucket&) = delete;
  SmallBucket& operator=(const SmallBucket&) = delete;

  static constexpr uint32_t RegionSizeFor(uint32_t block_size) {
    uint32_t size = 64 * 1024;
    while (size < block_size * 16u) size *= 2;
    return size;
  }

  uint32_t block_size() const { return block_size_; }

  // Fills out[0..n) with blocks; returns how many it got (0 when the OS
  // refuses memory). One lock acquisition for the whole batch.
  size_t AllocateBatch(void** out, size_t n);
  // A block whose address is `alignment`-aligned (alignment <= block size);
  // the pointer may be inside the block.
  void* AllocateAligned(size_t alignment);
  // Returns blocks to their regions. Each must be a pointer this bucket
  // handed out; anything else is reported as heap misuse.
  void FreeBatch(void* const* blocks, size_t n);
  void Free(void* block) { FreeBatch(&block, 1); }

  // Unmaps every region (the owning allocator is being destroyed).
  void ReleaseAll();
  SmallBucketStats Stats();

 private:
  SmallRegion* NewRegion();
  void FreeLocked(void* p);
  void* PopLocked(SmallRegion* r);

  SpinLock lock_;
  const uint32_t block_size_;
  const uint32_t region_size_;
  Heap* const heap_;
  RegionList partial_;
  RegionList full_;
  size_t empty_regions_ = 0;
  size_t blocks_in_use_ = 0;
  size_t blocks_free_ = 0;
  size_t regions_mapped_ = 0;
  size_t regions_unmapped_ = 0;
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_SMALL_BUCKET_H_
