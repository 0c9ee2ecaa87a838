// Large buckets: blocks with boundary tags in regions of 1 MiB .. 32 MiB,
// split on allocation and coalesced with free neighbours on free.
//
// A large region:
//
//   ┌──────────────┬─────────┬─────────────┬───────────┬─────────────┐
//   │ RegionHeader │ bucket  │ block (used)│ block(free)│ block (used)│ ...
//   └──────────────┴─────────┴─────────────┴───────────┴─────────────┘
//
// A block (32-byte header, payload 16-byte aligned):
//
//   ┌───────────┬──────────────────┬───────┬────────┬──────────────────────┐
//   │ prev_size │ size | free|last │ check │ offset │ payload ...          │
//   └───────────┴──────────────────┴───────┴────────┴──────────────────────┘
//     prev_size finds the left neighbour, size the right one; `check` is
//     the address and size mixed with a per-process secret, so a pointer
//     that is not a block start (or a stale one) is caught on free. A free
//     block keeps its free-list links in its payload. An over-aligned
//     allocation is preceded by a "shadow" header whose offset leads back to
//     its real block; the real block keeps the same offset, so that only the
//     pointer handed out is accepted.
//
// Free blocks sit in size bins, eight per doubling (TLSF's layout), with a
// bitmap of the bins that hold any:
//
//   nonempty_: 0 0 1 0 1 0 ...      bins_[2] ─► F ⇄ F     bins_[4] ─► F
//
// An allocation looks at a few blocks of its own bin, then takes the front
// of the lowest non-empty bin above it, where every block fits.
#ifndef RULLOC_CORE_LARGE_BUCKET_H_
#define RULLOC_CORE_LARGE_BUCKET_H_

#include <cstddef>
#include <cstdint>

#include "concurrency/spin_lock.h"
#include "core/region.h"

namespace rulloc::internal {

class LargeBucket;
struct FreeLinks;

struct LargeBlock {
  static constexpr uint64_t kFree = 1;
  static constexpr uint64_t kLast = 2;
  static constexpr uint64_t kShadow = 4;
  static constexpr uint64_t kFlags = 7;

  uint64_t prev_size;
  uint64_t size_flags;
  uint64_t check;
  uint64_t offset;  // payload to the pointer handed out (0 unless over-aligned);
                    // shadow headers: the same distance, back to the real block

  size_t size() const { return size_flags & ~kFlags; }
  bool is_free() const { return size_flags & kFree; }
  bool is_last() const { return size_flags & kLast; }
  void* payload() { return this + 1; }
  LargeBlock* next() {
    return reinterpret_cast<LargeBlock*>(reinterpret_cast<char*>(this) + size());
  }
  LargeBlock* prev() {
    return reinterpret_cast<LargeBlock*>(reinterpret_cast<char*>(this) - prev_size);
  }
  static LargeBlock* FromPayload(const void* p) {
    return reinterpret_cast<LargeBlock*>(const_cast<char*>(static_cast<const char*>(p))) - 1;
  }
};

struct alignas(64) LargeRegion {
  RegionHeader header;
  LargeBucket* bucket;
  // No block handed out since the pages past this address last went back
  // reached them: they need not be given back again.
  uintptr_t used_end;
  LargeBlock* first() { return reinterpret_cast<LargeBlock*>(this + 1); }
};
static_assert(sizeof(LargeRegion) % 16 == 0 && sizeof(LargeBlock) % 16 == 0,
              "block payloads must stay 16-byte aligned");

struct LargeBucketStats {
  size_t max_size = 0;  // largest request routed here (payload bytes)
  size_t blocks_in_use = 0;
  size_t bytes_in_use = 0;
  size_t regions = 0;
  size_t bytes_mapped = 0;
  size_t regions_mapped = 0;
  size_t regions_unmapped = 0;
  size_t bytes_decommitted = 0;  // pages inside free blocks given back (a lower bound)

  // Adds the counts of another bucket of the same size range (an arena's).
  LargeBucketStats& operator+=(const LargeBucketStats& other) {
    blocks_in_use += other.blocks_in_use;
    bytes_in_use += other.bytes_in_use;
    regions += other.regions;
    bytes_mapped += other.bytes_mapped;
    regions_mapped += other.regions_mapped;
    regions_unmapped += other.regions_unmapped;
    bytes_decommitted += other.bytes_decommitted;
    return *this;
  }
};

class alignas(64) LargeBucket {
 public:
  static constexpr size_t kHeader = sizeof(LargeBlock);
  // The least payload a block gets: free, it holds its list links there
  // (a bucket table whose largest class is small sends small requests here).
  static constexpr size_t kMinPayload = 48;
  // The payload a request of `size` bytes is given at least.
  static constexpr size_t PaddedPayload(size_t size) {
    return ((size < kMinPayload ? kMinPayload : size) + 15) & ~size_t{15};
  }
  static constexpr size_t kMinSplit = 1024;
  // Purge decommits the pages inside free blocks at least this big that
  // have stayed free for the decay time.
  static constexpr size_t kDecommitMin = 64 * 1024;
  // The one empty region a bucket keeps holds at most this much resident.
  static constexpr size_t kKeptResident = size_t{4} << 20;

