// rulloc::BasicAllocator: a standalone allocator instance.
//
//   BasicAllocator<Table>
//   ┌──────────────────────────── Heap ─────────────────────────────┐
//   │ small buckets (Table::kSizes) │ large buckets │ huge mappings │
//   └───────────────────────────────────────────────────────────────┘
//
// Instances are independent: each has its own buckets and regions, and
// destroying one returns all of its memory to the OS. Any power-of-two
// alignment is accepted; other alignments fail with EINVAL. All members
// are thread-safe.
#ifndef RULLOC_CORE_ALLOCATOR_H_
#define RULLOC_CORE_ALLOCATOR_H_

#include <errno.h>

#include <cstddef>
#include <cstring>
#include <utility>

#include "core/heap.h"
#include "core/size_classes.h"

namespace rulloc {

namespace internal {
struct ProcessAllocatorParts;
}  // namespace internal

template <class Table = DefaultBuckets>
class BasicAllocator {
  using Map = SizeClassMap<Table>;

 public:
  constexpr BasicAllocator() : BasicAllocator(std::make_index_sequence<Map::kCount>(), &heap_) {}
  ~BasicAllocator() { heap_.ReleaseAll(); }
  BasicAllocator(const BasicAllocator&) = delete;
  BasicAllocator& operator=(const BasicAllocator&) = delete;

  // `size` bytes aligned to `alignment` (a power of two; 0 counts as 1).
  // nullptr with errno ENOMEM when memory runs out, EINVAL for a bad
  // alignment. A zero size returns a unique, freeable pointer.
  void* allocate(size_t size, size_t alignment = kMinAlignment) {
    if (!ValidAlignment(alignment)) return nullptr;
    return heap_.Allocate(size, alignment < kMinAlignment ? kMinAlignment : alignment);
  }
  // allocate, with the bytes zero; pages the OS has just mapped or taken
  // back are not written (see Heap::AllocateZeroed).
  void* allocate_zeroed(size_t size, size_t alignment = kMinAlignment) {
    if (!ValidAlignment(alignment)) return nullptr;
    return heap_.AllocateZeroed(size, alignment < kMinAlignment ? kMinAlignment : alignment);
  }
  // Frees a pointer from allocate/reallocate of this instance (nullptr is
  // ignored). Anything else is reported as heap misuse and aborts.
  void deallocate(void* p) { heap_.Deallocate(p); }
  // With the size (and alignment) it was allocated or reallocated with: a
  // size that cannot be the block's is reported as heap misuse.
  void deallocate(void* p, size_t size, size_t alignment = kMinAlignment) {
    heap_.DeallocateSized(p, size, alignment > kMinAlignment);
  }
  // Resizes `p`, in place when possible. On failure returns nullptr and `p`
  // stays valid. The contents up to the smaller size are kept.
  void* reallocate(void* p, size_t size, size_t alignment = kMinAlignment) {
    if (!ValidAlignment(alignment)) return nullptr;
    return heap_.Reallocate(p, size, alignment < kMinAlignment ? kMinAlignment : alignment);
  }
  // Bytes usable at `p` (at least what was asked for); 0 for nullptr, as
  // malloc_usable_size.
  size_t usable_size(const void* p) { return p == nullptr ? 0 : heap_.UsableSize(p); }
  // Whether `p` lies in memory this instance holds (its regions and
  // mappings): any address inside them, a freed block's or a cached
  // mapping's too. Which allocator to free a pointer with, not whether it
  // is live.
  bool owns(const void* p) const { return heap_.Owns(p); }

  // Returns every empty region, and the slack huge blocks keep, to the OS
  // now. Returns those bytes.
  size_t trim() { return heap_.Purge(0); }
  AllocatorStats stats() { return heap_.Stats(); }
  static constexpr size_t bucket_count() { return Map::kCount; }
  static constexpr size_t bucket_size(size_t bucket) { return Map::BlockSize(bucket); }
  internal::SmallBucketStats bucket_stats(size_t bucket) { return heap_.SmallStats(bucket); }
  constexpr internal::Heap& heap() { return heap_; }

