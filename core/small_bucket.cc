#include "core/small_bucket.h"

#include <algorithm>
#include <cstdint>
#include <new>

#include "concurrency/backoff.h"
#include "core/allocator.h"
#include "core/diagnostics.h"
#include "core/heap.h"
#include "core/page_map.h"
#include "core/runtime_options.h"
#include "core/secret.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

bool TestBit(std::atomic<uint64_t>* bits, uint32_t i) {
  return (bits[i / 64].load(std::memory_order_relaxed) >> (i % 64)) & 1;
}
// Bit updates happen under the bucket lock; the atomics only make lock-free
// readers (has_aligned lookups) well defined.
void SetBit(std::atomic<uint64_t>* bits, uint32_t i, bool value) {
  const uint64_t word = bits[i / 64].load(std::memory_order_relaxed);
  const uint64_t mask = uint64_t{1} << (i % 64);
  bits[i / 64].store(value ? (word | mask) : (word & ~mask), std::memory_order_relaxed);
}

// An over-aligned allocation returns its block's start rounded up to a power
// of two, and records the distance, keyed, in the block's first word (the
// slack before the pointer, never the caller's): `p` must be that pointer,
// not another one its alignment would allow.
uint64_t AlignedOffsetWord(const void* start, uintptr_t offset) { return CheckWord(start, offset); }
bool IsAlignedOffset(const void* start, const void* p) {
  const uintptr_t offset = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(start);
  return *static_cast<const uint64_t*>(start) == AlignedOffsetWord(start, offset);
}

}  // namespace

uint32_t SmallRegion::IndexOf(const void* p, bool* at_start) const {
  const uintptr_t offset = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(this);
  if (offset < layout.first_offset) {
    *at_start = false;
    return layout.capacity;
  }
  const uintptr_t in_blocks = offset - layout.first_offset;
  const uint32_t index = static_cast<uint32_t>(in_blocks / layout.block_size);
  *at_start = in_blocks % layout.block_size == 0;
  return index;
}

void* SmallRegion::BlockStart(const void* p) const {
  bool at_start;
  const uint32_t index = IndexOf(p, &at_start);
  // Lock-free: only immutable fields and the (atomic) bitmaps are read.
  if (index >= layout.capacity || !TestBit(allocated_bits, index)) return nullptr;
  char* start = const_cast<SmallRegion*>(this)->BlockAt(index);
  if (!at_start && (!TestBit(aligned_bits, index) || !IsAlignedOffset(start, p))) return nullptr;
  return start;
}

Heap& SmallBucket::heap() const { return heap_ != nullptr ? *heap_ : DefaultAllocator().heap(); }

SmallRegion* SmallBucket::NewRegion() {
  RegionHeader* header = MapRegion(RegionKind::kSmall, region_size_, kGranule, &heap());
  if (header == nullptr) return nullptr;
  // Hardened: a guard page after the header and one at the end of the
  // region, so that no overflow reaches metadata (this region's or the next).
  const bool guarded = runtime_options.hardened;
  const uint32_t page = static_cast<uint32_t>(platform::PageSize());
  const SmallLayout layout = SmallLayoutFor(block_size_, region_size_, index_, guarded ? page : 0);
  if (guarded) {
    char* base = reinterpret_cast<char*>(header);
    if (!platform::Guard(base + layout.first_offset - page, page) ||
        !platform::Guard(base + region_size_ - page, page)) {
      UnmapRegion(header);
      return nullptr;
    }
  }
  auto* r = reinterpret_cast<SmallRegion*>(header);
  r->bucket = this;
  r->layout = layout;
  r->carved = 0;
  r->used = 0;
  r->bucket_index = index_;
  r->in_full_list = false;
  new (&r->has_aligned) std::atomic<bool>(false);
  r->free_hint = 0;
  r->free_dirty = false;
  r->decommitting = false;
  r->purge_walk = 0;
  r->populated_end = 0;
  r->last_free_ms = 0;
  auto* bits = reinterpret_cast<std::atomic<uint64_t>*>(r->base() + layout.bitmap_offset);
  for (uint32_t i = 0; i < 2 * BitmapWords(layout.capacity); ++i) {
    new (&bits[i]) std::atomic<uint64_t>(0);
  }
  r->allocated_bits = bits;
  r->aligned_bits = bits + BitmapWords(layout.capacity);
  // The process allocator's thread caches free blocks of unguarded regions
  // with the layout of their bucket from a table, without this header.
  if (!guarded && heap().tags_small_regions()) PageMap::SetTag(header, region_size_, index_ + 1);
  ++regions_mapped_;
  mapped_a_region_.store(true, std::memory_order_relaxed);
  blocks_free_ += layout.capacity;
  partial_.PushFront(&r->header);
  return r;
}

