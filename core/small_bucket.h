// Small buckets: one per size class; slabs of equal blocks with no headers.
//
// A small region (256 KiB .. 1 MiB, spanning at least 16 blocks' bytes):
//
//   ┌──────────────┬─────────────┬────────┬─────────────┬────────┬────────┬─────┬──────────┐
//   │ RegionHeader │ SmallRegion │ colour │ allocated / │ block0 │ block1 │ ... │ uncarved │
//   │              │ fields      │ gap    │ aligned bits│        │        │     │ (bump)   │
//   └──────────────┴─────────────┴────────┴─────────────┴────────┴────────┴─────┴──────────┘
//                                          ▲ bitmap_offset ▲ first_offset
//   The colour gap is 0..15 cache lines by bucket (see kCacheColours).
//   Blocks carry no metadata: the allocated bitmap finds the lowest free
//   block below the bump index (a write after free cannot redirect an
//   allocation), and decay can give back the pages of free blocks.
//
// A bucket (one cache line of hot state, its own lock):
//
//   SmallBucket ── lock
//              ├── partial: regions with a free or uncarved block ─► R ⇄ R ⇄ R
//              ├── full:    regions with every block in use       ─► R ⇄ R
//              ├── empty:   regions with no block in use, newest first ─► R ⇄ R
//              └── decommitting: partial regions a purge took off the
//                           lists while it gives their free pages back
//                           with no lock held                     ─► R ⇄ R
//
// Empty regions stay mapped for reuse, as many bytes as the bucket has in use
// (at least kEmptyBytesLimit), the rest for kCycleMillis in a bucket that
// allocates and frees in cycles; Purge() unmaps those that have stayed empty
// longer than a decay time.
#ifndef RULLOC_CORE_SMALL_BUCKET_H_
#define RULLOC_CORE_SMALL_BUCKET_H_

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "concurrency/spin_lock.h"
#include "core/region.h"

namespace rulloc::internal {

class SmallBucket;

// Where the blocks of a small region lie: the same for every unguarded
// region of a bucket (and for every guarded one), so free() can take it
// from a table by bucket.
struct SmallLayout {
  uint32_t block_size;
  uint32_t capacity;       // blocks that fit in the region
  uint32_t first_offset;   // offset of block 0 from the region base
  uint32_t bitmap_offset;  // offset of the allocated bitmap from the region base
  // Exact division by block_size = 2^block_shift * odd (Hacker's Delight,
  // 10-17): n times odd's inverse mod 2^32, rotated right by block_shift,
  // is n / block_size when block_size divides n, and above
  // UINT32_MAX / block_size (so above any index) when it does not.
  uint32_t block_shift;
  uint32_t odd_inverse;

  // Index of the block that starts `offset` bytes past the region base if
  // one does, else some value of capacity or more. No division.
  constexpr uint32_t UncheckedBlockIndex(uintptr_t offset) const {
    const uint32_t in_blocks = static_cast<uint32_t>(offset) - first_offset;
    return std::rotr(in_blocks * odd_inverse, static_cast<int>(block_shift));
  }
  // Index of the block that starts `offset` bytes past the region base, or
  // capacity when no block starts there. No division, one comparison.
  constexpr uint32_t BlockStartingAt(uintptr_t offset) const {
    const uint32_t index = UncheckedBlockIndex(offset);
    return index < capacity ? index : capacity;
  }
};

struct SmallRegion {
  RegionHeader header;
  SmallBucket* bucket;
  SmallLayout layout;
  uint32_t carved;        // blocks handed out at least once (bump index)
  uint32_t used;          // blocks not free in the region
  uint16_t bucket_index;  // position of the bucket in its table (fewer than 256)
  uint16_t free_hint;     // no free block in bitmap words below this (≤ 1024 words)
  bool in_full_list;
  bool free_dirty;                        // a block was freed since the last page purge
  std::atomic<bool> has_aligned;          // some block was handed out at an offset
  bool decommitting;                      // off the lists while a purge gives its free pages back
  uint32_t purge_walk;                    // the last purge walk that took it off the lists
  uint32_t populated_end;                 // offset up to which the bucket has populated pages
  uint64_t last_free_ms;                  // time of the last free into the region
  std::atomic<uint64_t>* allocated_bits;  // one bit per block: handed out
  std::atomic<uint64_t>* aligned_bits;    // one bit per block: handed out at an offset