 private:
  friend struct internal::ProcessAllocatorParts;
  // The process allocator: its buckets name no heap (SmallBucket's
  // constructor says why).
  struct ProcessAllocator {};
  constexpr explicit BasicAllocator(ProcessAllocator)
      : BasicAllocator(std::make_index_sequence<Map::kCount>(), nullptr) {}
  template <size_t... kIndex>
  constexpr BasicAllocator(std::index_sequence<kIndex...>, internal::Heap* buckets_heap)
      : small_{internal::SmallBucket(Table::kSizes[kIndex], kIndex, buckets_heap)...},
        heap_(small_, Map::kCount, Map::kLookup.data(), Map::kMaxSize) {}

  static bool ValidAlignment(size_t alignment) {
    if ((alignment & (alignment - 1)) == 0) return true;
    errno = EINVAL;
    return false;
  }

  internal::SmallBucket small_[Map::kCount];
  internal::Heap heap_;
};

using Allocator = BasicAllocator<DefaultBuckets>;

namespace internal {

// Sets of small buckets of the process allocator: its thread caches refill
// from the arena of the CPU they run on, so that threads running at the
// same time get blocks from different regions (no cache line holds blocks
// of two such threads). Arena 0 is the allocator's own buckets.
inline constexpr size_t kProcessArenas = Heap::kMaxArenas;

union DefaultInstance;

// The process allocator and the buckets of its arenas 1..kProcessArenas-1.
// Only DefaultInstance makes one: its regions name the process heap.
struct ProcessAllocatorParts {
  using Map = SizeClassMap<DefaultBuckets>;
  static constexpr size_t kExtra = (kProcessArenas - 1) * Map::kCount;

  Allocator allocator;
  SmallBucket extra[kExtra];

 private:
  friend union DefaultInstance;
  // (Defined before the constructor that delegates to it, for clang.)
  template <size_t... kIndex>
  constexpr explicit ProcessAllocatorParts(std::index_sequence<kIndex...>)
      : allocator(Allocator::ProcessAllocator()),
        extra{SmallBucket(DefaultBuckets::kSizes[kIndex % Map::kCount], kIndex % Map::kCount,
                          nullptr, 1 + kIndex / Map::kCount)...} {
    allocator.heap().AttachArenas(extra, kProcessArenas);
    allocator.heap().TagSmallRegions();
  }
  constexpr ProcessAllocatorParts() : ProcessAllocatorParts(std::make_index_sequence<kExtra>()) {}
};

// Constant-initialised storage whose destructor never runs: the process
// allocator must outlive every static destructor that may still free.
union DefaultInstance {
  constexpr DefaultInstance() : parts() {}
  ~DefaultInstance() {}
  ProcessAllocatorParts parts;
};
extern DefaultInstance default_instance;

}  // namespace internal

// The process-wide instance behind rulloc_malloc and friends. Never
// destroyed, usable before and after static constructors and destructors.
inline Allocator& DefaultAllocator() { return internal::default_instance.parts.allocator; }

namespace internal {
// Constant-initialised storage for a table's process-wide instance, never
// destroyed (as DefaultInstance).
template <class Table>
union TableInstance {
  constexpr TableInstance() : allocator() {}
  ~TableInstance() {}
  BasicAllocator<Table> allocator;
};
template <class Table>
constinit TableInstance<Table> table_instance;
}  // namespace internal

// The process-wide instance of a bucket table, the default of StdAllocator
// and BasicMemoryResource: DefaultAllocator() for the default table. Never
// destroyed, so that containers with static storage may still free at exit.
template <class Table>
BasicAllocator<Table>& ProcessInstance() {
  if constexpr (std::is_same_v<Table, DefaultBuckets>) {
    return DefaultAllocator();
  } else {
    return internal::table_instance<Table>.allocator;
  }
}

}  // namespace rulloc

#endif  // RULLOC_CORE_ALLOCATOR_H_
