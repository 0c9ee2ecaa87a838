#include "core/c_api.h"

#include <errno.h>

#include <cstdint>
#include <cstring>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/stats_report.h"

using rulloc::DefaultAllocator;
using rulloc::internal::CachedFreeSizedUnlessNull;
using rulloc::internal::CachedFreeUnlessNull;
using rulloc::internal::CachedMalloc;
using rulloc::internal::DefaultClasses;
using rulloc::internal::RegionHeader;
using rulloc::internal::RegionKind;

extern "C" {

void* rulloc_malloc(size_t size) { return CachedMalloc(size); }

void rulloc_free(void* ptr) { CachedFreeUnlessNull(ptr); }

void rulloc_free_sized(void* ptr, size_t size) { CachedFreeSizedUnlessNull(ptr, size); }

void rulloc_free_aligned_sized(void* ptr, size_t /*alignment*/, size_t size) {
  if (ptr != nullptr) rulloc::internal::FreeSizedGeneral(ptr, size, /*aligned=*/true);
}

void* rulloc_calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (bytes - 1 < DefaultClasses::kMaxSize) {  // from the thread cache, cleared
    void* p = rulloc::internal::CachedAllocate(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  return rulloc::internal::DefaultHeap().AllocateZeroed(bytes, rulloc::kMinAlignment);
}

void* rulloc_realloc(void* ptr, size_t size) {
  if (ptr == nullptr) return rulloc_malloc(size);
  if (size == 0) {
    rulloc_free(ptr);
    return nullptr;
  }
  // A live block of a tagged small region: its size class is its usable
  // size, with no header read. A block of a large bucket goes to the heap
  // with the region just looked up, and its bucket validates, measures and
  // resizes it with one look at its header; huge and other blocks go
  // through the heap from the start.
  size_t bucket;
  size_t usable;
  if (rulloc::internal::IsTaggedBlock(ptr, &bucket) &&
      !rulloc::internal::MaybeCached(ptr, bucket)) {
    usable = DefaultClasses::BlockSize(bucket);
  } else {
    RegionHeader* region = rulloc::internal::RegionHolding(ptr);
    if (region != nullptr && region->kind == RegionKind::kLarge &&
        region->heap == &rulloc::internal::DefaultHeap()) {
      return rulloc::internal::DefaultHeap().ReallocateIn(region, ptr, size, rulloc::kMinAlignment);
    }
    rulloc::internal::CheckNotFreed(region, ptr, "realloc of a freed pointer");
    // (The heap reports a pointer that is no live block.)
    if (region == nullptr || region->kind != RegionKind::kSmall ||
        !rulloc::internal::DefaultHeap().TryUsableSize(ptr, &usable)) {
      return DefaultAllocator().reallocate(ptr, size);
    }
  }
  if (size <= usable && size >= usable / 2) return ptr;  // fits without much waste
  if (size > DefaultClasses::kMaxSize) return DefaultAllocator().reallocate(ptr, size);
  // A growing buffer of kGrowInPlaceMin or more moves to a large bucket,
  // which can grow it in place next time.
  const bool into_large = size > usable && size >= rulloc::internal::Heap::kGrowInPlaceMin &&
                          !rulloc::runtime_options.hardened;
  void* fresh =
      into_large ? rulloc::internal::DefaultHeap().AllocateGrowable(size) : CachedMalloc(size);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, ptr, size < usable ? size : usable);
  // Checked again: a free of `ptr` racing with this realloc (the caller's
  // bug) is reported rather than cached twice.
  rulloc::internal::CachedFree(ptr);
  return fresh;
}

void* rulloc_aligned_alloc(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment <= rulloc::kMinAlignment) return rulloc_malloc(size);
  return DefaultAllocator().allocate(size, alignment);
}

void* rulloc_memalign(size_t alignment, size_t size) {
  // glibc's memalign rounds an alignment that is not a power of two up.
  if (alignment <= rulloc::kMinAlignment) return rulloc_malloc(size);
  if (alignment > (SIZE_MAX >> 1) + 1) {
    errno = EINVAL;
    return nullptr;
  }
  size_t rounded = rulloc::kMinAlignment;
  while (rounded < alignment) rounded <<= 1;
  return DefaultAllocator().allocate(size, rounded);
}

int rulloc_posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  const int saved = errno;
  void* p = rulloc_aligned_alloc(alignment, size);
  if (p == nullptr) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  return 0;
}

size_t rulloc_usable_size(const void* ptr) {
  return ptr == nullptr ? 0 : DefaultAllocator().usable_size(ptr);
}

void rulloc_thread_cache_flush(void) {
  rulloc::FlushThreadCache();
  rulloc::DrainTransferCaches();
}

size_t rulloc_trim(void) {
  rulloc::FlushThreadCache();
  rulloc::DrainTransferCaches();
  rulloc::ReleaseRetiredCachePages();
  return DefaultAllocator().trim();
}

}  // extern "C"

int rulloc_stats_write(int fd, int json) {
  const auto format =
      json != 0 ? rulloc::StatsReportFormat::kJson : rulloc::StatsReportFormat::kText;
  return rulloc::WriteStatsReport(fd, format) ? 0 : -1;
}