  constexpr LargeBucket(size_t max_request, Heap* heap)
      : max_request_(max_request), region_size_(RegionSizeFor(max_request)), heap_(heap) {}
  LargeBucket(const LargeBucket&) = delete;
  LargeBucket& operator=(const LargeBucket&) = delete;

  static constexpr size_t RegionSizeFor(size_t max_request) {
    size_t size = size_t{1} << 20;
    while (size < max_request * 16) size *= 2;
    return size;
  }

  // A block with at least `size` payload bytes, payload aligned to
  // `alignment` (a power of two). nullptr when the OS refuses. A growable
  // block (a buffer realloc is growing) that would start right after a
  // block in use starts halfway into its free block instead, so that
  // both can grow in place. With `dirty`, sets it to how many bytes from
  // the block's start may not be zero (pages past the region's used end
  // were never written, or given back since).
  void* Allocate(size_t size, size_t alignment, bool growable = false, size_t* dirty = nullptr);
  void Free(void* p);
  // Sets `*usable` to the payload bytes at `p` and, unless `size` is 0,
  // grows or shrinks the block in place to hold `size` bytes; false if it
  // does not. Reports `p` if it is not a live block of a large bucket.
  bool Resize(void* p, size_t size, size_t* usable);
  // Payload bytes usable at `p`, if `p` is a live block of a large bucket;
  // false otherwise (no report). Lock-free.
  static bool UsableSize(const void* p, size_t* usable);

  // Gives back the pages of free blocks unchanged since `now_ms -
  // max_age_ms`, and unmaps the empty region kept for reuse if it became
  // empty by then. Returns the bytes unmapped.
  size_t Purge(uint64_t now_ms, uint64_t max_age_ms);
  void ReleaseAll();
  // Held across fork() so that the child sees consistent buckets.
  SpinLock& lock() { return lock_; }
  // In a child after fork, with the lock held: a free that was giving the
  // kept region's pages back, or a purge giving free blocks' pages back, in
  // the parent will not finish here.
  void AdoptPendingAfterFork();
  LargeBucketStats Stats();

  // Validates `p` and returns its block (the real one behind a shadow).
  static LargeBlock* BlockOf(const void* p);
  // The same, for `p` in `region` (the page map's answer for it, or nullptr).
  static LargeBlock* BlockIn(LargeRegion* region, const void* p);
  // True if `p`, no live block's, was one's that is gone since (merged
  // into a neighbour, say): a free of it again is a double free.
  static bool WasBlock(const void* p);