SmallRegion* SmallBucket::RegionWithFreeBlock(uint64_t now_ms) {
  if (RegionHeader* partial = partial_.front()) return reinterpret_cast<SmallRegion*>(partial);
  if (SmallRegion* empty = TakeEmptyRegion(now_ms)) return empty;
  NoteRegionTaken(now_ms);
  return NewRegion();
}

SmallRegion* SmallBucket::TakeEmptyRegion(uint64_t now_ms) {
  RegionHeader* empty = empty_.PopFront();  // the most recently used one
  if (empty == nullptr) return nullptr;
  // Only a bucket with empty regions past the floor has a use for the time:
  // one region that empties and fills again with every call reads no clock.
  if ((empty_.size() + 1) * region_size_ > kEmptyBytesLimit) NoteRegionTaken(now_ms);
  partial_.PushFront(empty);
  return reinterpret_cast<SmallRegion*>(empty);
}

void SmallBucket::NoteRegionTaken(uint64_t now_ms) {
  // The clock is read here, once per region, not once per allocation.
  if (now_ms == kReadClock) now_ms = platform::CoarseMonotonicMillis();
  if (now_ms > region_taken_ms_) region_taken_ms_ = now_ms;
}

void SmallBucket::UnmapEmpty(SmallRegion* r, Unmapper* later) {
  blocks_free_ -= r->layout.capacity;
  AddReusable(-static_cast<ptrdiff_t>(r->carved));
  ++regions_unmapped_;
  if (later != nullptr && later->count < Unmapper::kCapacity) {
    later->regions[later->count++] = &r->header;
  } else {
    UnmapRegion(&r->header);
  }
}

SmallBucket::Unmapper::~Unmapper() {
  for (size_t i = 0; i < count; ++i) UnmapRegion(regions[i]);
}

// The first index in [from, limit) whose bit is `set`, or limit.
uint32_t NextBit(const std::atomic<uint64_t>* bits, uint32_t from, uint32_t limit, bool set) {
  while (from < limit) {
    uint64_t word = bits[from / 64].load(std::memory_order_relaxed);
    if (!set) word = ~word;
    word &= ~uint64_t{0} << (from % 64);
    if (word != 0) {
      const uint32_t index = (from & ~63u) + static_cast<uint32_t>(__builtin_ctzll(word));
      return index < limit ? index : limit;
    }
    from = (from & ~63u) + 64;
  }
  return limit;
}

size_t SmallRegion::DecommitFreePages() {
  const uintptr_t page = platform::PageSize();
  size_t bytes = 0;
  for (uint32_t i = 0; i < carved;) {
    const uint32_t free_start = NextBit(allocated_bits, i, carved, false);
    if (free_start == carved) break;
    const uint32_t free_end = NextBit(allocated_bits, free_start, carved, true);
    const uintptr_t start = AlignUp(reinterpret_cast<uintptr_t>(BlockAt(free_start)), page);
    const uintptr_t end = reinterpret_cast<uintptr_t>(BlockAt(free_end)) & ~(page - 1);
    if (end > start && platform::Decommit(reinterpret_cast<void*>(start), end - start)) {
      bytes += end - start;
    }
    i = free_end;
  }
  // Pages the bucket populated ahead of the blocks carved (PopulateCarved;
  // not free blocks' pages: not counted).
  const uintptr_t carved_end = AlignUp(reinterpret_cast<uintptr_t>(BlockAt(carved)), page);
  const uintptr_t populated = reinterpret_cast<uintptr_t>(base()) + populated_end;
  if (populated > carved_end) {
    platform::Decommit(reinterpret_cast<void*>(carved_end), populated - carved_end);
  }
  populated_end = 0;
  return bytes;
}

