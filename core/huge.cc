#include "core/huge.h"

#include <cstdint>

#include "core/diagnostics.h"
#include "core/page_map.h"
#include "platform/pages.h"

namespace rulloc::internal {

HugeBlocks::Shard& HugeBlocks::ShardOf(const void* base) {
  return shards_[(reinterpret_cast<uintptr_t>(base) >> kGranuleShift) % kShards];
}

void* HugeBlocks::Allocate(size_t size, size_t alignment) {
  const size_t offset = AlignUp(sizeof(HugeRegion), alignment);
  const size_t page = platform::PageSize();
  if (size > (SIZE_MAX >> 2) - offset - page) return nullptr;
  const size_t mapping = AlignUp(offset + size, page);
  RegionHeader* header = MapRegion(RegionKind::kHuge, mapping, alignment, heap_);
  if (header == nullptr) return nullptr;
  auto* region = reinterpret_cast<HugeRegion*>(header);
  region->payload_offset = offset;
  Shard& shard = ShardOf(region);
  SpinLockHolder hold(shard.lock);
  shard.list.PushFront(header);
  shard.bytes += mapping;
  return region->payload();
}

void HugeBlocks::Free(HugeRegion* region, void* p) {
  if (p != region->payload()) ReportHeapMisuse("free of a pointer into the middle of a block", p);
  Shard& shard = ShardOf(region);
  {
    SpinLockHolder hold(shard.lock);
    shard.list.Remove(&region->header);
    shard.bytes -= region->header.size;
  }
  UnmapRegion(&region->header);
}

size_t HugeBlocks::UsableSize(HugeRegion* region, const void* p) {
  if (p != region->payload()) ReportHeapMisuse("usable_size of an invalid pointer", p);
  return region->usable();
}

void HugeBlocks::ReleaseAll() {
  for (Shard& shard : shards_) {
    SpinLockHolder hold(shard.lock);
    while (RegionHeader* r = shard.list.PopFront()) UnmapRegion(r);
    shard.bytes = 0;
  }
}

void HugeBlocks::LockAll() {
  for (Shard& shard : shards_) shard.lock.lock();
}

void HugeBlocks::UnlockAll() {
  for (Shard& shard : shards_) shard.lock.unlock();
}

HugeStats HugeBlocks::Stats() {
  HugeStats s;
  for (Shard& shard : shards_) {
    SpinLockHolder hold(shard.lock);
    s.blocks_in_use += shard.list.size();
    s.bytes_mapped += shard.bytes;
  }
  return s;
}

}  // namespace rulloc::internal