  char* base() { return reinterpret_cast<char*>(this); }
  char* BlockAt(uint32_t index) {
    return base() + layout.first_offset + size_t{index} * layout.block_size;
  }
  // Index of the block that contains `p`, and whether `p` is its start.
  uint32_t IndexOf(const void* p, bool* at_start) const;
  // Index of the block that starts exactly at `p`, or capacity when `p` is
  // not a block start. No division.
  uint32_t BlockStartingAt(const void* p) const {
    return layout.BlockStartingAt(reinterpret_cast<uintptr_t>(p) -
                                  reinterpret_cast<uintptr_t>(this));
  }
  // Like BlockStartingAt, and the block must be handed out at its start
  // (not at an offset, as an over-aligned block). Lock-free.
  uint32_t HandedOutBlockAt(const void* p) const {
    const uint32_t index = BlockStartingAt(p);
    if (index == layout.capacity) return layout.capacity;
    const uint64_t word = allocated_bits[index / 64].load(std::memory_order_relaxed);
    if (((word >> (index % 64)) & 1) == 0) return layout.capacity;
    if (!has_aligned.load(std::memory_order_relaxed)) return index;
    const uint64_t aligned = aligned_bits[index / 64].load(std::memory_order_relaxed);
    return (aligned >> (index % 64)) & 1 ? layout.capacity : index;
  }
  // The start of the block holding `p`, or nullptr if `p` is not a pointer
  // this region handed out (interior pointer of a plain block, or header).
  void* BlockStart(const void* p) const;
  // Gives back the pages that only free blocks cover, and those populated
  // past the blocks carved; returns the bytes of the first.
  // With the lock held, or with no lock when the region is off the lists
  // (no block of it can be handed out then; a free meanwhile only adds a
  // free block whose pages may or may not go back).
  size_t DecommitFreePages();
};
// Two cache lines: the bitmap after it starts on a line of its own.
static_assert(sizeof(SmallRegion) == 128);

// Blocks start at this alignment past a region's header and bitmaps.
inline constexpr uint32_t kBlockStartAlignment = 64;

// Cache colours: region bases are multiples of 64 KiB, so the allocated
// bitmaps of all regions (read by every free) would share one set of the L1
// and L2 caches, and a thread going through many size classes would evict
// its own metadata. Each bucket moves its bitmap by its colour times a cache
// line (slab colouring, Bonwick 1994); where the bitmaps are short the first
// blocks move with them.
inline constexpr uint32_t kCacheColours = 16;
inline constexpr uint32_t kCacheLine = 64;
constexpr uint32_t BitmapOffset(uint32_t bucket_index) {
  return static_cast<uint32_t>(sizeof(SmallRegion)) + bucket_index % kCacheColours * kCacheLine;
}

constexpr uint32_t BitmapWords(uint32_t capacity) { return (capacity + 63) / 64; }
// The region header, colour gap and allocated and aligned bitmaps.
constexpr uint32_t SmallHeaderBytes(uint32_t capacity, uint32_t bitmap_offset) {
  return static_cast<uint32_t>(bitmap_offset +
                               2 * BitmapWords(capacity) * sizeof(std::atomic<uint64_t>));
}

// The most blocks of `block_size` that fit in a region of `region_size`
// after its header (which grows with their count), for the bucket at
// `bucket_index` (its cache colour). `guard_page` > 0: a guard page after
// the header and one at the end (hardened mode).
constexpr SmallLayout SmallLayoutFor(uint32_t block_size, uint32_t region_size,
                                     uint32_t bucket_index, uint32_t guard_page) {
  SmallLayout l{};
  l.block_size = block_size;
  l.bitmap_offset = BitmapOffset(bucket_index);
  const uint32_t end = region_size - guard_page;
  for (l.capacity = region_size / block_size;; --l.capacity) {
    const uint32_t header = SmallHeaderBytes(l.capacity, l.bitmap_offset);
    l.first_offset = guard_page != 0
                         ? static_cast<uint32_t>(AlignUp(header, guard_page) + guard_page)
                         : static_cast<uint32_t>(AlignUp(header, kBlockStartAlignment));
    if (l.first_offset + size_t{l.capacity} * block_size <= end) break;
  }
  l.block_shift = static_cast<uint32_t>(__builtin_ctz(block_size));
  const uint32_t odd = block_size >> l.block_shift;
  uint32_t inverse = odd;  // Newton's iteration for the inverse mod 2^32
  for (int i = 0; i < 5; ++i) inverse *= 2 - odd * inverse;
  l.odd_inverse = inverse;
  return l;
}

struct SmallBucketStats {
  size_t block_size = 0;
  size_t blocks_in_use = 0;  // handed out of the bucket (to users or caches)
  size_t blocks_free = 0;    // free or uncarved in the bucket's regions
  size_t regions = 0;
  size_t bytes_mapped = 0;
  size_t regions_mapped = 0;     // cumulative
  size_t regions_unmapped = 0;   // cumulative
  size_t bytes_decommitted = 0;  // cumulative: pages of free blocks given back by decay