namespace {
// The free blocks below the bump index in bitmap word `w` of `r`.
uint64_t FreeBelowCarved(const SmallRegion* r, uint32_t w) {
  uint64_t free_bits = ~r->allocated_bits[w].load(std::memory_order_relaxed);
  if (w == r->carved / 64) free_bits &= (uint64_t{1} << (r->carved % 64)) - 1;
  return free_bits;
}
}  // namespace

// Pages to populate once the bucket's lock is released. Two ranges: a batch
// holds at most 32 KiB of blocks (or two), a region at least 256 KiB and 15
// blocks, so a batch mostly carves in one region, at times two; the blocks
// of any more fault in on touch.
struct SmallBucket::PopulateLater {
  platform::PageRange ranges[2];
  size_t count = 0;

  // With no lock held: the blocks are the caller's, so their region stays.
  // (A purge that drops the pages populated ahead before this runs leaves
  // them resident until they are carved.)
  void Run() const {
    for (size_t i = 0; i < count; ++i) platform::Populate(ranges[i].base, ranges[i].size);
  }
};

void SmallBucket::PopulateCarved(SmallRegion* r, uint32_t from, uint32_t to,
                                 PopulateLater* populate) {
  if (populate == nullptr || populate->count == 2) return;
  if ((regions_mapped_ - regions_unmapped_ - 1) * region_size_ < kPopulateAfterBytes) return;
  if (!platform::PopulateInUse()) return;
  // From the first page past the one block `from` starts in (which the
  // block before it, or the region's header, has in use already), or past
  // what was populated before, to the end of the step block `to - 1` ends
  // in: each step once, as the carving enters it. Never past the blocks'
  // last page (no guard page of a hardened region either).
  const size_t page = platform::PageSize();
  const size_t blocks_end = AlignUp(r->BlockAt(r->layout.capacity) - r->base(), page);
  const size_t start =
      std::max<size_t>(AlignUp(r->BlockAt(from) - r->base(), page), r->populated_end);
  const size_t end = std::min(AlignUp(r->BlockAt(to) - r->base(), kPopulateStep), blocks_end);
  if (end > start) {
    populate->ranges[populate->count++] = {r->base() + start, end - start};
    r->populated_end = static_cast<uint32_t>(end);
  }
}

// Takes up to n blocks of `r` (which has a free or uncarved block) into
// out: the free ones below the bump index lowest first, found in the
// allocated bitmap from the region's hint (no block holds free-list
// metadata), then, with `populate`, uncarved ones; a batch sets a bitmap
// word at a time.
size_t SmallBucket::PopLocked(SmallRegion* r, void** out, size_t n, PopulateLater* populate) {
  const bool carve = populate != nullptr;
  size_t got = 0;
  if (n == 1) {  // an allocator with no thread cache: one block at a time
    uint32_t index;
    if (r->used < r->carved) {
      uint32_t w = r->free_hint;
      while (FreeBelowCarved(r, w) == 0) ++w;
      r->free_hint = w;
      index = w * 64 + static_cast<uint32_t>(__builtin_ctzll(FreeBelowCarved(r, w)));
      AddReusable(-1);
    } else if (carve) {
      PopulateCarved(r, r->carved, r->carved + 1, populate);
      index = r->carved++;
    } else {
      return 0;
    }
    SetBit(r->allocated_bits, index, true);
    out[got++] = r->BlockAt(index);
    ++r->used;
  } else {
    for (uint32_t w = r->free_hint; got < n && r->used + got < r->carved; ++w) {
      uint64_t free_bits = FreeBelowCarved(r, w);
      uint64_t taken = 0;
      while (free_bits != 0 && got < n) {
        const uint64_t lowest = free_bits & (~free_bits + 1);
        out[got++] = r->BlockAt(w * 64 + static_cast<uint32_t>(__builtin_ctzll(lowest)));
        taken |= lowest;
        free_bits ^= lowest;
      }
      if (taken != 0) {
        const uint64_t word = r->allocated_bits[w].load(std::memory_order_relaxed);
        r->allocated_bits[w].store(word | taken, std::memory_order_relaxed);
        r->free_hint = w;
      }
    }
    r->used += static_cast<uint32_t>(got);
    AddReusable(-static_cast<ptrdiff_t>(got));
    const uint32_t bump =
        carve ? static_cast<uint32_t>(std::min<size_t>(n - got, r->layout.capacity - r->carved))
              : 0;
    if (bump != 0) PopulateCarved(r, r->carved, r->carved + bump, populate);
    for (uint32_t i = r->carved, end = r->carved + bump; i < end;) {
      const uint32_t word_end = std::min(end, (i & ~63u) + 64);
      const uint64_t bits = word_end - i == 64 ? ~uint64_t{0} : (uint64_t{1} << (word_end - i)) - 1;
      const uint64_t word = r->allocated_bits[i / 64].load(std::memory_order_relaxed);
      r->allocated_bits[i / 64].store(word | bits << (i % 64), std::memory_order_relaxed);
      for (; i < word_end; ++i) out[got++] = r->BlockAt(i);
    }
    r->carved += bump;
    r->used += bump;
  }
  if (r->used == r->layout.capacity) {
    partial_.Remove(&r->header);
    full_.PushFront(&r->header);
    r->in_full_list = true;
  }
  return got;
}

