#include "core/large_bucket.h"

#include <algorithm>

#include "concurrency/backoff.h"
#include "core/diagnostics.h"
#include "core/page_map.h"
#include "core/secret.h"
#include "platform/pages.h"

namespace rulloc::internal {

// The free-list links a free block keeps at the start of its payload,
// sealed by a check word keyed with the process secret: a write after free
// into them is reported when the list is next walked, never followed.
struct FreeLinks {
  LargeBlock* next;
  LargeBlock* prev;
  uint64_t freed_ms;    // when the block last grew by a free
  uint64_t given_back;  // interior bytes known to be decommitted (a lower bound)
  uint64_t check;

  uint64_t Expected() const {
    return CheckWord(this, reinterpret_cast<uintptr_t>(next) ^
                               (reinterpret_cast<uintptr_t>(prev) << 1) ^ (freed_ms << 2) ^
                               (given_back << 3));
  }
  void Seal() { check = Expected(); }
};
static_assert(sizeof(FreeLinks) <= LargeBucket::kMinPayload,
              "a free block's links must fit in the least payload");

namespace {

FreeLinks* LinksOf(LargeBlock* b) { return static_cast<FreeLinks*>(b->payload()); }

void SetSizeFlags(LargeBlock* b, uint64_t size_flags) {
  b->size_flags = size_flags;
  b->check = CheckWord(b, size_flags);
}

bool SpansRegion(LargeBlock* b) { return b->prev_size == 0 && b->is_last(); }

// A header that stops being one (merged into a neighbour, taken into a
// growing block, or a stale shadow) keeps a keyed mark instead, so that a
// second free of its pointer is named a double free.
constexpr uint64_t kRetired = ~uint64_t{0};  // no block's size and flags
void Retire(LargeBlock* b) { b->check = CheckWord(b, kRetired); }

// Of `given_back` bytes decommitted inside an interior of `whole` bytes,
// those sure to lie in a part of it whose interior is `part` bytes.
size_t GivenBackWithin(size_t given_back, size_t whole, size_t part) {
  return given_back > whole - part ? given_back - (whole - part) : 0;
}

}  // namespace

FreeLinks* LargeBucket::Links(LargeBlock* b) {
  FreeLinks* links = LinksOf(b);
  if (__builtin_expect(links->check != links->Expected(), 0)) {
    lock_.unlock();  // every caller holds it; report with no lock held
    ReportHeapMisuse("corrupted free block (written after free?)", b->payload());
  }
  return links;
}

LargeBlock* LargeBucket::Neighbour(LargeBlock* b) {
  if (__builtin_expect(b->check != CheckWord(b, b->size_flags), 0)) ReportCorruptHeader(b);
  return b;
}

LargeBlock* LargeBucket::PreviousNeighbour(LargeBlock* b) {
  // An overflow may have written prev_size, which b's check word does not
  // cover: the block it leads to must lie in b's region before its header
  // is read.
  auto* region = reinterpret_cast<LargeRegion*>(PageMap::Lookup(b));
  if (__builtin_expect(
          b->prev_size % 16 != 0 ||
              b->prev_size > static_cast<size_t>(reinterpret_cast<char*>(b) -
                                                 reinterpret_cast<char*>(region->first())),
          0)) {
    ReportCorruptHeader(b);
  }
  return Neighbour(b->prev());
}

void LargeBucket::ReportCorruptHeader(LargeBlock* b) {
  lock_.unlock();  // every caller holds it; report with no lock held
  ReportHeapMisuse("corrupted block header (overflow from the block before it?)", b->payload());
}

namespace {
// The header before `p`, if `p` may be a payload of its large region
// `region` (the page map's answer for `p`), whose first payload byte
// `*region_payload` gets.
LargeBlock* HeaderBefore(LargeRegion* region, const void* p, uintptr_t* region_payload = nullptr) {
  if (region == nullptr) return nullptr;
  const uintptr_t first = reinterpret_cast<uintptr_t>(region->first()) + LargeBucket::kHeader;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  if (addr % 16 != 0 || addr < first) return nullptr;
  if (region_payload != nullptr) *region_payload = first;
  return LargeBlock::FromPayload(p);
}
}  // namespace

bool LargeBucket::WasBlock(const void* p) {
  const LargeBlock* b = HeaderBefore(reinterpret_cast<LargeRegion*>(PageMap::Lookup(p)), p);
  return b != nullptr && b->check == CheckWord(b, kRetired);
}

LargeBlock* LargeBucket::BlockOf(const void* p) {
  return BlockIn(reinterpret_cast<LargeRegion*>(PageMap::Lookup(p)), p);
}

LargeBlock* LargeBucket::BlockIn(LargeRegion* region, const void* p) {
  uintptr_t first = 0;
  LargeBlock* b = HeaderBefore(region, p, &first);
  if (b == nullptr || b->check != CheckWord(b, b->size_flags)) return nullptr;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  if (b->size_flags & LargeBlock::kShadow) {
    if (b->offset < kHeader || b->offset > addr - first) return nullptr;
    b = LargeBlock::FromPayload(reinterpret_cast<const void*>(addr - b->offset));
    if (b->check != CheckWord(b, b->size_flags) || (b->size_flags & LargeBlock::kShadow)) {
      return nullptr;
    }
  }
  // The block names the one pointer it handed out: the start of an
  // over-aligned block (never handed out) or a stale shadow is not it.
  const uintptr_t handed_out = reinterpret_cast<uintptr_t>(b->payload()) + b->offset;
  return handed_out == addr ? b : nullptr;
}

size_t LargeBucket::BinFor(size_t size) {
  if (size < (size_t{1} << kFirstBinLog)) return 0;
  const size_t log = 63 - static_cast<size_t>(__builtin_clzll(size));
  if (log >= kFirstBinLog + kBins / kBinsPerDoubling) return kBins - 1;
  const size_t step = (size >> (log - kBinStepLog)) & (kBinsPerDoubling - 1);
  return (log - kFirstBinLog) * kBinsPerDoubling + step;
}

// A free block joins the front of its bin: the most recently freed block of
// a size is the first reused, while its pages are still warm.
void LargeBucket::PushFree(LargeBlock* b, uint64_t freed_ms, size_t given_back) {
  const size_t bin = BinFor(b->size());
  LargeBlock* next = bins_[bin];
  FreeLinks* links = LinksOf(b);  // new on the list: written, not checked
  links->prev = nullptr;
  links->next = next;
  links->freed_ms = freed_ms;
  links->given_back = given_back;
  links->Seal();
  bytes_decommitted_ += given_back;
  if (next != nullptr) {
    FreeLinks* after = Links(next);
    after->prev = b;
    after->Seal();
  }
  bins_[bin] = b;
  nonempty_[bin / 64] |= uint64_t{1} << (bin % 64);
}

void LargeBucket::RemoveFree(LargeBlock* b, FreeLinks* links) {
  bytes_decommitted_ -= links->given_back;
  if (links->prev != nullptr) {
    FreeLinks* before = Links(links->prev);
    before->next = links->next;
    before->Seal();
  } else {
    const size_t bin = BinFor(b->size());
    bins_[bin] = links->next;
    if (links->next == nullptr) nonempty_[bin / 64] &= ~(uint64_t{1} << (bin % 64));
  }
  if (links->next != nullptr) {
    FreeLinks* after = Links(links->next);
    after->prev = links->prev;
    after->Seal();
  }
}

LargeBlock* LargeBucket::FindFree(size_t need) {
  const size_t bin = BinFor(need);
  // Blocks of the request's own bin may be too small: look at a few.
  size_t looked = 0;
  for (LargeBlock* b = bins_[bin]; b != nullptr && looked < kFitScan; b = Links(b)->next) {
    if (b->size() >= need) return b;
    ++looked;
  }
  // Every block of a higher bin fits: take the front of the lowest one.
  for (size_t word = (bin + 1) / 64; word < kBins / 64; ++word) {
    uint64_t bits = nonempty_[word];
    if (word == (bin + 1) / 64) bits &= ~uint64_t{0} << ((bin + 1) % 64);
    if (bits != 0) return bins_[word * 64 + static_cast<size_t>(__builtin_ctzll(bits))];
  }
  return nullptr;
}

// The page-aligned range inside a free block past its header and links.
uintptr_t LargeBucket::InteriorStart(LargeBlock* b) {
  return AlignUp(reinterpret_cast<uintptr_t>(b) + sizeof(LargeBlock) + sizeof(FreeLinks),
                 platform::PageSize());
}

size_t LargeBucket::InteriorBytes(LargeBlock* b) {
  return InteriorBytesOf(reinterpret_cast<uintptr_t>(b), b->size());
}

size_t LargeBucket::InteriorBytesOf(uintptr_t block, size_t size) {
  // (InteriorStart reads only the block's address, not its header.)
  const uintptr_t start = InteriorStart(reinterpret_cast<LargeBlock*>(block));
  const uintptr_t end = (block + size) & ~(uintptr_t{platform::PageSize()} - 1);
  return end > start ? end - start : 0;
}

LargeBlock* LargeBucket::NewRegionBlock() {
  RegionHeader* header = MapRegion(RegionKind::kLarge, region_size_, kGranule, heap_);
  if (header == nullptr) return nullptr;
  auto* region = reinterpret_cast<LargeRegion*>(header);
  region->bucket = this;
  region->used_end = reinterpret_cast<uintptr_t>(region->first() + 1);
  LargeBlock* b = region->first();
  b->prev_size = 0;
  b->offset = 0;
  SetSizeFlags(b, (region_size_ - sizeof(LargeRegion)) | LargeBlock::kFree | LargeBlock::kLast);
  regions_.PushFront(header);
  ++regions_mapped_;
  ++empty_regions_;
  return b;
}

void LargeBucket::SplitLocked(LargeBlock* b, size_t size, uint64_t freed_ms, size_t given_back) {
  if (b->size() - size < kMinSplit) return;
  const size_t interior = InteriorBytes(b);
  auto* rest = reinterpret_cast<LargeBlock*>(reinterpret_cast<char*>(b) + size);
  rest->prev_size = size;
  rest->offset = 0;
  SetSizeFlags(rest, (b->size() - size) | LargeBlock::kFree | (b->size_flags & LargeBlock::kLast));
  SetSizeFlags(b, size | (b->size_flags & LargeBlock::kFree));
  given_back = GivenBackWithin(given_back, interior, InteriorBytes(rest));
  LargeBlock* merged = CoalesceLocked(rest, &given_back);
  PushFree(merged, merged == rest ? freed_ms : platform::CoarseMonotonicMillis(), given_back);
}

LargeBlock* LargeBucket::SkipHalfLocked(LargeBlock* b, size_t need) {
  const size_t front_size = AlignUp((b->size() - need) / 2, 16);
  auto* back = reinterpret_cast<LargeBlock*>(reinterpret_cast<char*>(b) + front_size);
  back->prev_size = front_size;
  back->offset = 0;
  SetSizeFlags(back, (b->size() - front_size) | (b->size_flags & LargeBlock::kLast));
  if (!back->is_last()) back->next()->prev_size = back->size();
  SetSizeFlags(b, front_size | LargeBlock::kFree);
  return back;
}

LargeBlock* LargeBucket::CoalesceLocked(LargeBlock* b, size_t* given_back) {
  // The interior of the merged block holds those of its parts.
  if (!b->is_last()) {
    LargeBlock* next = Neighbour(b->next());
    if (next->is_free()) {
      FreeLinks* links = Links(next);
      *given_back += links->given_back;
      RemoveFree(next, links);
      SetSizeFlags(b, (b->size() + next->size()) | LargeBlock::kFree |
                          (next->size_flags & LargeBlock::kLast));
      Retire(next);
    }
  }
  if (b->prev_size != 0) {
    LargeBlock* prev = PreviousNeighbour(b);
    if (prev->is_free()) {
      FreeLinks* links = Links(prev);
      *given_back += links->given_back;
      RemoveFree(prev, links);
      SetSizeFlags(prev, (prev->size() + b->size()) | LargeBlock::kFree |
                             (b->size_flags & LargeBlock::kLast));
      Retire(b);
      b = prev;
    }
  }
  if (!b->is_last()) b->next()->prev_size = b->size();
  return b;
}

void* LargeBucket::Allocate(size_t size, size_t alignment, bool growable, size_t* dirty) {
  const size_t slack = alignment > 16 ? alignment + kHeader : 0;
  const size_t need = PaddedPayload(size) + slack + kHeader;  // (slack: a multiple of 16)
  LargeBlock* b;
  Backoff backoff;
  for (bool wait = false;; wait = true) {
    if (wait) backoff.Wait();
    SpinLockHolder hold(lock_);
    // The free space left over keeps its age and what decay gave back of
    // it: no page of it was freed now.
    uint64_t freed_ms = 0;
    size_t given_back = 0;
    if ((b = FindFree(need)) != nullptr) {
      FreeLinks* links = Links(b);
      freed_ms = links->freed_ms;
      given_back = links->given_back;
      RemoveFree(b, links);
      // Right after a block in use (perhaps another thread's growing
      // buffer), a growable block takes the second half of the space.
      if (growable && b->prev_size != 0 && b->size() >= 2 * (need + kMinSplit)) {
        LargeBlock* front = b;
        const size_t interior = InteriorBytes(front);
        b = SkipHalfLocked(front, need);
        PushFree(front, freed_ms, GivenBackWithin(given_back, interior, InteriorBytes(front)));
        given_back = GivenBackWithin(given_back, interior, InteriorBytes(b));
      }
    } else if ((b = NewRegionBlock()) == nullptr) {
      // No new region to be had (address-space limit, strict overcommit):
      // the kept region, whose pages a free is giving back with no lock
      // held, or the free blocks a purge is giving back pages of, are
      // worth waiting for.
      if (pending_.block == nullptr && purging_count_ == 0) return nullptr;
      continue;
    } else {
      freed_ms = platform::CoarseMonotonicMillis();  // a new region's space: young
    }
    if (SpansRegion(b)) --empty_regions_;
    SetSizeFlags(b, b->size_flags & ~LargeBlock::kFree);
    SplitLocked(b, need, freed_ms, given_back);
    auto* region = reinterpret_cast<LargeRegion*>(PageMap::Lookup(b));
    if (dirty != nullptr) {
      // (The shadow of an over-aligned block lies before its pointer.)
      const uintptr_t start = reinterpret_cast<uintptr_t>(b->payload());
      *dirty = region->used_end > start ? region->used_end - start : 0;
    }
    NoteUsed(region, b);
    ++blocks_in_use_;
    bytes_in_use_ += b->size();
    // An over-aligned allocation hands out a pointer inside the block, a
    // shadow header's length past the payload at least.
    const uintptr_t addr = reinterpret_cast<uintptr_t>(b->payload());
    b->offset = (addr & (alignment - 1)) == 0
                    ? 0
                    : ((addr + kHeader + alignment - 1) & ~(uintptr_t{alignment} - 1)) - addr;
    break;
  }
  char* payload = static_cast<char*>(b->payload());
  if (b->offset == 0) return payload;
  LargeBlock* shadow = LargeBlock::FromPayload(payload + b->offset);
  shadow->prev_size = 0;
  shadow->offset = b->offset;
  SetSizeFlags(shadow, LargeBlock::kShadow | (shadow->offset << 3));
  return payload + b->offset;
}

RegionHeader* LargeBucket::FreeLocked(LargeBlock* b, PendingDecommit* decommit) {
  --blocks_in_use_;
  bytes_in_use_ -= b->size();
  SetSizeFlags(b, b->size_flags | LargeBlock::kFree);
  size_t given_back = 0;
  b = CoalesceLocked(b, &given_back);
  if (SpansRegion(b)) return EmptiedLocked(b, given_back, decommit);
  PushFree(b, platform::CoarseMonotonicMillis(), given_back);
  return nullptr;
}

RegionHeader* LargeBucket::EmptiedLocked(LargeBlock* b, size_t given_back,
                                         PendingDecommit* decommit) {
  auto* region = reinterpret_cast<LargeRegion*>(b) - 1;
  if (empty_regions_ >= 1) {
    regions_.Remove(&region->header);
    ++regions_unmapped_;
    return &region->header;  // unmapped by the caller, with no lock held
  }
  ++empty_regions_;
  region->header.empty_since_ms = platform::CoarseMonotonicMillis();
  // The kept region stays mapped for reuse, but no more than its first
  // kKeptResident bytes stay resident: the rest goes back now, if any
  // block reached it since it last went back.
  const uintptr_t keep_end =
      AlignUp(reinterpret_cast<uintptr_t>(b) + kKeptResident, platform::PageSize());
  // (Rounded to a huge page: where transparent huge pages are always
  // on, a touched byte may have brought in the whole 2 MiB around it.)
  const uintptr_t end = std::min(reinterpret_cast<uintptr_t>(b) + b->size(),
                                 AlignUp(region->used_end, platform::kHugePageSize));
  if (end > keep_end) {
    // Given back by the caller with no lock held (megabytes of madvise);
    // meanwhile the block stays off the lists, so nothing can take it.
    // (No other is pending: a pending block is a kept empty region.)
    pending_ = {b, keep_end, end, given_back};
    *decommit = pending_;
    return nullptr;
  }
  PushFree(b, platform::CoarseMonotonicMillis(), given_back);
  return nullptr;
}

void LargeBucket::PushPendingLocked(LargeBlock* b, bool decommitted) {
  if (pending_.block != b) return;  // (put back already: a child after fork)
  size_t given_back = pending_.given_back;
  // (Refused, under mlockall, the pages keep their contents: used_end
  // stays, so calloc clears them.)
  if (decommitted) {
    (reinterpret_cast<LargeRegion*>(b) - 1)->used_end = pending_.from;
    given_back = std::max<size_t>(given_back, pending_.to - pending_.from);
  }
  pending_ = {};
  PushFree(b, platform::CoarseMonotonicMillis(), given_back);
}

void LargeBucket::AdoptPendingAfterFork() {
  // The thread giving the pages back does not exist in the child: its
  // block goes back to the lists as it is.
  if (pending_.block != nullptr) PushPendingLocked(pending_.block, /*decommitted=*/false);
  if (purging_count_ != 0) {
    ReturnPurgedLocked(/*decommitted=*/nullptr, platform::CoarseMonotonicMillis(),
                       /*after=*/nullptr);
  }
}

void LargeBucket::Free(void* p) {
  const char* fault = nullptr;
  RegionHeader* unmap = nullptr;
  PendingDecommit decommit;
  {
    SpinLockHolder hold(lock_);
    LargeBlock* b = BlockOf(p);
    if (b == nullptr) {
      fault = WasBlock(p) ? "double free" : "free of an invalid pointer (not a live block start)";
    } else if (b->is_free()) {
      fault = "double free";
    } else {
      // A stale shadow header must not lead a second free to a new block.
      if (p != b->payload()) Retire(LargeBlock::FromPayload(p));
      unmap = FreeLocked(b, &decommit);
    }
  }
  // Reported with no lock held, so that a SIGABRT handler may still allocate.
  if (fault != nullptr) ReportHeapMisuse(fault, p);
  if (unmap != nullptr) UnmapRegion(unmap);
  if (decommit.block != nullptr) FinishDecommit(decommit);
}

void LargeBucket::FinishDecommit(const PendingDecommit& decommit) {
  const bool done =
      platform::Decommit(reinterpret_cast<void*>(decommit.from), decommit.to - decommit.from);
  SpinLockHolder hold(lock_);
  PushPendingLocked(decommit.block, done);
}

bool LargeBucket::Resize(void* p, size_t size, size_t* usable) {
  bool resized = false;
  bool invalid = false;
  {
    // Validated under the lock, once: a free racing with this realloc (the
    // caller's bug) cannot merge the block away or unmap its region between
    // the check and the resize.
    SpinLockHolder hold(lock_);
    auto* region = reinterpret_cast<LargeRegion*>(PageMap::Lookup(p));
    LargeBlock* b = BlockIn(region, p);
    if (b == nullptr || b->is_free()) {
      invalid = true;
    } else {
      *usable = b->size() - kHeader -
                static_cast<size_t>(static_cast<char*>(p) - static_cast<char*>(b->payload()));
      if (size != 0 && p == b->payload()) resized = ResizeLocked(region, b, size, *usable);
    }
  }
  if (invalid) ReportHeapMisuse("realloc of an invalid or freed pointer", p);
  return resized;
}

bool LargeBucket::ResizeLocked(LargeRegion* region, LargeBlock* b, size_t size, size_t usable) {
  if (size <= usable && usable - size < kMinSplit) return true;  // nothing to give back
  const size_t need = PaddedPayload(size) + kHeader;
  const size_t before = b->size();
  if (need > before) {
    if (b->is_last()) return false;
    LargeBlock* next = Neighbour(b->next());
    if (!next->is_free() || before + next->size() < need) return false;
    GrowIntoNextLocked(b, need);
  } else {
    SplitLocked(b, need, platform::CoarseMonotonicMillis(), /*given_back=*/0);
  }
  NoteUsed(region, b);
  bytes_in_use_ += b->size();
  bytes_in_use_ -= before;
  return true;
}

void LargeBucket::GrowIntoNextLocked(LargeBlock* b, size_t need) {
  LargeBlock* next = b->next();
  // Everything of `next` is read before the rest's header may overwrite it.
  FreeLinks* next_links = Links(next);
  const FreeLinks old = *next_links;
  const size_t next_size = next->size();
  const size_t total = b->size() + next_size;
  const uint64_t last = next->size_flags & LargeBlock::kLast;
  if (total - need < kMinSplit) {
    RemoveFree(next, next_links);
    Retire(next);
    SetSizeFlags(b, total | last);
    if (!b->is_last()) b->next()->prev_size = b->size();
    return;
  }
  // `b` takes the front of its free neighbour. The rest keeps the
  // neighbour's age and what decay gave back of it: no page of it was
  // freed now.
  const size_t rest_size = total - need;
  auto* rest = reinterpret_cast<LargeBlock*>(reinterpret_cast<char*>(b) + need);
  const size_t given_back =
      old.given_back == 0
          ? 0
          : GivenBackWithin(old.given_back, InteriorBytes(next),
                            InteriorBytesOf(reinterpret_cast<uintptr_t>(rest), rest_size));
  const size_t bin = BinFor(next_size);
  const bool same_bin = BinFor(rest_size) == bin;
  if (!same_bin) RemoveFree(next, next_links);
  Retire(next);
  SetSizeFlags(b, need);
  rest->prev_size = need;
  rest->offset = 0;
  SetSizeFlags(rest, rest_size | LargeBlock::kFree | last);
  if (!rest->is_last()) rest->next()->prev_size = rest_size;
  if (!same_bin) {
    PushFree(rest, old.freed_ms, given_back);
    return;
  }
  // The common case (a buffer growing into the free end of its region):
  // the rest takes the neighbour's place on its list.
  FreeLinks* links = LinksOf(rest);
  links->prev = old.prev;
  links->next = old.next;
  links->freed_ms = old.freed_ms;
  links->given_back = given_back;
  links->Seal();
  bytes_decommitted_ -= old.given_back - given_back;
  if (old.prev != nullptr) {
    FreeLinks* before = Links(old.prev);
    before->next = rest;
    before->Seal();
  } else {
    bins_[bin] = rest;
  }
  if (old.next != nullptr) {
    FreeLinks* after = Links(old.next);
    after->prev = rest;
    after->Seal();
  }
}

void LargeBucket::NoteUsed(LargeRegion* region, LargeBlock* b) {
  // A free block after it has its header and links written too.
  const uintptr_t end =
      reinterpret_cast<uintptr_t>(b) + b->size() + sizeof(LargeBlock) + sizeof(FreeLinks);
  if (end > region->used_end) region->used_end = end;
}

bool LargeBucket::UsableSize(const void* p, size_t* usable) {
  LargeBlock* b = BlockOf(p);
  if (b == nullptr || b->is_free()) return false;
  *usable = b->size() - kHeader -
            static_cast<size_t>(static_cast<const char*>(p) - static_cast<char*>(b->payload()));
  return true;
}

size_t LargeBucket::Purge(uint64_t now_ms, uint64_t max_age_ms) {
  // Free blocks that have not changed for the decay time give their pages
  // back, so that a bucket does not keep its high-water mark resident: a
  // batch at a time, taken off the lists, with no lock held while the
  // kernel takes the pages. Bins are walked once, in rounds.
  size_t unmapped = 0;
  size_t bin = BinFor(kDecommitMin);
  Backoff backoff;
  while (bin < kBins) {
    size_t count;
    {
      SpinLockHolder hold(lock_);
      // One batch at a time per bucket. A decay leaves the bucket to the
      // purge at it; a trim (any age) waits for that purge's batch, so as
      // to give back what was freed before it was called.
      count = purging_count_ == 0 ? TakeAgedLocked(now_ms, max_age_ms, &bin) : kBusy;
    }
    if (count == kBusy) {
      if (max_age_ms != 0) break;
      backoff.Wait();
      continue;
    }
    if (count == 0) break;
    platform::PageRange interiors[kPurgeBatch];
    for (size_t i = 0; i < count; ++i) {
      LargeBlock* b = purging_[i].block;
      interiors[i] = {reinterpret_cast<void*>(InteriorStart(b)), InteriorBytes(b)};
    }
    bool decommitted[kPurgeBatch];
    platform::DecommitRanges(interiors, count, decommitted);
    AfterPurge after;
    {
      SpinLockHolder hold(lock_);
      ReturnPurgedLocked(decommitted, now_ms, &after);
    }
    for (size_t i = 0; i < after.unmap_count; ++i) UnmapRegion(after.unmap[i]);
    unmapped += after.unmap_count * region_size_;
    if (after.decommit.block != nullptr) FinishDecommit(after.decommit);
  }
  RegionHeader* unmap = nullptr;
  {
    SpinLockHolder hold(lock_);
    unmap = TakeAgedEmptyRegionLocked(now_ms, max_age_ms);
  }
  if (unmap == nullptr) return unmapped;
  UnmapRegion(unmap);  // with no lock held
  return unmapped + region_size_;
}

size_t LargeBucket::TakeAgedLocked(uint64_t now_ms, uint64_t max_age_ms, size_t* bin) {
  for (; *bin < kBins; ++*bin) {
    LargeBlock* next;
    for (LargeBlock* b = bins_[*bin]; b != nullptr; b = next) {
      FreeLinks* links = Links(b);
      next = links->next;
      if (b->size() < kDecommitMin || links->given_back >= InteriorBytes(b) ||
          links->freed_ms + max_age_ms > now_ms) {
        continue;
      }
      purging_[purging_count_++] = {b, links->freed_ms, links->given_back};
      RemoveFree(b, links);
      SetSizeFlags(b, b->size_flags & ~LargeBlock::kFree);
      b->offset = kPurgingOffset;
      // (The rest of this bin next round: blocks put back meanwhile are
      // given back already, or refused, or merged with space freed since,
      // which only a purge of any age, a trim, takes again.)
      if (purging_count_ == kPurgeBatch) return purging_count_;
    }
  }
  return purging_count_;
}

void LargeBucket::ReturnPurgedLocked(const bool* decommitted, uint64_t now_ms, AfterPurge* after) {
  for (size_t i = 0; i < purging_count_; ++i) {
    LargeBlock* b = purging_[i].block;
    uint64_t freed_ms = purging_[i].freed_ms;
    size_t given_back = purging_[i].given_back;
    if (decommitted == nullptr) {
      // (A child after fork: the purge did not finish here.)
    } else if (decommitted[i]) {
      given_back = InteriorBytes(b);
    } else {
      // Refused (mlockall): not again in this purge, nor before the decay
      // time.
      freed_ms = now_ms + 1;
    }
    b->offset = 0;
    SetSizeFlags(b, b->size_flags | LargeBlock::kFree);
    // Neighbours freed meanwhile could not merge with it: they do now.
    const bool spanned = SpansRegion(b);
    const size_t size = b->size();
    b = CoalesceLocked(b, &given_back);
    if (b->size() != size) freed_ms = now_ms;  // it holds space freed now
    if (!spanned && SpansRegion(b)) {
      // Its region is empty now: kept or unmapped as a free would have.
      if (after == nullptr) {  // (a child after fork: kept)
        ++empty_regions_;
        (reinterpret_cast<LargeRegion*>(b) - 1)->header.empty_since_ms = now_ms;
      } else {
        RegionHeader* unmap = EmptiedLocked(b, given_back, &after->decommit);
        if (unmap != nullptr) after->unmap[after->unmap_count++] = unmap;
        continue;
      }
    }
    PushFree(b, freed_ms, given_back);
  }
  purging_count_ = 0;
}

RegionHeader* LargeBucket::TakeAgedEmptyRegionLocked(uint64_t now_ms, uint64_t max_age_ms) {
  if (empty_regions_ == 0) return nullptr;
  for (RegionHeader* r = regions_.front(); r != nullptr; r = r->next) {
    LargeBlock* b = reinterpret_cast<LargeRegion*>(r)->first();
    // (The pending block is off the lists while its free gives pages back.)
    if (!SpansRegion(b) || !b->is_free() || b == pending_.block) continue;
    if (r->empty_since_ms + max_age_ms > now_ms) return nullptr;  // young (or newer than now_ms)
    RemoveFree(b, Links(b));
    regions_.Remove(r);
    --empty_regions_;
    ++regions_unmapped_;
    return r;
  }
  return nullptr;
}

void LargeBucket::ReleaseAll() {
  SpinLockHolder hold(lock_);
  while (RegionHeader* r = regions_.PopFront()) UnmapRegion(r);
  regions_unmapped_ = regions_mapped_;
  pending_ = {};
  purging_count_ = 0;
  for (LargeBlock*& head : bins_) head = nullptr;
  for (uint64_t& word : nonempty_) word = 0;
  empty_regions_ = blocks_in_use_ = bytes_in_use_ = bytes_decommitted_ = 0;
}

LargeBucketStats LargeBucket::Stats() {
  SpinLockHolder hold(lock_);
  LargeBucketStats s;
  s.max_size = max_request_;
  s.blocks_in_use = blocks_in_use_;
  s.bytes_in_use = bytes_in_use_;
  s.regions = regions_.size();
  s.bytes_mapped = s.regions * region_size_;
  s.regions_mapped = regions_mapped_;
  s.regions_unmapped = regions_unmapped_;
  s.bytes_decommitted = bytes_decommitted_;
  return s;
}

}  // namespace rulloc::internal