  // Adds the counts of another bucket of the same block size (an arena's).
  SmallBucketStats& operator+=(const SmallBucketStats& other) {
    blocks_in_use += other.blocks_in_use;
    blocks_free += other.blocks_free;
    regions += other.regions;
    bytes_mapped += other.bytes_mapped;
    regions_mapped += other.regions_mapped;
    regions_unmapped += other.regions_unmapped;
    bytes_decommitted += other.bytes_decommitted;
    return *this;
  }
};

class alignas(64) SmallBucket {
 public:
  // A region that becomes empty is unmapped at once if the bucket's empty
  // regions would exceed both this floor and the bytes the bucket has in
  // use (one empty region is always kept)...
  static constexpr size_t kEmptyBytesLimit = size_t{1} << 20;
  // ... unless the bucket is cycling (it handed out blocks after a region of
  // it had emptied, and took an empty or new region for them less than this
  // long ago): then once it has been empty this long, at the next emptying
  // or purge (mimalloc's purge delay is as long).
  static constexpr uint64_t kCycleMillis = 10;
  // A purge gives the free pages of partial regions back with no lock held,
  // this many regions at a time, looking at no more than kWalkStep regions
  // per lock hold.
  static constexpr size_t kDecommitBatch = 8;
  static constexpr size_t kWalkStep = 64;
  // Once a bucket has this many bytes of regions besides the one it carves,
  // the pages of the blocks it carves are made resident (platform::
  // Populate) kPopulateStep of the region at a time, as the carving enters
  // each step, in one system call instead of a page fault each at their
  // first touch. Pages populated past the blocks carved (one step at most
  // per region) go back with the free blocks' pages when a decay takes the
  // region (DecommitFreePages), and on a trim.
  static constexpr size_t kPopulateAfterBytes = size_t{1} << 20;
  static constexpr uint32_t kPopulateStep = 64 * 1024;

  // `arena`: which of its heap's sets of buckets this one belongs to.
  // `heap` nullptr: the process allocator's heap. Its buckets are constant
  // data of librulloc.so; a pointer in each would be a load-time relocation,
  // and the loader would write (copy) every page of them in every process.
  constexpr SmallBucket(uint32_t block_size, uint32_t index, Heap* heap, uint32_t arena = 0)
      : block_size_(block_size),
        region_size_(RegionSizeFor(block_size)),
        index_(index),
        arena_(arena),
        heap_(heap) {}
  SmallBucket(const SmallBucket&) = delete;
  SmallBucket& operator=(const SmallBucket&) = delete;

  static constexpr uint32_t RegionSizeFor(uint32_t block_size) {
    uint32_t size = 256 * 1024;
    while (size < block_size * 16u) size *= 2;
    return size;
  }

  uint32_t block_size() const { return block_size_; }
  uint32_t arena() const { return arena_; }

  // Fills out[0..n) with blocks; returns how many it got (0 when the OS
  // refuses memory, and no region a purge has off the lists is left to
  // wait for). One lock acquisition for the whole batch.
  size_t AllocateBatch(void** out, size_t n);
  // As AllocateBatch, at the time `now_ms` (CoarseMonotonicMillis's clock;
  // kReadClock: read it if needed).
  static constexpr uint64_t kReadClock = 0;
  size_t AllocateBatchAt(void** out, size_t n, uint64_t now_ms);
  // As AllocateBatch, but only blocks that were handed out and freed since
  // (their pages were touched, unless a purge gave them back): never a new
  // block or region. No lock is taken when reusable() is 0.
  size_t AllocateFreed(void** out, size_t n);
  // Freed blocks in the bucket's regions, read without the lock (a hint).
  size_t reusable() const { return reusable_.load(std::memory_order_relaxed); }
  // A block whose address is `alignment`-aligned (alignment <= block size);
  // the pointer may be inside the block.
  void* AllocateAligned(size_t alignment);
  // Returns blocks to their regions. Each must be a pointer this bucket
  // handed out; anything else is reported as heap misuse.
  void FreeBatch(void* const* blocks, size_t n);
  void Free(void* block) { FreeBatch(&block, 1); }
  // As FreeBatch, at the time `now_ms` (CoarseMonotonicMillis's clock).
  void FreeBatchAt(void* const* blocks, size_t n, uint64_t now_ms);