size_t SmallBucket::AllocateBatch(void** out, size_t n) {
  return AllocateBatchAt(out, n, kReadClock);
}

size_t SmallBucket::AllocateBatchAt(void** out, size_t n, uint64_t now_ms) {
  Backoff backoff;
  for (bool wait = false;; wait = true) {
    if (wait) backoff.Wait();
    PopulateLater populate;
    size_t got = 0;
    {
      SpinLockHolder hold(lock_);
      // (A new mapping is tried again at each step: memory freed elsewhere
      // may let one succeed before the purge puts its regions back.)
      bool no_region = false;
      while (got < n) {
        SmallRegion* r = RegionWithFreeBlock(now_ms);
        if (r == nullptr) {
          no_region = true;
          break;
        }
        got += PopLocked(r, out + got, n - got, &populate);
      }
      blocks_in_use_ += got;
      blocks_free_ -= got;
      if (got != 0) cycled_ |= emptied_before_;
      // No region to be had (address-space limit, strict overcommit): those
      // a purge has off the lists are worth waiting for.
      if (got == 0 && no_region && !decommitting_.empty()) continue;
    }
    populate.Run();
    return got;
  }
}

size_t SmallBucket::AllocateFreed(void** out, size_t n) {
  if (reusable() == 0) return 0;
  SpinLockHolder hold(lock_);
  size_t got = 0;
  for (RegionHeader* h = partial_.front(); h != nullptr && got < n;) {
    auto* r = reinterpret_cast<SmallRegion*>(h);
    h = h->next;  // PopLocked may move r to the full list
    if (r->used < r->carved) got += PopLocked(r, out + got, n - got, /*populate=*/nullptr);
  }
  while (got < n) {
    SmallRegion* empty = TakeEmptyRegion(kReadClock);
    if (empty == nullptr) break;
    got += PopLocked(empty, out + got, n - got, /*populate=*/nullptr);
  }
  blocks_in_use_ += got;
  blocks_free_ -= got;
  if (got != 0) cycled_ |= emptied_before_;
  return got;
}

void* SmallBucket::AllocateAligned(size_t alignment) {
  void* block;
  if (AllocateBatch(&block, 1) == 0) return nullptr;
  *static_cast<uint64_t*>(block) = 0;  // a thread cache's stale free mark
  const uintptr_t start = reinterpret_cast<uintptr_t>(block);
  const uintptr_t aligned = (start + alignment - 1) & ~(uintptr_t{alignment} - 1);
  if (aligned != start) {
    *static_cast<uint64_t*>(block) = AlignedOffsetWord(block, aligned - start);
    auto* r = reinterpret_cast<SmallRegion*>(PageMap::Lookup(block));
    SpinLockHolder hold(lock_);
    SetBit(r->aligned_bits, r->BlockStartingAt(block), true);
    if (!r->has_aligned.load(std::memory_order_relaxed)) {
      r->has_aligned.store(true, std::memory_order_relaxed);
      // Frees in this region must now tell aligned pointers from block
      // starts: they take the path that reads the header.
      PageMap::SetTag(r, region_size_, 0);
    }
  }
  return reinterpret_cast<void*>(aligned);
}