 private:
  LargeBlock* NewRegionBlock();
  // The verified free-list links of `b` (on the free list); reports a
  // corrupted block and aborts. Called with the lock held.
  FreeLinks* Links(LargeBlock* b);
  // `b`, a neighbour whose header is about to be read, verified against its
  // check word: an overflow from the block before it is reported, never
  // followed. Called with the lock held.
  LargeBlock* Neighbour(LargeBlock* b);
  // The same for the block before `b`, found through b's prev_size.
  LargeBlock* PreviousNeighbour(LargeBlock* b);
  [[noreturn]] void ReportCorruptHeader(LargeBlock* b);
  // Free blocks live in bins by size: eight per doubling from 1 KiB, so
  // that finding one that fits, adding and removing are O(1).
  static constexpr size_t kFirstBinLog = 10;
  static constexpr size_t kBinStepLog = 3;
  static constexpr size_t kBinsPerDoubling = size_t{1} << kBinStepLog;
  static constexpr size_t kBins = 128;  // up to 2^26 bytes, past any region
  // Blocks of a request's own bin looked at before a higher bin is used.
  static constexpr size_t kFitScan = 8;
  static size_t BinFor(size_t size);
  // PushFree takes the block's age and what decay gave back of its
  // interior (a lower bound: parts of it may have been given back).
  void PushFree(LargeBlock* b, uint64_t freed_ms, size_t given_back);
  // `links`: Links(b), already verified by the caller.
  void RemoveFree(LargeBlock* b, FreeLinks* links);
  // A free block of at least `need` bytes, or nullptr.
  LargeBlock* FindFree(size_t need);
  // Makes `b` exactly `size` bytes if the rest is worth a free block; the
  // rest takes the age and given-back bytes `b`'s free space had.
  void SplitLocked(LargeBlock* b, size_t size, uint64_t freed_ms, size_t given_back);
  // Leaves the front of free block `b` (off the lists) free, as room for
  // the block before it to grow, and returns the rest: `b`'s second half.
  LargeBlock* SkipHalfLocked(LargeBlock* b, size_t need);
  // Grows the used block `b` to `need` bytes into its free right neighbour
  // (which holds enough); what is left of the neighbour stays free.
  void GrowIntoNextLocked(LargeBlock* b, size_t need);
  // Resize of the live block `b` of `region` (`usable` payload bytes,
  // handed out at its payload) to `size` bytes, in place; false if it
  // cannot be.
  bool ResizeLocked(LargeRegion* region, LargeBlock* b, size_t size, size_t usable);
  // Merges the free block `b` with free neighbours; returns the result,
  // with their given-back bytes added to `given_back`.
  LargeBlock* CoalesceLocked(LargeBlock* b, size_t* given_back);
  // The block spanning the kept empty region while the free that emptied
  // it gives its pages [from, to) back with no lock held: off the lists,
  // counted in empty_regions_. At most one (only one region is kept).
  struct PendingDecommit {
    LargeBlock* block = nullptr;
    uintptr_t from = 0;
    uintptr_t to = 0;
    size_t given_back = 0;  // what its parts had given back before
  };
  // Frees `b`. Returns a region emptied by it to unmap once the lock is
  // released, or sets pending_ and `*decommit` to the pages of the kept
  // region to give back then (the caller's job in both cases).
  RegionHeader* FreeLocked(LargeBlock* b, PendingDecommit* decommit);
  // Puts the pending block `b` back on the lists once its pages went back
  // (or the kernel refused: `decommitted` false); nothing if it is not.
  void PushPendingLocked(LargeBlock* b, bool decommitted);
  // The free of a block that spans its region (`given_back`: bytes known
  // given back inside it): keeps the region, with its pages past the first
  // kKeptResident set in `*decommit` to go back once the lock is released,
  // or returns it for the caller to unmap if one is kept already.
  RegionHeader* EmptiedLocked(LargeBlock* b, size_t given_back, PendingDecommit* decommit);
  // Gives back the pending block's pages, with no lock held, and puts it back.
  void FinishDecommit(const PendingDecommit& decommit);
  // Takes into purging_ up to kPurgeBatch free blocks aged past
  // `max_age_ms` whose pages can go back, walking the bins from `*bin`
  // (left where the walk stopped: kBins when done).
  size_t TakeAgedLocked(uint64_t now_ms, uint64_t max_age_ms, size_t* bin);
  // What putting purged blocks back leaves to do once the lock is
  // released: regions they emptied, to keep (`decommit`) or unmap.
  struct AfterPurge;
  // Puts the purging_ blocks back on the lists, merged with neighbours freed
  // meanwhile; `decommitted[i]`: block i's pages went back (nullptr, and
  // `after` nullptr: a child after fork, where nothing happened).
  void ReturnPurgedLocked(const bool* decommitted, uint64_t now_ms, AfterPurge* after);
  // Takes off the bucket an empty region aged past `max_age_ms` (nullptr:
  // none), for the caller to unmap.
  RegionHeader* TakeAgedEmptyRegionLocked(uint64_t now_ms, uint64_t max_age_ms);
  // Records that the block `b` of `region`, just handed out or grown, may
  // be written.
  static void NoteUsed(LargeRegion* region, LargeBlock* b);
  // The page-aligned inside of a free block past its links: what decay
  // gives back.
  static uintptr_t InteriorStart(LargeBlock* b);
  static size_t InteriorBytes(LargeBlock* b);
  // The same for a block of `size` bytes at `block`, before its header is.
  static size_t InteriorBytesOf(uintptr_t block, size_t size);

  // Blocks whose pages a purge gives back with no lock held: off the
  // lists, marked in use (so that neighbours do not merge with them) with
  // an offset no pointer can match (so that no free or realloc takes them).
  struct PurgingBlock {
    LargeBlock* block;
    uint64_t freed_ms;  // as they were on the lists
    size_t given_back;
  };
  static constexpr size_t kPurgeBatch = 16;
  static constexpr size_t kBusy = ~size_t{0};    // (TakeAgedLocked's caller: not its turn)
  static constexpr uint64_t kPurgingOffset = 1;  // (pointers handed out are 16-aligned)
  struct AfterPurge {
    RegionHeader* unmap[kPurgeBatch];
    size_t unmap_count = 0;
    PendingDecommit decommit;
  };

  SpinLock lock_;
  PendingDecommit pending_;
  PurgingBlock purging_[kPurgeBatch] = {};
  size_t purging_count_ = 0;
  const size_t max_request_;
  const size_t region_size_;
  Heap* const heap_;
  LargeBlock* bins_[kBins] = {};
  uint64_t nonempty_[kBins / 64] = {};  // bit b: bins_[b] is not empty
  RegionList regions_;
  size_t empty_regions_ = 0;
  size_t blocks_in_use_ = 0;
  size_t bytes_in_use_ = 0;
  size_t regions_mapped_ = 0;
  size_t regions_unmapped_ = 0;
  size_t bytes_decommitted_ = 0;
};

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_LARGE_BUCKET_H_