  // Unmaps the empty regions that became empty at or before
  // `now_ms - max_age_ms`, and gives back the pages of free blocks in
  // regions without a free since then. Returns the bytes unmapped.
  size_t Purge(uint64_t now_ms, uint64_t max_age_ms);
  // Unmaps every region (the owning allocator is being destroyed).
  void ReleaseAll();
  // In a child after fork, with the lock held: regions a purge in the
  // parent took off the lists go back (that purge will not finish here).
  void AdoptDecommittingAfterFork();
  // Held across fork() so that the child sees consistent buckets.
  SpinLock& lock() { return lock_; }
  SmallBucketStats Stats();

 private:
  // Regions taken off the bucket under its lock, unmapped when it goes out
  // of scope (declare it before the lock holder).
  struct Unmapper {
    static constexpr size_t kCapacity = 16;
    ~Unmapper();
    RegionHeader* regions[kCapacity];
    size_t count = 0;
  };

  Heap& heap() const;
  SmallRegion* NewRegion();
  SmallRegion* RegionWithFreeBlock(uint64_t now_ms);
  // Moves the newest empty region to the partial list, or returns nullptr.
  SmallRegion* TakeEmptyRegion(uint64_t now_ms);
  void NoteRegionTaken(uint64_t now_ms);
  // Takes an empty region off the bucket's counts and unmaps it, at once or
  // through `later`.
  void UnmapEmpty(SmallRegion* r, Unmapper* later);
  // Clears the allocated bit of block `p` of `r` and lowers `lowest_word`
  // to its bitmap word; returns the fault (for a report once the lock is
  // released), or nullptr. Inline: FreeBatchAt, in small_bucket.cc, is its
  // only caller.
  inline const char* ClearBlockLocked(SmallRegion* r, void* p, uint32_t* lowest_word);
  // Updates the region's, its list's and the bucket's counts for `count`
  // blocks of `r` just cleared (the lowest in bitmap word `lowest_word`);
  // may move `r` to the empty list and queue regions on `later`.
  void FreedFromRegionLocked(SmallRegion* r, uint32_t count, uint32_t lowest_word, uint64_t now_ms,
                             Unmapper* later);
  // Pages of blocks just carved, populated once the lock is released.
  struct PopulateLater;
  // `populate`: where the pages of blocks it carves go (nullptr: nowhere).
  size_t PopLocked(SmallRegion* r, void** out, size_t n, PopulateLater* populate);
  // Adds the pages of blocks [from, to) of `r`, carved now, to `populate`,
  // up to the end of the step the last one ends in, past
  // kPopulateAfterBytes.
  void PopulateCarved(SmallRegion* r, uint32_t from, uint32_t to, PopulateLater* populate);
  // Under the lock: a plain load and store, no read-modify-write.
  void AddReusable(ptrdiff_t delta) {
    reusable_.store(reusable_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  // Unmaps the oldest empty regions past the bucket's bound (kCycleMillis).
  void UnmapExcessLocked(uint64_t now_ms, Unmapper* later);
  // Puts `r`, off every list and with no block in use, on the empty list,
  // and unmaps the regions past the bucket's bound.
  void EmptiedLocked(SmallRegion* r, uint64_t now_ms, Unmapper* later);
  // Gives back the free pages of partial regions with no free since
  // `now_ms - max_age_ms`: a few regions at a time, taken off the lists,
  // their madvise run with no lock held. Returns the bytes unmapped (of
  // regions whose last blocks were freed meanwhile, past the bucket's bound).
  size_t DecommitAgedPartials(uint64_t now_ms, uint64_t max_age_ms);
  // Takes up to kDecommitBatch aged regions from the walk's cursor into
  // `batch`, looking at kWalkStep at most; returns how many.
  size_t TakeAgedPartialsLocked(uint64_t now_ms, uint64_t max_age_ms, SmallRegion** batch);
  // Puts regions taken off by TakeAgedPartialsLocked back: an emptied one
  // on the empty list, the others at the back of the partial list (their
  // free pages are the cold ones now).
  void ReturnDecommittedLocked(SmallRegion* const* batch, size_t n, uint64_t now_ms,
                               Unmapper* later);
  void PutBackLocked(SmallRegion* r, uint64_t now_ms, Unmapper* later);

  SpinLock lock_;
  const uint32_t block_size_;
  const uint32_t region_size_;
  const uint32_t index_;
  const uint32_t arena_;
  Heap* const heap_;  // nullptr: the process allocator's (see the constructor)
  RegionList partial_;
  RegionList full_;
  RegionList empty_;
  size_t blocks_in_use_ = 0;
  size_t blocks_free_ = 0;
  // Σ carved − used over the regions: blocks below the bump index that are
  // free. Written under the lock; read without it by reusable().
  std::atomic<size_t> reusable_{0};
  size_t regions_mapped_ = 0;
  size_t regions_unmapped_ = 0;
  // Set with the first region; read without the lock by Purge and Stats,
  // so that they leave a bucket that never had one untouched (no write to
  // its lock: the process allocator's buckets stay clean pages of .data).
  std::atomic<bool> mapped_a_region_{false};
  size_t pages_decommitted_ = 0;  // cumulative bytes of free-block pages given back
  // For the release of empty regions (see kCycleMillis).
  uint64_t region_taken_ms_ = 0;  // an allocation last took an empty or new region
  bool emptied_before_ = false;   // a region has emptied
  bool cycled_ = false;           // and blocks were handed out after that
  // For the purge of partial regions (DecommitAgedPartials).
  bool walking_partials_ = false;  // a purge walks partial_ (one at a time)
  uint32_t purge_walks_ = 0;       // walks begun (numbers them)
  RegionList decommitting_;
};

// The layouts of unguarded regions of a bucket table, by bucket.
template <class Table>
inline constexpr auto kUnguardedLayouts = [] {
  std::array<SmallLayout, Table::kSizes.size()> layouts{};
  for (size_t i = 0; i < layouts.size(); ++i) {
    layouts[i] = SmallLayoutFor(Table::kSizes[i], SmallBucket::RegionSizeFor(Table::kSizes[i]),
                                static_cast<uint32_t>(i), 0);
  }
  return layouts;
}();

// The fast free's view of the unguarded layouts, by page-map tag (bucket
// + 1): offsets are from the tagged entry (region base + tag), and tag 0
// (no tagged region) has capacity 0, so no block index passes it.
//
//   kTaggedLayouts:  [0] capacity 0 | [1] bucket 0 | [2] bucket 1 | ...
struct TaggedLayout {
  uint32_t capacity;
  uint32_t first_from_entry;   // first_offset - tag
  uint32_t bitmap_from_entry;  // bitmap_offset - tag
  uint32_t block_shift;
  uint32_t odd_inverse;

  // As SmallLayout::UncheckedBlockIndex, for `from_entry` = address - entry.
  constexpr uint32_t UncheckedBlockIndex(uintptr_t from_entry) const {
    const uint32_t in_blocks = static_cast<uint32_t>(from_entry) - first_from_entry;
    return std::rotr(in_blocks * odd_inverse, static_cast<int>(block_shift));
  }
  // The allocated bitmap of the region whose granules hold `entry`.
  const std::atomic<uint64_t>* AllocatedBits(uintptr_t entry) const {
    return reinterpret_cast<const std::atomic<uint64_t>*>(entry + bitmap_from_entry);
  }
};
template <class Table>
inline constexpr auto kTaggedLayouts = [] {
  // Offsets from the entry are unsigned: each (past the header) must be at
  // least its tag.
  static_assert(sizeof(SmallRegion) > Table::kSizes.size(), "an offset below its tag would wrap");
  std::array<TaggedLayout, Table::kSizes.size() + 1> tagged{};
  for (uint32_t tag = 1; tag < tagged.size(); ++tag) {
    const SmallLayout& l = kUnguardedLayouts<Table>[tag - 1];
    tagged[tag] = {l.capacity, l.first_offset - tag, l.bitmap_offset - tag, l.block_shift,
                   l.odd_inverse};
  }
  return tagged;
}();

}  // namespace rulloc::internal

#endif  // RULLOC_CORE_SMALL_BUCKET_H_