__attribute__((always_inline)) const char* SmallBucket::ClearBlockLocked(SmallRegion* r, void* p,
                                                                         uint32_t* lowest_word) {
  // The aligned bitmap is another cache line, only ever set in a region
  // that has handed out an aligned block: read only there.
  const bool has_aligned = r->has_aligned.load(std::memory_order_relaxed);
  uint32_t index = r->BlockStartingAt(p);
  if (index == r->layout.capacity) {  // not a block start: an aligned pointer or misuse
    bool at_start;
    index = r->IndexOf(p, &at_start);
    if (index >= r->carved) return "free of a pointer not allocated by rulloc";
    if (!TestBit(r->aligned_bits, index) || !IsAlignedOffset(r->BlockAt(index), p)) {
      // A freed over-aligned block keeps its offset word until reused.
      const bool freed =
          !TestBit(r->allocated_bits, index) && IsAlignedOffset(r->BlockAt(index), p);
      return freed ? "double free" : "free of a pointer into the middle of a block";
    }
  } else if (has_aligned && TestBit(r->aligned_bits, index)) {
    // The block was handed out at an offset: its start is not that pointer.
    return "free of a pointer into the middle of a block";
  }
  if (index >= r->carved) return "free of a pointer not allocated by rulloc";
  if (!TestBit(r->allocated_bits, index)) return "double free";
  SetBit(r->allocated_bits, index, false);
  if (has_aligned) SetBit(r->aligned_bits, index, false);
  *lowest_word = std::min(*lowest_word, index / 64);
  return nullptr;
}

void SmallBucket::FreedFromRegionLocked(SmallRegion* r, uint32_t count, uint32_t lowest_word,
                                        uint64_t now_ms, Unmapper* later) {
  blocks_free_ += count;
  blocks_in_use_ -= count;
  AddReusable(count);
  if (lowest_word < r->free_hint) r->free_hint = lowest_word;
  r->free_dirty = true;
  r->last_free_ms = now_ms;
  if (r->in_full_list) {
    full_.Remove(&r->header);
    partial_.PushFront(&r->header);
    r->in_full_list = false;
  }
  // (A region a purge took off the lists goes back to them with the purge.)
  r->used -= count;
  if (r->used == 0 && !r->decommitting) {
    partial_.Remove(&r->header);
    EmptiedLocked(r, now_ms, later);
  }
}

void SmallBucket::EmptiedLocked(SmallRegion* r, uint64_t now_ms, Unmapper* later) {
  r->header.empty_since_ms = now_ms;
  empty_.PushFront(&r->header);
  emptied_before_ = true;
  UnmapExcessLocked(now_ms, later);
}

void SmallBucket::UnmapExcessLocked(uint64_t now_ms, Unmapper* later) {
  // Keep at most as many empty bytes as are in use (at least the floor):
  // enough to ride out oscillations, never more than the live data. In a
  // program that builds and drops its data in cycles, the rest waits until
  // it has been empty for kCycleMillis (the next cycle would fault its pages
  // back in); a bucket that took no empty or new region for its blocks in
  // the last kCycleMillis gives it back at once, so that a program that
  // drops data it built a while ago, then goes idle, returns it first.
  const size_t keep = std::max(kEmptyBytesLimit, blocks_in_use_ * block_size_);
  const bool cycling = cycled_ && now_ms < region_taken_ms_ + kCycleMillis;
  while (empty_.size() > 1 && empty_.size() * region_size_ > keep) {
    RegionHeader* oldest = empty_.back();
    if (cycling && now_ms < oldest->empty_since_ms + kCycleMillis) break;
    // Bounded work under the lock: the rest goes at the next call.
    if (later != nullptr && later->count == Unmapper::kCapacity) break;
    empty_.Remove(oldest);
    UnmapEmpty(reinterpret_cast<SmallRegion*>(oldest), later);
  }
}

size_t SmallBucket::Purge(uint64_t now_ms, uint64_t max_age_ms) {
  if (!mapped_a_region_.load(std::memory_order_relaxed)) return 0;  // (one mapped now: next time)
  // Partial regions that saw no free for the decay time give back the
  // pages that only free blocks cover. First: a region whose last blocks
  // were freed meanwhile ends on the empty list, for the rounds below.
  size_t unmapped = DecommitAgedPartials(now_ms, max_age_ms);
  // In rounds of at most an Unmapper's worth of regions, each unmapped after
  // the lock is released: the lock is never held across many munmaps.
  for (bool more = true; more;) {
    Unmapper later;
    SpinLockHolder hold(lock_);
    const size_t regions_before = regions_unmapped_;
    UnmapExcessLocked(now_ms, &later);
    while (later.count < Unmapper::kCapacity) {
      RegionHeader* oldest = empty_.back();
      if (oldest == nullptr || oldest->empty_since_ms + max_age_ms > now_ms) break;  // young
      empty_.Remove(oldest);
      UnmapEmpty(reinterpret_cast<SmallRegion*>(oldest), &later);
    }
    unmapped += (regions_unmapped_ - regions_before) * region_size_;
    more = later.count == Unmapper::kCapacity;
  }
  return unmapped;
}

size_t SmallBucket::DecommitAgedPartials(uint64_t now_ms, uint64_t max_age_ms) {
  // Thousands of madvise calls in a big fragmented bucket (40 ms for 256 MB
  // of 64-byte blocks): none with the lock held, and never more than
  // kWalkStep regions looked at in one hold. One walk at a time (the
  // cursor is the bucket's): a trim waits for another walk to end, a decay
  // leaves the bucket to it.
  for (Backoff backoff;; backoff.Wait()) {
    {
      SpinLockHolder hold(lock_);
      if (!walking_partials_) {
        walking_partials_ = true;
        partial_.set_cursor(partial_.front());
        ++purge_walks_;
        break;
      }
    }
    if (max_age_ms != 0) return 0;
  }
  SmallRegion* batch[kDecommitBatch];
  size_t taken = 0;
  size_t bytes = 0;  // given back by the batch
  size_t unmapped = 0;
  for (bool walking = true; walking;) {
    {
      Unmapper later;  // (declared before the holder: unmaps after the unlock)
      SpinLockHolder hold(lock_);
      pages_decommitted_ += bytes;
      const size_t regions_before = regions_unmapped_;
      ReturnDecommittedLocked(batch, taken, now_ms, &later);
      unmapped += (regions_unmapped_ - regions_before) * region_size_;
      taken = TakeAgedPartialsLocked(now_ms, max_age_ms, batch);
      walking = partial_.cursor() != nullptr || taken != 0;
      if (!walking) walking_partials_ = false;
    }
    bytes = 0;
    for (size_t i = 0; i < taken; ++i) bytes += batch[i]->DecommitFreePages();
  }
  return unmapped;
}

size_t SmallBucket::TakeAgedPartialsLocked(uint64_t now_ms, uint64_t max_age_ms,
                                           SmallRegion** batch) {
  size_t taken = 0;
  for (size_t looked = 0; taken < kDecommitBatch && looked < kWalkStep; ++looked) {
    RegionHeader* h = partial_.cursor();
    if (h == nullptr) break;
    partial_.set_cursor(h->next);
    auto* r = reinterpret_cast<SmallRegion*>(h);
    // (A region this walk put back at the end is not taken twice.) A trim
    // also takes those with pages populated past the blocks carved.
    const bool populated_ahead =
        max_age_ms == 0 &&
        r->populated_end > AlignUp(r->BlockAt(r->carved) - r->base(), platform::PageSize());
    if (!(r->free_dirty || populated_ahead) || r->last_free_ms + max_age_ms > now_ms ||
        r->purge_walk == purge_walks_) {
      continue;
    }
    r->free_dirty = false;
    r->purge_walk = purge_walks_;
    r->decommitting = true;
    partial_.Remove(h);
    decommitting_.PushFront(h);
    batch[taken++] = r;
  }
  return taken;
}

void SmallBucket::ReturnDecommittedLocked(SmallRegion* const* batch, size_t n, uint64_t now_ms,
                                          Unmapper* later) {
  for (size_t i = 0; i < n; ++i) {
    decommitting_.Remove(&batch[i]->header);
    PutBackLocked(batch[i], now_ms, later);
  }
}

void SmallBucket::PutBackLocked(SmallRegion* r, uint64_t now_ms, Unmapper* later) {
  r->decommitting = false;
  if (r->used != 0) {
    partial_.PushBack(&r->header);
    return;
  }
  EmptiedLocked(r, now_ms, later);  // its last blocks were freed meanwhile
}

void SmallBucket::AdoptDecommittingAfterFork() {
  while (RegionHeader* h = decommitting_.PopFront()) {
    PutBackLocked(reinterpret_cast<SmallRegion*>(h), platform::CoarseMonotonicMillis(),
                  /*later=*/nullptr);
  }
  walking_partials_ = false;
  partial_.set_cursor(nullptr);
}

void SmallBucket::FreeBatch(void* const* blocks, size_t n) {
  FreeBatchAt(blocks, n, platform::CoarseMonotonicMillis());
}

void SmallBucket::FreeBatchAt(void* const* blocks, size_t n, uint64_t now_ms) {
  const char* fault = nullptr;
  void* culprit = nullptr;
  {
    Unmapper later;  // unmaps after the lock is released: munmap is slow
    SpinLockHolder hold(lock_);
    // A batch mostly holds neighbours: per run of blocks of one region, one
    // page-map lookup and one update of the region's and bucket's counts.
    for (size_t i = 0; i < n && fault == nullptr;) {
      RegionHeader* header = PageMap::Lookup(blocks[i]);
      culprit = blocks[i];
      if (header == nullptr) {
        fault = "free of a pointer not allocated by rulloc";
        break;
      }
      auto* r = reinterpret_cast<SmallRegion*>(header);
      if (header->kind != RegionKind::kSmall || r->bucket != this) {
        fault = "free of a block into the wrong bucket";
        break;
      }
      uint32_t lowest_word = UINT32_MAX;
      const size_t run_start = i;
      for (; i < n && header->Holds(blocks[i]); ++i) {
        fault = ClearBlockLocked(r, blocks[i], &lowest_word);
        if (fault != nullptr) {
          culprit = blocks[i];
          break;
        }
      }
      // (Blocks cleared before a fault are counted free: the counts stay true.)
      if (i != run_start) {
        FreedFromRegionLocked(r, static_cast<uint32_t>(i - run_start), lowest_word, now_ms, &later);
      }
    }
  }
  // Reported with no lock held, so that a SIGABRT handler may still allocate.
  if (fault != nullptr) ReportHeapMisuse(fault, culprit);
}

void SmallBucket::ReleaseAll() {
  SpinLockHolder hold(lock_);
  for (RegionList* list : {&partial_, &full_, &empty_, &decommitting_}) {
    while (RegionHeader* r = list->PopFront()) UnmapRegion(r);
  }
  regions_unmapped_ += regions_mapped_ - regions_unmapped_;
  blocks_in_use_ = blocks_free_ = 0;
  reusable_.store(0, std::memory_order_relaxed);
}

SmallBucketStats SmallBucket::Stats() {
  SmallBucketStats s;
  s.block_size = block_size_;
  // Every count is 0 until the first region: no lock, no write (see Purge).
  if (!mapped_a_region_.load(std::memory_order_relaxed)) return s;
  SpinLockHolder hold(lock_);
  s.blocks_in_use = blocks_in_use_;
  s.blocks_free = blocks_free_;
  s.regions = partial_.size() + full_.size() + empty_.size() + decommitting_.size();
  s.bytes_mapped = s.regions * region_size_;
  s.regions_mapped = regions_mapped_;
  s.regions_unmapped = regions_unmapped_;
  s.bytes_decommitted = pages_decommitted_;
  return s;
}

}  // namespace rulloc::internal
