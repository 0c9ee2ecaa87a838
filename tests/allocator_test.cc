#include "core/allocator.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/page_map.h"
#include "core/region.h"
#include "core/region_carver.h"
#include "core/runtime_options.h"
#include "gtest/gtest.h"
#include "platform/pages.h"
#include "tests/kernel.h"
#include "tests/resident_pages.h"
#include "tests/sanitizers.h"

namespace rulloc {
namespace {

bool IsAligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

TEST(AllocatorTest, EverySizeRegimeRoundTrips) {
  Allocator a;
  for (size_t size : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{100},
                      size_t{4096}, size_t{32768}, size_t{32769}, size_t{100000}, size_t{1} << 20,
                      size_t{2} << 20, (size_t{2} << 20) + 1, size_t{50} << 20}) {
    void* p = a.allocate(size);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_TRUE(IsAligned(p, 16)) << size;
    EXPECT_GE(a.usable_size(p), size);
    std::memset(p, 0xcd, size);
    a.deallocate(p);
  }
}

TEST(AllocatorTest, DistinctLiveBlocks) {
  Allocator a;
  std::vector<char*> blocks;
  for (int i = 0; i < 10000; ++i) {
    auto* p = static_cast<char*>(a.allocate(24));
    ASSERT_NE(p, nullptr);
    std::memset(p, i & 0xff, 24);
    blocks.push_back(p);
  }
  for (int i = 0; i < 10000; ++i) {
    for (int j = 0; j < 24; ++j) ASSERT_EQ(blocks[i][j], static_cast<char>(i & 0xff));
    a.deallocate(blocks[i]);
  }
  EXPECT_EQ(a.stats().small_blocks_in_use, 0u);
}

TEST(AllocatorTest, AlignmentsFromOneByteToOneMebibyte) {
  Allocator a;
  for (size_t alignment = 1; alignment <= (size_t{1} << 20); alignment <<= 1) {
    for (size_t size : {size_t{1}, size_t{48}, size_t{5000}, size_t{40000}, size_t{3} << 20}) {
      void* p = a.allocate(size, alignment);
      ASSERT_NE(p, nullptr) << size << " @ " << alignment;
      EXPECT_TRUE(IsAligned(p, alignment < 16 ? 16 : alignment)) << size << " @ " << alignment;
      EXPECT_GE(a.usable_size(p), size);
      std::memset(p, 0x11, size);
      a.deallocate(p);
    }
  }
  EXPECT_EQ(a.stats().small_blocks_in_use, 0u);
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
  EXPECT_EQ(a.stats().huge_blocks_in_use, 0u);
}

TEST(AllocatorTest, ZeroSizeOverAlignedBlocksStayInsideTheirBlock) {
  Allocator a;
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) {
    void* p = a.allocate(0, 64);
    ASSERT_TRUE(IsAligned(p, 64));
    EXPECT_GE(a.usable_size(p), 1u);
    blocks.push_back(p);
  }
  for (void* p : blocks) a.deallocate(p);
}

TEST(AllocatorTest, AlignmentLargerThanTheLargeRange) {
  Allocator a;
  void* p = a.allocate(100, size_t{16} << 20);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(IsAligned(p, size_t{16} << 20));
  a.deallocate(p);
}

TEST(AllocatorTest, AlignmentsFarBeyondThePayload) {
  // The mapping of a small block aligned to 16 GiB is mostly the gap before
  // its payload, never touched: it is not charged against the commit limit
  // (a machine with less memory than the gap still serves it).
  Allocator a;
  for (size_t alignment : {size_t{1} << 30, size_t{1} << 34}) {
    auto* p = static_cast<char*>(a.allocate(100, alignment));
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_TRUE(IsAligned(p, alignment));
    std::memset(p, 0x3c, 100);
    p = static_cast<char*>(a.reallocate(p, 300, alignment));
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_TRUE(IsAligned(p, alignment));
    EXPECT_EQ(p[99], 0x3c);
    a.deallocate(p);
  }
}

TEST(AllocatorTest, UsableSizeOfNullIsZero) {
  Allocator a;
  EXPECT_EQ(a.usable_size(nullptr), 0u);  // as malloc_usable_size and rulloc_usable_size
}

TEST(AllocatorTest, BadAlignmentIsEinval) {
  Allocator a;
  for (size_t alignment : {size_t{3}, size_t{24}, size_t{1000}, ~size_t{0}}) {
    errno = 0;
    EXPECT_EQ(a.allocate(16, alignment), nullptr);
    EXPECT_EQ(errno, EINVAL);
  }
}

TEST(AllocatorTest, ImpossibleSizesAreEnomem) {
  Allocator a;
  for (size_t size : {~size_t{0}, ~size_t{0} - 4096, size_t{1} << 62, size_t{1} << 47}) {
    errno = 0;
    EXPECT_EQ(a.allocate(size), nullptr) << size;
    EXPECT_EQ(errno, ENOMEM) << size;
  }
}

TEST(AllocatorTest, ZeroedMemory) {
  Allocator a;
  for (size_t size : {size_t{8}, size_t{3000}, size_t{200000}, size_t{5} << 20}) {
    auto* p = static_cast<unsigned char*>(a.allocate(size));
    std::memset(p, 0xff, size);
    a.deallocate(p);
    auto* z = static_cast<unsigned char*>(a.allocate_zeroed(size));
    ASSERT_NE(z, nullptr);
    for (size_t i = 0; i < size; ++i) ASSERT_EQ(z[i], 0) << i;
    a.deallocate(z);
  }
}

TEST(AllocatorTest, ReallocateKeepsContents) {
  Allocator a;
  auto* p = static_cast<unsigned char*>(a.allocate(10));
  for (int i = 0; i < 10; ++i) p[i] = static_cast<unsigned char>(i);
  size_t size = 10;
  for (size_t next : {size_t{100}, size_t{5000}, size_t{70000}, size_t{1} << 20, size_t{9} << 20,
                      size_t{300000}, size_t{20}}) {
    p = static_cast<unsigned char*>(a.reallocate(p, next));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < 10; ++i) ASSERT_EQ(p[i], i) << next;
    size = next;
  }
  (void)size;
  a.deallocate(p);
}

TEST(AllocatorTest, LargeBlocksGrowAndShrinkInPlace) {
  Allocator a;
  void* p = a.allocate(100000);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.reallocate(p, 200000), p);  // the rest of a fresh region follows it
  EXPECT_GE(a.usable_size(p), 200000u);
  EXPECT_EQ(a.reallocate(p, 120000), p);
  EXPECT_LT(a.usable_size(p), 200000u);
  a.deallocate(p);
}

TEST(AllocatorTest, AGrowingBufferMovesToALargeBucketAndGrowsThereInPlace) {
  Allocator a;
  auto* p = static_cast<char*>(a.allocate(3000));
  std::memset(p, 'x', 3000);
  p = static_cast<char*>(a.reallocate(p, 5000));  // past kGrowInPlaceMin
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.stats().large_blocks_in_use, 1u);
  EXPECT_EQ(a.stats().small_blocks_in_use, 0u);
  EXPECT_EQ(p[2999], 'x');
  EXPECT_EQ(a.reallocate(p, 9000), p);  // the rest of a fresh region follows it
  EXPECT_EQ(a.reallocate(p, 6000), p);  // and shrinks there too
  a.deallocate(p);
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
}

// A block that grows into a free neighbour whose pages decay gave back
// takes only what it needs: the rest of the neighbour stays given back.
TEST(AllocatorTest, GrowingIntoADecayedNeighbourRecommitsOnlyWhatItTakes) {
  Allocator a;
  void* p = a.allocate(100000);
  void* neighbour = a.allocate(size_t{1} << 20);
  void* after = a.allocate(100000);  // keeps the neighbour off the region's tail
  ASSERT_TRUE(p != nullptr && neighbour != nullptr && after != nullptr);
  a.deallocate(neighbour);
  a.trim();  // no decay delay: the free neighbour's pages go back now
  const size_t committed = a.stats().bytes_committed;
  ASSERT_EQ(a.reallocate(p, 300000), p);  // the neighbour follows it
  const size_t grown = a.stats().bytes_committed - committed;
  EXPECT_GE(grown, 190000u);
  EXPECT_LE(grown, 200000u + 3 * platform::PageSize());
  a.deallocate(p);
  a.deallocate(after);
}

// Shrinking by less than half keeps a block where it is, whichever kind it
// is: a small one, a large one that goes below the large range, a huge one
// that goes below the huge range.
TEST(AllocatorTest, ShrinkingByLessThanHalfKeepsTheBlock) {
  Allocator a;
  const struct {
    size_t from, to;
  } shrinks[] = {{1000, 900}, {5000, 3000}, {size_t{5} << 19, size_t{3} << 19}};  // 2.5 -> 1.5 MiB
  for (const auto& shrink : shrinks) {
    void* p = a.allocate(shrink.from);
    EXPECT_EQ(a.reallocate(p, shrink.to), p) << shrink.from;
    a.deallocate(p);
  }
}

TEST(AllocatorTest, FailedReallocateLeavesTheBlock) {
  Allocator a;
  auto* p = static_cast<char*>(a.allocate(64));
  std::strcpy(p, "still here");
  errno = 0;
  EXPECT_EQ(a.reallocate(p, ~size_t{0} / 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_STREQ(p, "still here");
  a.deallocate(p);
}

TEST(AllocatorTest, LargeBlocksCoalesce) {
  Allocator a;
  void* first = a.allocate(40000);
  void* second = a.allocate(40000);
  void* pin = a.allocate(40000);  // keeps the region from emptying
  a.deallocate(first);
  a.deallocate(second);
  // Only the two neighbours merged into one free block can hold this.
  void* merged = a.allocate(60000);
  EXPECT_EQ(merged, first);
  a.deallocate(merged);
  a.deallocate(pin);
}

TEST(AllocatorTest, InstancesAreIndependent) {
  auto a = std::make_unique<Allocator>();
  auto b = std::make_unique<Allocator>();
  void* pa = a->allocate(100);
  void* pb = b->allocate(100);
  EXPECT_TRUE(a->owns(pa));
  EXPECT_FALSE(a->owns(pb));
  EXPECT_TRUE(b->owns(pb));
  a->deallocate(pa);
  b->deallocate(pb);
}

TEST(AllocatorTest, DestroyingAnInstanceReturnsItsMemory) {
  auto a = std::make_unique<Allocator>();
  for (int i = 0; i < 1000; ++i) a->allocate(1000);  // leaked on purpose
  void* huge = a->allocate(size_t{64} << 20);
  std::memset(huge, 1, size_t{64} << 20);
  EXPECT_GT(a->stats().bytes_mapped, size_t{64} << 20);
  const size_t before = platform::ResidentBytes();
  a.reset();
  EXPECT_LT(platform::ResidentBytes() + (size_t{60} << 20), before);
}

TEST(AllocatorTest, ResidentMemoryFallsAfterALargeFree) {
  Allocator a;
  constexpr size_t kBlocks = 2000;
  constexpr size_t kSize = 100000;  // large path: 200 MB in all
  std::vector<void*> blocks;
  const size_t start = platform::ResidentBytes();
  for (size_t i = 0; i < kBlocks; ++i) {
    void* p = a.allocate(kSize);
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x77, kSize);
    blocks.push_back(p);
  }
  const size_t peak = platform::ResidentBytes();
  for (void* p : blocks) a.deallocate(p);
  // Under a sanitizer, trim unmaps the one empty region the bucket keeps
  // too, and the sanitizer's shadow of the freed range (an eighth of it)
  // may stay resident: some of its runtimes give it back on munmap, others
  // do not.
  size_t shadow = 0;
  if (test_support::kUnderSanitizer) {
    a.trim();
    shadow = kBlocks * kSize / 8;
  }
  const size_t after = platform::ResidentBytes();
  std::printf("RSS: start %zu MiB, peak %zu MiB, after free %zu MiB\n", start >> 20, peak >> 20,
              after >> 20);
  EXPECT_GT(peak, start + kBlocks * kSize * 9 / 10);
  EXPECT_LT(after, start + shadow + (size_t{20} << 20));
}

// Called by the allocator on entry to every Decommit (see platform/pages.h).
void (*decommit_observer)(void* ptr, size_t size) = nullptr;

// Runs `action` on another thread from inside the first Decommit that starts
// in [from, from + size), and waits there up to `limit` for it: the pages go
// back only after. An action that needs a lock held across that madvise
// cannot end in the window (a deadlock the limit turns into a failure; the
// thread is joined once the madvise is over).
class ActionInsideDecommit {
 public:
  ActionInsideDecommit(const void* from, size_t size, std::function<void()> action,
                       std::chrono::seconds limit)
      : from_(reinterpret_cast<uintptr_t>(from)),
        to_(from_ + size),
        action_(std::move(action)),
        limit_(limit) {
    active_ = this;
    decommit_observer = &Observe;
  }
  ~ActionInsideDecommit() { Finish(); }

  // Waits for the action to end (it may decommit too), then stops watching.
  void Finish() {
    if (other_.joinable()) other_.join();
    decommit_observer = nullptr;
    active_ = nullptr;
  }
  int calls() const { return calls_; }  // decommits seen in the range
  bool started() const { return calls_ > 0; }
  // The decommit is waiting for the action (for the action to tell that it
  // runs inside the window, not after a late start).
  bool waiting() const { return waiting_; }
  bool done_in_window() const { return done_in_window_; }

 private:
  static void Observe(void* ptr, size_t) {
    ActionInsideDecommit* self = active_;
    const auto addr = reinterpret_cast<uintptr_t>(ptr);
    if (self == nullptr || addr < self->from_ || addr >= self->to_ || ++self->calls_ > 1) return;
    self->waiting_ = true;  // (before the action can ask)
    self->other_ = std::thread([self] {
      self->action_();
      self->done_.set_value();
    });
    self->done_in_window_ =
        self->done_.get_future().wait_for(self->limit_) == std::future_status::ready;
    self->waiting_ = false;
  }

  static inline ActionInsideDecommit* active_ = nullptr;
  const uintptr_t from_;
  const uintptr_t to_;
  const std::function<void()> action_;
  const std::chrono::seconds limit_;
  std::atomic<int> calls_{0};
  std::atomic<bool> waiting_{false};
  std::promise<void> done_;
  std::thread other_;
  bool done_in_window_ = false;
};

// While a free that emptied a large region gives its pages back, another
// thread allocates and frees in the same bucket: the madvise runs with no
// lock held. (With the lock held the other thread would wait for the
// madvise, which waits for it: the timeout reports that deadlock, and the
// test joins the thread once the free is over.)
TEST(AllocatorTest, ALargeFreeGivesPagesBackWithNoLockHeld) {
  Allocator a;
  constexpr size_t kSize = size_t{1} << 20;
  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) {  // past the 4 MiB the kept region keeps resident
    blocks.push_back(a.allocate(kSize));
    std::memset(blocks.back(), 1, kSize);
  }
  const internal::RegionHeader* region = internal::PageMap::Lookup(blocks.front());
  ActionInsideDecommit inside(
      region, region->size,
      [&a] {
        void* p = a.allocate(100000);
        std::memset(p, 1, 100000);
        a.deallocate(p);
      },
      std::chrono::seconds(60));
  for (void* p : blocks) a.deallocate(p);  // the last one empties the region
  inside.Finish();
  EXPECT_EQ(inside.calls(), 1);
  EXPECT_TRUE(inside.done_in_window());
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
  // The region is kept, with its block back on the lists: reused, not remapped.
  const size_t mapped = a.stats().regions_mapped;
  void* again = a.allocate(kSize);
  EXPECT_EQ(again, blocks.front());
  EXPECT_EQ(a.stats().regions_mapped, mapped);
  a.deallocate(again);
}

// A partial small bucket for the tests below: six regions of 64-byte
// blocks, one block kept in every two pages' worth (runs of free blocks a
// whole page or more long between them), the others freed at time 1000. A
// purge at 5000 takes all six off the lists in one batch.
struct FragmentedSmallBucket {
  explicit FragmentedSmallBucket(Allocator& a) : bucket(a.heap().SmallBucketFor(64)) {
    const size_t n = 6 * 4000;
    const size_t stride = 2 * platform::PageSize() / 64;
    std::vector<void*> blocks(n);
    EXPECT_EQ(bucket.AllocateBatchAt(blocks.data(), n, 1000), n);
    watched = internal::PageMap::Lookup(blocks[n / 2]);
    for (size_t i = 0; i < n; ++i) {
      regions.insert(internal::PageMap::Lookup(blocks[i]));
      if (i % stride != 0) {
        bucket.FreeBatchAt(&blocks[i], 1, 1000);
      } else {
        (internal::PageMap::Lookup(blocks[i]) == watched ? kept_in_watched : kept)
            .push_back(blocks[i]);
      }
    }
    EXPECT_LE(regions.size(), internal::SmallBucket::kDecommitBatch);
  }
  internal::SmallBucket& bucket;
  const internal::RegionHeader* watched;  // a region whose madvise the test stands in
  std::set<const internal::RegionHeader*> regions;
  std::vector<void*> kept_in_watched;
  std::vector<void*> kept;  // in the other regions
};

// A purge gives the free pages of partial small regions back with no lock
// held: meanwhile another thread allocates in the same bucket (not from
// those regions, which are off the lists) and frees a region's last blocks,
// which empties it. (With the lock held the other thread would wait for the
// madvise, which waits for it: the timeout reports that deadlock.)
TEST(AllocatorTest, ASmallPurgeGivesFreePagesBackWithNoLockHeld) {
  Allocator a;
  FragmentedSmallBucket f(a);
  ASSERT_FALSE(f.kept_in_watched.empty());
  void* fresh = nullptr;
  ActionInsideDecommit inside(
      f.watched, f.watched->size,
      [&] {
        ASSERT_EQ(f.bucket.AllocateBatchAt(&fresh, 1, 5000), 1u);
        std::memset(fresh, 1, 64);
        f.bucket.FreeBatchAt(f.kept_in_watched.data(), f.kept_in_watched.size(), 5000);
      },
      std::chrono::seconds(60));
  const size_t decommitted_before = f.bucket.Stats().bytes_decommitted;
  f.bucket.Purge(5000, /*max_age_ms=*/1000);
  inside.Finish();
  EXPECT_GE(inside.calls(), 1);
  EXPECT_TRUE(inside.done_in_window());
  EXPECT_EQ(f.regions.count(internal::PageMap::Lookup(fresh)), 0u);
  EXPECT_GT(f.bucket.Stats().bytes_decommitted, decommitted_before);
  EXPECT_EQ(f.bucket.Stats().blocks_in_use, f.kept.size() + 1);
  // Every region is back on the lists: with its blocks all freed, trim
  // unmaps it (one left off would stay mapped).
  f.bucket.FreeBatchAt(f.kept.data(), f.kept.size(), 6000);
  f.bucket.FreeBatchAt(&fresh, 1, 6000);
  a.trim();
  EXPECT_EQ(f.bucket.Stats().regions, 0u);
  EXPECT_EQ(f.bucket.Stats().bytes_mapped, 0u);
}

// Regions whose last blocks are freed while a trim gives their pages back
// are unmapped by that trim, and counted in what it returns: past the
// bucket's bound of empty regions as they come back (which a count of the
// empty-region rounds alone would miss), the rest after them.
TEST(AllocatorTest, RegionsEmptiedDuringATrimGoWithIt) {
  Allocator a;
  FragmentedSmallBucket f(a);
  ASSERT_GT(f.regions.size() * internal::SmallBucket::RegionSizeFor(64),
            internal::SmallBucket::kEmptyBytesLimit);
  ActionInsideDecommit inside(
      f.watched, f.watched->size,
      [&] {
        f.bucket.FreeBatchAt(f.kept_in_watched.data(), f.kept_in_watched.size(), 5000);
        f.bucket.FreeBatchAt(f.kept.data(), f.kept.size(), 5000);
      },
      std::chrono::seconds(60));
  const size_t unmapped_before = f.bucket.Stats().regions_unmapped;
  EXPECT_EQ(f.bucket.Purge(5000, /*max_age_ms=*/0),
            f.regions.size() * internal::SmallBucket::RegionSizeFor(64));
  inside.Finish();
  EXPECT_TRUE(inside.done_in_window());
  EXPECT_EQ(f.bucket.Stats().regions_unmapped, unmapped_before + f.regions.size());
  EXPECT_EQ(f.bucket.Stats().regions, 0u);
}

// RLIMIT_AS lowered, from an action inside a decommit, to what the process
// has mapped plus some headroom: no room for another region's mapping until
// the test lifts it. An allocation there waits for the blocks or regions the
// decommit has off the lists (before, it failed at once); it cannot finish
// before the madvise does, so the wait always runs out, which the action
// must see begin inside the window (a late start would find them back).
class AddressSpaceLimit {
 public:
  AddressSpaceLimit() { EXPECT_EQ(getrlimit(RLIMIT_AS, &saved_), 0); }
  ~AddressSpaceLimit() { Lift(); }
  bool Lower(size_t headroom) {
    rlimit tight = saved_;
    tight.rlim_cur = platform::AddressSpaceBytes() + headroom;
    lowered_ = setrlimit(RLIMIT_AS, &tight) == 0;
    return lowered_;
  }
  void Lift() {
    if (lowered_) {
      EXPECT_EQ(setrlimit(RLIMIT_AS, &saved_), 0);
    }
    lowered_ = false;
  }
  // In the action, right before the allocation that must wait.
  void NoteAsking(const ActionInsideDecommit& inside) { asked_in_window_ = inside.waiting(); }
  // In the test, once the decommit is over: the limit was lowered, the
  // allocation was asked for inside the window and waited past it.
  void ExpectWaitedThroughWindow(ActionInsideDecommit& inside) {
    ASSERT_TRUE(inside.started());
    inside.Finish();
    ASSERT_TRUE(lowered_);
    Lift();
    EXPECT_TRUE(asked_in_window_);
    EXPECT_FALSE(inside.done_in_window());
  }

 private:
  rlimit saved_;
  bool lowered_ = false;
  bool asked_in_window_ = false;
};

// An allocation that finds no region of its bucket with a free block while
// a purge has them off the lists, and cannot map a new one (an address-space
// limit), waits for them instead of failing.
TEST(AllocatorTest, ASmallAllocationWithNoRegionToMapWaitsForPurgedOnes) {
  if (test_support::kUnderSanitizer) GTEST_SKIP() << "RLIMIT_AS under a sanitizer";
  Allocator a;
  FragmentedSmallBucket f(a);
  // (Regions of the same size as the purged ones: once it has no room for
  // one more, the carver has none for them either.)
  internal::SmallBucket& filler_bucket = a.heap().SmallBucketFor(16 * 1024);
  ASSERT_EQ(internal::SmallBucket::RegionSizeFor(16 * 1024),
            internal::SmallBucket::RegionSizeFor(64));
  std::vector<void*> filler;
  AddressSpaceLimit limit;
  void* got = nullptr;
  ActionInsideDecommit inside(
      f.watched, f.watched->size,
      [&] {
        // No address space kept by the region carver, none to map, and
        // none left in the carver's current chunk once the filler has it.
        internal::RegionCarver::Flush();
        internal::RegionCarver::ReleaseRetained();
        if (!limit.Lower(size_t{1} << 20)) return;
        for (void* p; filler_bucket.AllocateBatchAt(&p, 1, 5000) == 1;) filler.push_back(p);
        limit.NoteAsking(inside);
        ASSERT_EQ(f.bucket.AllocateBatchAt(&got, 1, 5000), 1u);
      },
      std::chrono::seconds(2));
  f.bucket.Purge(5000, /*max_age_ms=*/1000);
  limit.ExpectWaitedThroughWindow(inside);
  if (HasFatalFailure()) return;
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(f.regions.count(internal::PageMap::Lookup(got)), 1u);
  filler_bucket.FreeBatchAt(filler.data(), filler.size(), 6000);
}

// An allocation that finds no space while the kept region's pages go back,
// and cannot map a new region (an address-space limit), waits for the
// region instead of failing.
TEST(AllocatorTest, AnAllocationWithNoRegionToMapWaitsForTheKeptOne) {
  // (A sanitizer's runtime maps memory of its own for the new thread.)
  if (test_support::kUnderSanitizer) GTEST_SKIP() << "RLIMIT_AS under a sanitizer";
  Allocator a;
  constexpr size_t kSize = size_t{1} << 20;
  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) {
    blocks.push_back(a.allocate(kSize));
    std::memset(blocks.back(), 1, kSize);
  }
  const internal::RegionHeader* region = internal::PageMap::Lookup(blocks.front());
  AddressSpaceLimit limit;
  void* got = nullptr;
  ActionInsideDecommit inside(
      region, region->size,
      [&] {
        if (!limit.Lower(size_t{16} << 20)) return;
        limit.NoteAsking(inside);
        got = a.allocate(100000);
      },
      std::chrono::seconds(2));
  for (void* p : blocks) a.deallocate(p);  // the last one empties the region
  limit.ExpectWaitedThroughWindow(inside);
  if (HasFatalFailure()) return;
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(internal::PageMap::Lookup(got), region);  // the kept region
  a.deallocate(got);
}

// A purge gives free blocks' pages back with no lock held: meanwhile
// another thread frees the purged block's neighbour and allocates in the
// same bucket; once the purge is over, the two free blocks are one.
TEST(AllocatorTest, APurgeGivesPagesBackWithNoLockHeldThenMerges) {
  Allocator a;
  constexpr size_t kBig = size_t{1} << 20;
  constexpr size_t kNeighbour = 200000;
  void* before = a.allocate(100000);
  auto* big = static_cast<char*>(a.allocate(kBig));
  void* neighbour = a.allocate(kNeighbour);
  void* after = a.allocate(100000);  // keeps the two off the region's free tail
  for (void* p : {before, static_cast<void*>(big), neighbour, after}) {
    std::memset(p, 1, a.usable_size(p));
  }
  a.deallocate(big);
  ActionInsideDecommit inside(
      big, kBig,
      [&] {
        a.deallocate(neighbour);
        void* p = a.allocate(100000);
        std::memset(p, 1, 100000);
        a.deallocate(p);
      },
      std::chrono::seconds(60));
  a.heap().Purge(/*max_age_ms=*/0);
  inside.Finish();
  EXPECT_EQ(inside.calls(), 1);
  EXPECT_TRUE(inside.done_in_window());
  // Only the purged block merged with its neighbour can hold this.
  void* merged = a.allocate(kBig + kNeighbour);
  EXPECT_EQ(merged, big);
  for (void* p : {merged, before, after}) a.deallocate(p);
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
}

// The bytes of [p, p + size) in pages that are not resident.
size_t NonResidentBytes(const void* p, size_t size) {
  const size_t page = platform::PageSize();
  const uintptr_t start = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + size + page - 1) & ~(page - 1);
  std::vector<unsigned char> resident((end - start) / page);
  EXPECT_EQ(mincore(reinterpret_cast<void*>(start), end - start, resident.data()), 0);
  size_t bytes = 0;
  for (unsigned char r : resident) bytes += (r & 1) ? 0 : page;
  return bytes;
}

// Once a bucket has a mebibyte of regions besides the one it carves, the
// pages of each block it carves are resident before anything writes them
// (one system call per 64 KiB instead of a page fault each); before that
// they fault in on touch.
TEST(AllocatorTest, ABucketPastAMebibyteCarvesBlocksWithTheirPagesResident) {
  kernel::SmallPagesOnly small_pages;
  internal::RegionCarver::ReleaseRetained(0);  // new regions in new mappings
  Allocator a;
  constexpr size_t kSize = 32 * 1024;  // 512 KiB regions of 15 blocks
  const auto allocate = [&](size_t n) { return a.allocate(n); };
  std::vector<void*> blocks;
  const test::FreshPages before = test::AllocateAndLook(8, kSize, allocate, &blocks);
  ASSERT_GT(before.count, 0u);
  EXPECT_EQ(before.resident, 0u);  // nothing wrote them
  // Three regions: two filled, one mebibyte.
  while (blocks.size() < 40) blocks.push_back(a.allocate(kSize));
  const size_t bucket =
      reinterpret_cast<internal::SmallRegion*>(internal::PageMap::Lookup(blocks[0]))->bucket_index;
  EXPECT_GE(a.heap().SmallStats(bucket).regions, 3u);
  const test::FreshPages after = test::AllocateAndLook(40, kSize, allocate, &blocks);
  // MADV_POPULATE_WRITE: Linux 5.14.
  if (kernel::AtLeast(5, 14)) {
    ASSERT_TRUE(platform::PopulateInUse());
  }
  EXPECT_EQ(after.resident, platform::PopulateInUse() ? after.count : 0u);
  // Up to the end of a 64 KiB step past the last block carved, in its
  // region: then a trim gives those pages back, with the block in use.
  const auto resident_past = [&](void* block) {
    const uintptr_t end = reinterpret_cast<uintptr_t>(block) + kSize;
    const internal::RegionHeader* region = internal::PageMap::Lookup(block);
    const uintptr_t step_end =
        std::min<uintptr_t>((end + internal::SmallBucket::kPopulateStep - 1) &
                                ~uintptr_t{internal::SmallBucket::kPopulateStep - 1},
                            reinterpret_cast<uintptr_t>(region) + region->size);
    if (step_end <= end) return size_t{0};
    const uintptr_t from = (end + platform::PageSize() - 1) & ~(platform::PageSize() - 1);
    const size_t size = step_end - from;
    return size / platform::PageSize() -
           NonResidentBytes(reinterpret_cast<void*>(from), size) / platform::PageSize();
  };
  for (int i = 0; i < 15 && resident_past(blocks.back()) == 0; ++i) {
    blocks.push_back(a.allocate(kSize));
  }
  if (platform::PopulateInUse()) {
    ASSERT_GT(resident_past(blocks.back()), 0u);
  }
  void* last = blocks.back();
  blocks.pop_back();
  for (void* p : blocks) a.deallocate(p);
  a.trim();
  EXPECT_EQ(resident_past(last), 0u);
  a.deallocate(last);
}

TEST(AllocatorTest, LargeBucketCountsPagesGivenBackAcrossSplitsAndMerges) {
  Allocator a;
  const size_t page = platform::PageSize();
  const auto given_back = [&] { return a.heap().LargeStats(0).bytes_decommitted; };
  constexpr size_t kBig = 600 * 1024;
  constexpr size_t kFront = 200 * 1024;
  void* before = a.allocate(100000);
  auto* big = static_cast<char*>(a.allocate(kBig));
  void* after = a.allocate(100000);  // so that `big` stays a free block of its own
  std::memset(big, 1, kBig);
  // No more can be counted than the region has pages not resident.
  const void* region = internal::PageMap::Lookup(big);
  const size_t region_size = a.heap().LargeStats(0).bytes_mapped;
  const auto not_resident = [&] { return NonResidentBytes(region, region_size); };
  a.heap().Purge(/*max_age_ms=*/0);  // the region's free rest, never touched
  const size_t tail = given_back();
  EXPECT_LE(tail, not_resident());
  a.deallocate(big);
  a.heap().Purge(/*max_age_ms=*/0);
  EXPECT_GE(given_back() - tail, kBig - 2 * page);
  EXPECT_LE(given_back(), not_resident());
  // The front handed out again: the rest is still given back, and counted.
  auto* front = static_cast<char*>(a.allocate(kFront));
  ASSERT_EQ(front, big);
  std::memset(front, 2, kFront);
  const size_t rest = given_back() - tail;
  EXPECT_GE(rest, kBig - kFront - 3 * page);
  EXPECT_LE(given_back(), not_resident());
  // Freed, the front merges with the rest: only the rest counts, as before.
  a.deallocate(front);
  EXPECT_EQ(given_back() - tail, rest);
  // A purge gives back the front too.
  a.heap().Purge(/*max_age_ms=*/0);
  EXPECT_GE(given_back() - tail, kBig - 2 * page);
  EXPECT_LE(given_back(), not_resident());
  a.deallocate(before);
  a.deallocate(after);
}

// A block that grows into a free neighbour leaves the rest on the
// neighbour's list, linked to the blocks before and after it there, with
// what decay gave back of it still counted.
TEST(AllocatorTest, GrowingIntoANeighbourKeepsItsFreeListWhole) {
  Allocator a;
  const size_t page = platform::PageSize();
  auto* grow = static_cast<char*>(a.allocate(100000));
  void* neighbour = a.allocate(636 * 1024);
  void* pin1 = a.allocate(100000);
  void* second = a.allocate(610 * 1024);
  void* pin2 = a.allocate(100000);
  void* third = a.allocate(620 * 1024);
  void* pin3 = a.allocate(100000);
  // All written, so that the pages not resident are those given back.
  for (void* p : {static_cast<void*>(grow), neighbour, pin1, second, pin2, third, pin3}) {
    std::memset(p, 1, a.usable_size(p));
  }
  // One size bin, listed third, neighbour, second.
  a.deallocate(second);
  a.deallocate(neighbour);
  a.deallocate(third);
  a.trim();  // their pages go back
  const auto given_back = [&] { return a.heap().LargeStats(0).bytes_decommitted; };
  const void* region = internal::PageMap::Lookup(grow);
  const size_t region_size = a.heap().LargeStats(0).bytes_mapped;
  const size_t before = given_back();
  constexpr size_t kGrown = 100000 + 48 * 1024;  // the rest stays in its bin
  ASSERT_EQ(a.reallocate(grow, kGrown), grow);
  std::memset(grow, 2, kGrown);
  EXPECT_GE(given_back(), before - 48 * 1024 - 3 * page);
  EXPECT_LE(given_back(), NonResidentBytes(region, region_size));
  // Each block of the list is found where it was.
  EXPECT_EQ(a.allocate(620 * 1024), third);
  EXPECT_EQ(a.allocate(610 * 1024), second);
  auto* rest = static_cast<char*>(a.allocate(580 * 1024));
  EXPECT_GT(rest, grow + kGrown);
  EXPECT_LT(rest, static_cast<char*>(pin1));
  for (void* p :
       {static_cast<void*>(grow), pin1, second, pin2, third, pin3, static_cast<void*>(rest)}) {
    a.deallocate(p);
  }
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
}

// Locked pages cannot be given back (madvise fails, as under mlockall): a
// trim still ends, each refused block tried once.
TEST(AllocatorTest, TrimEndsWhereEveryBlockIsLocked) {
  Allocator a;
  constexpr size_t kSize = 100000;
  constexpr int kBlocks = 40;  // more than a purge's batch of 16 when freed
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    blocks.push_back(a.allocate(kSize));
    std::memset(blocks.back(), 1, kSize);
  }
  for (int i = 0; i < kBlocks; i += 2) ASSERT_EQ(mlock(blocks[i], kSize), 0);
  for (int i = 0; i < kBlocks; i += 2) a.deallocate(blocks[i]);
  auto trim = std::async(std::launch::async, [&] { return a.trim(); });
  ASSERT_EQ(trim.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "trim does not end";  // (the process cannot go on past a purge that never ends)
  trim.get();
  for (int i = 0; i < kBlocks; i += 2) munlock(blocks[i], kSize);
  for (int i = 1; i < kBlocks; i += 2) a.deallocate(blocks[i]);
}

// A trim while another purge has a batch out waits for it, then gives
// back the blocks freed before it was called (it skipped the bucket).
TEST(AllocatorTest, ATrimDuringAPurgeWaitsForItThenGivesBack) {
  Allocator a;
  constexpr size_t kBig = size_t{1} << 20;
  auto* first = static_cast<char*>(a.allocate(kBig));
  void* pin1 = a.allocate(100000);
  auto* second = static_cast<char*>(a.allocate(kBig));
  void* pin2 = a.allocate(100000);
  for (void* p : {static_cast<void*>(first), pin1, static_cast<void*>(second), pin2}) {
    std::memset(p, 1, a.usable_size(p));
  }
  a.deallocate(first);
  size_t given_back_by_trim = 0;
  // Waiting for this purge's batch, the trim cannot finish before its
  // madvise does, so the wait always runs out; skipping the bucket, it
  // finishes.
  ActionInsideDecommit inside(
      first, kBig,
      [&] {
        a.deallocate(second);
        a.trim();
        given_back_by_trim = NonResidentBytes(second + 8192, kBig - 16384);
      },
      std::chrono::seconds(2));
  a.heap().Purge(/*max_age_ms=*/0);
  ASSERT_TRUE(inside.started());
  inside.Finish();
  EXPECT_FALSE(inside.done_in_window());
  EXPECT_GE(given_back_by_trim, kBig - 16384 - 3 * platform::PageSize());
  a.deallocate(pin1);
  a.deallocate(pin2);
}

// A region emptied when a purge puts its blocks back (their neighbours
// freed meanwhile) is unmapped, as a free would have, when another empty
// region is kept already.
TEST(AllocatorTest, ARegionEmptiedAsAPurgeEndsIsUnmappedWhenOneIsKept) {
  Allocator a;
  constexpr size_t kSize = 2000000;  // sixteen fill a 32 MiB region
  std::vector<void*> blocks;
  for (int i = 0; i < 17; ++i) {
    blocks.push_back(a.allocate(kSize));
    std::memset(blocks.back(), 1, kSize);
  }
  const void* full = internal::PageMap::Lookup(blocks[0]);
  ASSERT_EQ(internal::PageMap::Lookup(blocks[15]), full);
  ASSERT_NE(internal::PageMap::Lookup(blocks[16]), full);
  a.deallocate(blocks[16]);  // its region: the kept empty one
  a.deallocate(blocks[1]);   // the block the purge holds while the rest go
  ActionInsideDecommit inside(
      blocks[1], kSize,
      [&] {
        a.deallocate(blocks[0]);
        for (int i = 2; i < 16; ++i) a.deallocate(blocks[i]);
      },
      std::chrono::seconds(60));
  a.heap().Purge(/*max_age_ms=*/0);
  inside.Finish();
  EXPECT_TRUE(inside.done_in_window());
  EXPECT_EQ(internal::PageMap::Lookup(blocks[0]), nullptr);
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
}

// Whether [p, p + size) is all zero bytes.
bool AllZero(const void* p, size_t size) {
  static const char kZeros[4096] = {};
  const auto* bytes = static_cast<const char*>(p);
  for (size_t done = 0; done < size; done += sizeof(kZeros)) {
    if (std::memcmp(bytes + done, kZeros, std::min(sizeof(kZeros), size - done)) != 0) return false;
  }
  return true;
}

TEST(AllocatorTest, ZeroedBlocksAreZeroWhateverMemoryTheyReuse) {
  // allocate_zeroed skips the pages the OS has just mapped or taken back;
  // everything else was written, and must read zero all the same: blocks
  // filled to their usable end, freed, grown in place, purged, in every
  // size range and at several alignments.
  Allocator a;
  std::mt19937_64 rng(20261130);
  std::vector<std::pair<char*, size_t>> live;
  const auto fill = [&](char* p) { std::memset(p, 0xa5, a.usable_size(p)); };
  const auto pick_size = [&]() -> size_t {
    const uint64_t r = rng() % 10;
    if (r == 0) return 16 + rng() % 4096;
    if (r <= 7) return 20000 + rng() % 1900000;
    return (size_t{2} << 20) + rng() % (size_t{10} << 20);
  };
  for (int op = 0; op < 1200; ++op) {
    const uint64_t action = rng() % 10;
    if ((action < 3 || live.size() > 24) && !live.empty()) {
      const size_t i = rng() % live.size();
      a.deallocate(live[i].first);
      live[i] = live.back();
      live.pop_back();
    } else if (action == 3) {
      a.heap().Purge(rng() % 2 == 0 ? 0 : 1000);
    } else if (action == 4 && !live.empty()) {
      auto& [p, size] = live[rng() % live.size()];
      const size_t grown = size + rng() % (size_t{1} << 20);
      if (char* q = static_cast<char*>(a.reallocate(p, grown))) {
        p = q;
        size = grown;
        fill(p);
      }
    } else {
      const size_t size = pick_size();
      const size_t alignment = size_t{16} << (rng() % 4 == 0 ? rng() % 9 : 0);
      const bool zeroed = action >= 7;
      auto* p = static_cast<char*>(zeroed ? a.allocate_zeroed(size, alignment)
                                          : a.allocate(size, alignment));
      ASSERT_NE(p, nullptr);
      if (zeroed) {
        ASSERT_TRUE(AllZero(p, size)) << "op " << op << ", " << size << " bytes";
      }
      fill(p);
      live.emplace_back(p, size);
    }
  }
  for (auto& [p, size] : live) a.deallocate(p);
}

TEST(AllocatorTest, ZeroedBlocksAreZeroWhereMemoryIsLocked) {
  // Locked pages cannot be decommitted (madvise fails, as under mlockall):
  // the pages a free meant to give back keep their contents, and
  // allocate_zeroed must still clear them. (Locks of at most 6 MiB, under
  // the usual 8 MiB RLIMIT_MEMLOCK.)
  Allocator a;
  size_t dirty = 0;
  // A large region filled past the 4 MiB its kept empty copy keeps
  // resident, its last blocks locked.
  std::vector<void*> blocks(5);
  for (void*& p : blocks) {
    p = a.allocate(1500000);
    std::memset(p, 0xcd, 1500000);
  }
  ASSERT_EQ(mlock(blocks[3], 1500000), 0);
  ASSERT_EQ(mlock(blocks[4], 1500000), 0);
  for (void* p : blocks) a.deallocate(p);
  for (void*& p : blocks) {
    p = a.allocate_zeroed(1500000);
    dirty += !AllZero(p, 1500000);
  }
  for (void* p : blocks) a.deallocate(p);
  a.trim();
  EXPECT_EQ(dirty, 0u);
  // A huge mapping, locked, reused for a smaller block, its slack trimmed.
  constexpr size_t kBig = size_t{6} << 20;
  void* big = a.allocate(kBig);
  std::memset(big, 0xab, kBig);
  ASSERT_EQ(mlock(big, kBig), 0);
  a.deallocate(big);
  void* smaller = a.allocate(size_t{3} << 20);
  ASSERT_EQ(smaller, big);
  a.trim();
  a.deallocate(smaller);
  void* zeroed = a.allocate_zeroed(size_t{5} << 20);
  ASSERT_EQ(zeroed, big);
  EXPECT_TRUE(AllZero(zeroed, size_t{5} << 20));
  munlock(zeroed, kBig);
  a.deallocate(zeroed);
}

TEST(AllocatorTest, FreedHugeMappingsAreReusedThenTrimmed) {
  Allocator a;
  constexpr size_t kSize = size_t{24} << 20;
  void* first = a.allocate(kSize);
  std::memset(first, 0x5a, kSize);
  a.deallocate(first);
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.huge_blocks_in_use, 0u);
  EXPECT_GE(s.huge_bytes_cached, kSize);
  // A smaller request reuses the cached mapping...
  void* second = a.allocate(kSize - (size_t{1} << 20));
  EXPECT_EQ(second, first);
  EXPECT_EQ(a.stats().huge_bytes_cached, 0u);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, 0u);  // a quarter or less: not counted
  a.deallocate(second);
  // ...and a much smaller one keeps the rest resident, within the budget.
  void* small = a.allocate(size_t{4} << 20);
  EXPECT_EQ(small, first);
  const size_t slack = a.heap().HugeBlockStats().bytes_kept_slack;
  EXPECT_GE(slack, kSize - (size_t{5} << 20));
  EXPECT_LE(slack, kSize - (size_t{4} << 20));
  auto* tail = static_cast<unsigned char*>(small) + (size_t{20} << 20);
  EXPECT_EQ(*tail, 0x5a);
  // Recent slack survives a decay purge; trim gives it back (it reads as
  // zero), and once the block is freed, unmaps its mapping from the cache.
  EXPECT_EQ(a.heap().Purge(/*max_age_ms=*/3600 * 1000), 0u);
  EXPECT_EQ(*tail, 0x5a);
  EXPECT_GE(a.trim(), slack);
  EXPECT_EQ(*tail, 0u);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, 0u);
  a.deallocate(small);
  EXPECT_GE(a.trim(), kSize);
  s = a.stats();
  EXPECT_EQ(s.huge_bytes_cached, 0u);
  EXPECT_EQ(s.bytes_mapped, 0u);
}

// A huge block of `small` bytes that reuses a freed `mapping`-byte one,
// whose pages were all written with `fill`: the rest is resident slack.
unsigned char* ReuseWithSlack(Allocator& a, size_t mapping, size_t small, unsigned char fill) {
  void* big = a.allocate(mapping);
  std::memset(big, fill, mapping);
  a.deallocate(big);
  auto* p = static_cast<unsigned char*>(a.allocate(small));
  EXPECT_EQ(p, big);
  return p;
}

TEST(AllocatorTest, SlackPastTheBudgetIsGivenBack) {
  Allocator a;
  constexpr size_t kSmall = size_t{4} << 20;
  auto reuse_with_slack = [&](size_t mapping) { return ReuseWithSlack(a, mapping, kSmall, 0x77); };
  unsigned char* first = reuse_with_slack(size_t{48} << 20);
  const size_t kept = a.heap().HugeBlockStats().bytes_kept_slack;
  EXPECT_GT(kept, size_t{40} << 20);
  EXPECT_EQ(first[size_t{20} << 20], 0x77);  // kept resident
  // 36 MiB more would exceed the budget: given back at once.
  static_assert((size_t{80} << 20) > internal::HugeBlocks::kSlackBytes);
  unsigned char* second = reuse_with_slack(size_t{40} << 20);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, kept);
  EXPECT_EQ(second[size_t{20} << 20], 0u);
  // Reused again, that mapping has no resident slack to count.
  a.deallocate(second);
  void* again = a.allocate(kSmall);
  EXPECT_EQ(again, second);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, kept);
  a.deallocate(again);
  // Freeing a block returns its slack to the cache's accounting.
  a.deallocate(first);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, 0u);
}

TEST(AllocatorTest, GrowingIntoKeptSlackStaysInPlaceAndUncountsIt) {
  Allocator a;
  void* p = ReuseWithSlack(a, size_t{48} << 20, size_t{4} << 20, 0x21);
  const size_t kept = a.heap().HugeBlockStats().bytes_kept_slack;
  void* grown = a.reallocate(p, size_t{8} << 20);
  EXPECT_EQ(grown, p);  // in place, into its resident slack
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, kept - (size_t{4} << 20));
  EXPECT_EQ(static_cast<unsigned char*>(grown)[(size_t{8} << 20) - 1], 0x21);
  a.deallocate(grown);
  EXPECT_EQ(a.heap().HugeBlockStats().bytes_kept_slack, 0u);
}

TEST(AllocatorTest, AMissGrowsTheLargestCachedMappingInPlaceAndNeverMovesIt) {
  // With the mapping next to the cached one freed (unmapped first, so that
  // the cached one can grow in place), and with the page after the cached
  // one taken (it would have to move: it is given back instead, and the
  // block mapped anew).
  for (const size_t new_size : {(size_t{5} << 20) + 300 * 1024, size_t{6} << 20}) {
    for (const bool blocked : {false, true}) {
      SCOPED_TRACE(testing::Message() << new_size << (blocked ? " blocked" : " free"));
      Allocator a;
      constexpr size_t kOld = size_t{4} << 20;
      const size_t page = platform::PageSize();
      auto page_number = [&](const unsigned char* q, size_t k) {
        uint16_t n;
        std::memcpy(&n, q + k * page, sizeof(n));
        return size_t{n};
      };
      void* neighbour = a.allocate(size_t{3} << 20);
      auto* old = static_cast<unsigned char*>(a.allocate(kOld));
      for (size_t k = 0; k < kOld / page; ++k) {
        const auto n = static_cast<uint16_t>(k + 1);
        std::memcpy(old + k * page, &n, sizeof(n));
      }
      a.deallocate(neighbour);
      void* blocker = nullptr;
#ifdef __linux__
      if (blocked) {
        auto* end = reinterpret_cast<unsigned char*>(
            (reinterpret_cast<uintptr_t>(old) + kOld + page - 1) & ~(uintptr_t{page} - 1));
        blocker =
            mmap(end, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        // (EEXIST: taken already, by what the neighbour's unmapping left.)
        ASSERT_TRUE(blocker == end || (blocker == MAP_FAILED && errno == EEXIST));
        if (blocker == MAP_FAILED) blocker = nullptr;
      }
#endif
      a.deallocate(old);
      auto* p = static_cast<unsigned char*>(a.allocate(new_size));
      ASSERT_NE(p, nullptr);
      const internal::HugeStats h = a.heap().HugeBlockStats();
      EXPECT_EQ(h.bytes_cached, 0u);  // a freed neighbour was unmapped
#ifdef __linux__
      if (blocked) {
        EXPECT_EQ(h.cache_grows, 0u);
        EXPECT_NE(p, old);
        for (size_t k = 0; k < kOld / page; ++k) ASSERT_EQ(page_number(p, k), 0u) << "page " << k;
      } else {
        // Grown in place: every page of the 4 MiB mapping at its offset.
        EXPECT_EQ(h.cache_grows, 1u);
        EXPECT_EQ(p, old);
        for (size_t k = 0; k < kOld / page; ++k)
          ASSERT_EQ(page_number(p, k), k + 1) << "page " << k;
      }
      EXPECT_EQ(p[new_size - 1], 0u);  // the added tail
#endif
      std::memset(p, 0x11, new_size);
      a.deallocate(p);
#ifdef __linux__
      if (blocker != nullptr) munmap(blocker, page);
#endif
    }
  }
}

#ifdef __linux__
// Splits the mapping of the huge block at `block` in three, as a program
// may (madvise on one page 1 MiB in): mremap then refuses to move or grow it.
bool SplitMapping(void* block) {
  const uintptr_t page = platform::PageSize();
  void* inside =
      reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(block) + (1 << 20)) & ~(page - 1));
  return madvise(inside, page, MADV_DONTDUMP) == 0;
}

TEST(AllocatorTest, ACachedMappingThatCannotGrowIsUnmappedAndNothingLeaks) {
  Allocator a;
  constexpr size_t kOld = size_t{4} << 20, kNew = size_t{10} << 20;
  const size_t before = platform::AddressSpaceBytes();
  auto* old = static_cast<char*>(a.allocate(kOld));
  ASSERT_TRUE(SplitMapping(old));
  a.deallocate(old);
  void* p = a.allocate(kNew);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.heap().HugeBlockStats().cache_grows, 0u);
  std::memset(p, 0x42, kNew);
  a.deallocate(p);
  a.trim();
  EXPECT_EQ(a.stats().bytes_mapped, 0u);
  EXPECT_LT(platform::AddressSpaceBytes(), before + (size_t{2} << 20));
}
#endif

// Buffers that realloc grows from small sizes through the large range.
// Each step writes the buffer through; returns how many steps moved it.
int GrowAndCountMoves(Allocator& a, char*& p, size_t& size, size_t to, char fill) {
  int moves = 0;
  while (size < to) {
    const size_t grown = size * 3 / 2;
    char* q = static_cast<char*>(a.reallocate(p, grown));
    EXPECT_NE(q, nullptr);
    for (size_t i = 0; i < size; i += 512) EXPECT_EQ(q[i], fill) << "offset " << i;
    std::memset(q, fill, grown);
    if (q != p && size >= internal::Heap::kGrowInPlaceMin) ++moves;
    p = q;
    size = grown;
  }
  return moves;
}

TEST(AllocatorTest, TwoThreadsGrowingBuffersInTurnGrowInPlace) {
  Allocator a;
  std::barrier step(2);
  int moves[2] = {0, 0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      const char fill = static_cast<char>('a' + t);
      size_t size = 1000;
      char* p = static_cast<char*>(a.allocate(size));
      std::memset(p, fill, size);
      // One 1.5x step each, in lockstep: allocations alternate between the
      // threads, whichever CPUs they run on.
      while (size < (size_t{1} << 20)) {
        moves[t] += GrowAndCountMoves(a, p, size, size + 1, fill);
        step.arrive_and_wait();
      }
      step.arrive_and_drop();
      a.deallocate(p);
    });
  }
  for (auto& t : threads) t.join();
  // Each thread's buffer lives in a large bucket of its own (a standalone
  // instance has one arena: by CPU, the two would share it).
  EXPECT_EQ(moves[0], 0);
  EXPECT_EQ(moves[1], 0);
}

TEST(AllocatorTest, AGrowableBufferLeavesRoomForTheOneBeforeIt) {
  Allocator a;
  size_t first_size = 2000, second_size = 2000;
  char* first = static_cast<char*>(a.allocate(first_size));
  std::memset(first, 'x', first_size);
  EXPECT_EQ(GrowAndCountMoves(a, first, first_size, 5000, 'x'), 0);
  char* second = static_cast<char*>(a.allocate(second_size));
  std::memset(second, 'y', second_size);
  EXPECT_EQ(GrowAndCountMoves(a, second, second_size, 5000, 'y'), 0);
  // Both grew into the large bucket of this thread, the second after the
  // first: it started halfway into the free space, so both grow in place.
  EXPECT_GT(second, first);
  EXPECT_EQ(GrowAndCountMoves(a, first, first_size, 200000, 'x'), 0);
  EXPECT_EQ(GrowAndCountMoves(a, second, second_size, 200000, 'y'), 0);
  a.deallocate(first);
  a.deallocate(second);
}

#ifdef __linux__
TEST(AllocatorTest, AHugeBlockThatCannotMoveIsCopiedAndNothingLeaks) {
  Allocator a;
  constexpr size_t kOld = size_t{4} << 20, kNew = size_t{10} << 20;
  const size_t before = platform::AddressSpaceBytes();
  auto* old = static_cast<unsigned char*>(a.allocate(kOld));
  for (size_t i = 0; i < kOld; ++i) old[i] = static_cast<unsigned char>(i * 7);
  ASSERT_TRUE(SplitMapping(old));  // realloc copies instead of moving
  auto* p = static_cast<unsigned char*>(a.reallocate(old, kNew));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < kOld; ++i) ASSERT_EQ(p[i], static_cast<unsigned char>(i * 7)) << i;
  std::memset(p, 0x42, kNew);
  // Once more: the copy is an ordinary mapping, which may move.
  p = static_cast<unsigned char*>(a.reallocate(p, 2 * kNew));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[kNew - 1], 0x42);
  a.deallocate(p);
  a.trim();
  EXPECT_EQ(a.stats().bytes_mapped, 0u);
  // The refused move's target reservation went back too (it was leaked on
  // kernels that refuse before they unmap the target).
  EXPECT_LT(platform::AddressSpaceBytes(), before + (size_t{2} << 20));
}
#endif

TEST(AllocatorTest, GrowingHugeBlocksMoveTheirPagesInsteadOfCopying) {
  Allocator a;
  size_t size = size_t{3} << 20;
  auto* p = static_cast<unsigned char*>(a.allocate(size));
  for (size_t i = 0; i < size; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
  while (size < (size_t{64} << 20)) {
    const size_t grown = size * 3 / 2;
    p = static_cast<unsigned char*>(a.reallocate(p, grown));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < size; i += 4096) {
      ASSERT_EQ(p[i], static_cast<unsigned char>(i >> 12)) << "offset " << i;
    }
    for (size_t i = size; i < grown; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
    EXPECT_GE(a.usable_size(p), grown);
    size = grown;
  }
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.huge_blocks_in_use, 1u);
#ifdef __linux__
  // A copy would have freed each old mapping into the cache.
  EXPECT_EQ(s.huge_bytes_cached, 0u);
  EXPECT_LT(s.bytes_mapped, size + (size_t{4} << 20));
#endif
  a.deallocate(p);
}

TEST(AllocatorTest, HugeCacheStaysWithinItsBound) {
  Allocator a;
  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) blocks.push_back(a.allocate(static_cast<size_t>(i % 4 + 3) << 20));
  for (void* p : blocks) a.deallocate(p);
  const AllocatorStats s = a.stats();
  EXPECT_LE(s.huge_bytes_cached, internal::HugeBlocks::kCacheBytes);
  EXPECT_EQ(s.bytes_mapped, s.huge_bytes_cached);
}

TEST(AllocatorTest, HugeBlocksGrowInPlaceWithinTheirMapping) {
  Allocator a;
  void* big = a.allocate(size_t{32} << 20);
  a.deallocate(big);
  void* p = a.allocate(size_t{17} << 20);  // reuses the 32 MiB mapping
  ASSERT_EQ(p, big);
  std::memset(p, 0x33, size_t{17} << 20);
  void* grown = a.reallocate(p, size_t{30} << 20);
  EXPECT_EQ(grown, p);
  EXPECT_GE(a.usable_size(grown), size_t{30} << 20);
  EXPECT_EQ(static_cast<unsigned char*>(grown)[(size_t{17} << 20) - 1], 0x33);
  std::memset(grown, 0x44, size_t{30} << 20);
  a.deallocate(grown);
}

// The VmFlags line of the mapping that holds `p`, from /proc/self/smaps.
std::string VmFlagsOf(const void* p) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return "";
  const auto addr = reinterpret_cast<uintptr_t>(p);
  char line[512];
  bool inside = false;
  std::string flags;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    uintptr_t start, end;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &start, &end) == 2) {
      inside = start <= addr && addr < end;
    } else if (inside && std::strncmp(line, "VmFlags:", 8) == 0) {
      flags = line + 8;
      break;
    }
  }
  std::fclose(f);
  return flags;
}

TEST(AllocatorTest, HugeBlocksAreChargedUpFrontRegionsAreNot) {
  // A huge block's mapping counts against the commit limit at once, so
  // that the OS's overcommit policy can refuse what it could never back (a
  // 64 TiB malloc fails with ENOMEM, as glibc's); regions that are filled a
  // page at a time are mapped with MAP_NORESERVE.
  Allocator a;
  void* huge = a.allocate(size_t{64} << 20);
  void* large = a.allocate(100000);
  void* small = a.allocate(64);
  const std::string huge_flags = VmFlagsOf(huge);
  ASSERT_NE(huge_flags, "");
  EXPECT_EQ(huge_flags.find(" nr"), std::string::npos) << huge_flags;
  EXPECT_NE(VmFlagsOf(large).find(" nr"), std::string::npos) << VmFlagsOf(large);
  EXPECT_NE(VmFlagsOf(small).find(" nr"), std::string::npos) << VmFlagsOf(small);
  a.deallocate(huge);
  a.deallocate(large);
  a.deallocate(small);
}

TEST(AllocatorTest, AnUnchargedHugeMappingNeverServesAChargedRequest) {
  // A block smaller than its alignment (above 64 KiB) is mapped to be
  // charged on touch. Neither a later request from the cache of freed
  // mappings nor realloc growing that block by moving its pages may pass it
  // on: the grown or reused mapping would escape the up-front charge (a
  // malloc of more than the OS could back would succeed).
  Allocator a;
  void* over_aligned = a.allocate(100, size_t{4} << 20);
  ASSERT_NE(over_aligned, nullptr);
  ASSERT_NE(VmFlagsOf(over_aligned).find(" nr"), std::string::npos) << VmFlagsOf(over_aligned);
  a.deallocate(over_aligned);
  void* reused = a.allocate(size_t{6} << 20);
  ASSERT_NE(reused, nullptr);
  EXPECT_EQ(VmFlagsOf(reused).find(" nr"), std::string::npos) << VmFlagsOf(reused);
  a.deallocate(reused);

  void* grown = a.allocate(100, size_t{4} << 20);
  ASSERT_NE(grown, nullptr);
  std::memset(grown, 7, 100);
  grown = a.reallocate(grown, size_t{64} << 20, size_t{4} << 20);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(grown)[99], 7);
  EXPECT_EQ(VmFlagsOf(grown).find(" nr"), std::string::npos) << VmFlagsOf(grown);
  a.deallocate(grown);
}

TEST(AllocatorTest, AHugeAlignmentsGapIsNotInThePageMap) {
  // 100 bytes aligned to 16 GiB: the mapping spans the gap, which the page
  // map left out (it registered all 256 K granules of it, 2 MB of entries,
  // and 2.1 GB at 16 TiB).
  Allocator a;
  constexpr size_t kAlignment = size_t{16} << 30;
  auto* p = static_cast<char*>(a.allocate(100, kAlignment));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
  internal::RegionHeader* region = internal::PageMap::Lookup(p);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(internal::PageMap::Lookup(region), region);
  EXPECT_EQ(internal::PageMap::Lookup(p - internal::kGranule), nullptr);
  EXPECT_EQ(internal::PageMap::Lookup(reinterpret_cast<char*>(region) + internal::kGranule),
            nullptr);
  EXPECT_FALSE(a.owns(p - internal::kGranule));
  EXPECT_EQ(a.usable_size(p), platform::PageSize());
  std::memset(p, 1, 100);
  a.deallocate(p);
  EXPECT_EQ(internal::PageMap::Lookup(p), nullptr);
  EXPECT_EQ(internal::PageMap::Lookup(region), nullptr);
}

// Whether this kernel takes MADV_HUGEPAGE at all (it marks the range "hg"
// whatever the system-wide THP mode; without THP support it refuses).
bool KernelTakesHugePageAdvice() {
  const size_t size = platform::kHugePageSize;
  void* probe = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return false;
  const bool taken = madvise(probe, size, MADV_HUGEPAGE) == 0;
  munmap(probe, size);
  return taken;
}

// Restores the process-wide option however the test ends.
class HugePagesOption {
 public:
  HugePagesOption() : saved_(runtime_options.huge_pages) {}
  ~HugePagesOption() { runtime_options.huge_pages = saved_; }
  void Set(bool on) { runtime_options.huge_pages = on; }

 private:
  const bool saved_;
};

// Huge blocks are advised as transparent huge pages (the "hg" flag of
// their mapping) when the option is on, as it is by default, and not when
// it is off.
TEST(AllocatorTest, HugePagesAreAdvisedOnlyWhenAskedFor) {
  EXPECT_TRUE(runtime_options.huge_pages);
  HugePagesOption option;
  const size_t size = size_t{8} << 20;
  for (const bool on : {true, false}) {
    option.Set(on);
    Allocator a;
    void* p = a.allocate(size);
    ASSERT_NE(p, nullptr);
    const std::string flags = VmFlagsOf(p);
    const auto* region = internal::PageMap::Lookup(p);
    a.deallocate(p);
    ASSERT_NE(flags, "") << "no mapping holds the block";
    ASSERT_NE(region, nullptr);
    if (on) {
      // The whole mapping is 2 MiB-aligned, so that huge pages can back it.
      EXPECT_TRUE(IsAligned(region, platform::kHugePageSize));
      EXPECT_EQ(flags.find(" hg") != std::string::npos, KernelTakesHugePageAdvice()) << flags;
    } else {
      EXPECT_EQ(flags.find(" hg"), std::string::npos) << flags;
    }
  }
}

// (Not under AddressSanitizer, which has no zone: core/huge_zone.cc.)
#if defined(MAP_FIXED_NOREPLACE) && !defined(__SANITIZE_ADDRESS__)
// Huge blocks advised as huge pages lie in their own zone, in no 1 GiB of
// address space that small or large blocks share (the kernel would place
// them next to the rest).
TEST(AllocatorTest, HugePagesLieApartFromSmallAndLargeBlocks) {
  ASSERT_TRUE(runtime_options.huge_pages);
  constexpr uintptr_t kSlot = uintptr_t{1} << 30;
  Allocator a;
  void* small = a.allocate(64);
  void* large = a.allocate(64 << 10);
  void* above = a.allocate(size_t{8} << 20);
  void* huge = a.allocate(size_t{8} << 20);  // (the zone fills downward)
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  ASSERT_NE(above, nullptr);
  ASSERT_NE(huge, nullptr);
  ASSERT_LT(huge, above);
  // And a huge block that realloc moves (it cannot grow into the one above
  // it) stays in the zone.
  void* moved = a.reallocate(huge, size_t{64} << 20);
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, huge);
  const auto slot = [](void* q) { return reinterpret_cast<uintptr_t>(q) / kSlot; };
  for (void* q : {small, large}) {
    EXPECT_NE(slot(moved), slot(q));
    EXPECT_GE(reinterpret_cast<uintptr_t>(q) - reinterpret_cast<uintptr_t>(moved), kSlot);
  }
  a.deallocate(moved);
  a.deallocate(above);
  a.deallocate(large);
  a.deallocate(small);
}
#endif

TEST(AllocatorTest, AllocateFreedHandsOutOnlyBlocksThatWereFreed) {
  Allocator a;
  internal::SmallBucket& bucket = a.heap().SmallBucketFor(48);
  void* taken[64];
  EXPECT_EQ(bucket.AllocateFreed(taken, 8), 0u);
  EXPECT_EQ(a.stats().bytes_mapped, 0u);  // no region was mapped for it
  void* blocks[64];
  ASSERT_EQ(bucket.AllocateBatch(blocks, 64), 64u);
  bucket.FreeBatch(blocks + 10, 3);
  EXPECT_EQ(bucket.reusable(), 3u);
  // Only the three freed blocks, not the uncut rest of the region.
  ASSERT_EQ(bucket.AllocateFreed(taken, 8), 3u);
  EXPECT_EQ(std::set<void*>(taken, taken + 3), std::set<void*>(blocks + 10, blocks + 13));
  EXPECT_EQ(bucket.reusable(), 0u);
  EXPECT_EQ(bucket.AllocateFreed(taken + 3, 5), 0u);
  // A region that emptied still holds them...
  bucket.FreeBatch(blocks, 64);
  EXPECT_EQ(bucket.reusable(), 64u);
  ASSERT_EQ(bucket.AllocateFreed(taken, 64), 64u);
  EXPECT_EQ(std::set<void*>(taken, taken + 64), std::set<void*>(blocks, blocks + 64));
  bucket.FreeBatch(taken, 64);
  // ...until it is unmapped.
  a.trim();
  EXPECT_EQ(a.stats().bytes_mapped, 0u);
  EXPECT_EQ(bucket.reusable(), 0u);
  EXPECT_EQ(bucket.AllocateFreed(taken, 8), 0u);
}

TEST(AllocatorTest, BatchFreeLowersTheHintToItsLowestBlockNotItsFirst) {
  Allocator a;
  internal::SmallBucket& bucket = a.heap().SmallBucketFor(64);
  void* blocks[128];
  ASSERT_EQ(bucket.AllocateBatch(blocks, 64), 64u);
  ASSERT_EQ(bucket.AllocateBatch(blocks + 64, 64), 64u);
  ASSERT_EQ(internal::PageMap::Lookup(blocks[0]), internal::PageMap::Lookup(blocks[127]));
  // A block of bitmap word 1 freed and handed out again: the hint is there.
  bucket.Free(blocks[100]);
  void* got[2];
  ASSERT_EQ(bucket.AllocateFreed(got, 1), 1u);
  EXPECT_EQ(got[0], blocks[100]);
  // One run, its lowest block second: both are found again.
  void* run[] = {blocks[70], blocks[5]};
  bucket.FreeBatch(run, 2);
  ASSERT_EQ(bucket.AllocateFreed(got, 2), 2u);
  EXPECT_EQ(std::set<void*>(got, got + 2), std::set<void*>(run, run + 2));
  bucket.FreeBatch(blocks, 128);
}

TEST(AllocatorTest, BatchFreesOfInterleavedRegionsKeepEveryCount) {
  // A flush holds runs of blocks of one region, mixed with other regions':
  // each run's counts go to its own region, so that every region empties,
  // and each region's free hint falls to its lowest freed block.
  Allocator a;
  internal::SmallBucket& bucket = a.heap().SmallBucketFor(64);
  std::map<const internal::RegionHeader*, std::vector<void*>> by_region;
  auto fewest = [&] {
    size_t n = SIZE_MAX;
    for (const auto& [region, blocks] : by_region) n = std::min(n, blocks.size());
    return n;
  };
  while (by_region.size() < 3 || fewest() < 256) {
    void* got[64];
    const size_t n = bucket.AllocateBatch(got, 64);
    ASSERT_GT(n, 0u);
    for (size_t i = 0; i < n; ++i) by_region[internal::PageMap::Lookup(got[i])].push_back(got[i]);
  }
  // Runs of 1 to 3 blocks, round robin over the regions, each region's
  // blocks in a random order.
  std::mt19937 rng(7);
  std::vector<std::vector<void*>> lists;
  for (auto& [region, blocks] : by_region) {
    lists.push_back(blocks);
    std::shuffle(lists.back().begin(), lists.back().end(), rng);
  }
  std::vector<void*> order;
  for (size_t k = 0, run = 1; !lists.empty(); ++k, run = run % 3 + 1) {
    auto& list = lists[k % lists.size()];
    for (size_t i = 0; i < run && !list.empty(); ++i) {
      order.push_back(list.back());
      list.pop_back();
    }
    if (list.empty()) lists.erase(lists.begin() + static_cast<ptrdiff_t>(k % lists.size()));
  }
  const size_t total = order.size();
  const size_t blocks_in_regions = bucket.Stats().blocks_in_use + bucket.Stats().blocks_free;
  auto free_in_batches = [&](const std::vector<void*>& blocks, size_t n) {
    for (size_t i = 0; i < n; i += 64)
      bucket.FreeBatch(blocks.data() + i, std::min<size_t>(64, n - i));
  };
  auto take_back = [&](size_t n) {
    std::vector<void*> got(n);
    EXPECT_EQ(bucket.AllocateFreed(got.data(), n), n);
    return std::set<void*>(got.begin(), got.end());
  };
  // The first half (every region has blocks in it), handed out again.
  free_in_batches(order, total / 2);
  EXPECT_EQ(bucket.Stats().blocks_in_use, total - total / 2);
  EXPECT_EQ(bucket.reusable(), total / 2);
  EXPECT_EQ(take_back(total / 2), std::set<void*>(order.begin(), order.begin() + total / 2));
  // All of them, then all handed out again and freed once more.
  free_in_batches(order, total);
  internal::SmallBucketStats s = bucket.Stats();
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_EQ(s.blocks_free, blocks_in_regions);
  EXPECT_EQ(take_back(total), std::set<void*>(order.begin(), order.end()));
  free_in_batches(order, total);
  a.trim();  // only regions with no block in use are unmapped
  EXPECT_EQ(bucket.Stats().regions, 0u);
  EXPECT_EQ(bucket.reusable(), 0u);
}

TEST(AllocatorTest, EmptyRegionsAreKeptWithinABoundThenTrimmed) {
  Allocator a;
  std::vector<void*> blocks;
  for (int i = 0; i < 200000; ++i) blocks.push_back(a.allocate(64));
  const size_t mapped = a.stats().bytes_mapped;
  EXPECT_GT(mapped, size_t{12} << 20);
  for (void* p : blocks) a.deallocate(p);
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.small_blocks_in_use, 0u);
  // Beyond the per-bucket bound, empty regions were unmapped at once.
  EXPECT_LE(s.bytes_mapped, internal::SmallBucket::kEmptyBytesLimit) << "of " << mapped;
  // Regions that just became empty are younger than any decay time...
  EXPECT_EQ(a.heap().Purge(/*max_age_ms=*/3600 * 1000), 0u);
  EXPECT_EQ(a.stats().bytes_mapped, s.bytes_mapped);
  // ...and trim returns them all.
  EXPECT_EQ(a.trim(), s.bytes_mapped);
  EXPECT_EQ(a.stats().bytes_mapped, 0u);
}

TEST(AllocatorTest, CyclingBucketKeepsItsEmptyRegionsForTheNextCycle) {
  using internal::SmallBucket;
  Allocator a;
  SmallBucket& bucket = a.heap().SmallBucketFor(64);
  const size_t n = (size_t{8} << 20) / 64;  // far beyond the floor of empty regions
  std::vector<void*> blocks(n);
  const auto fill = [&](uint64_t t) { ASSERT_EQ(bucket.AllocateBatchAt(blocks.data(), n, t), n); };
  // In batches of 64, as thread caches flush.
  const auto drop = [&](size_t from, size_t count, uint64_t t) {
    for (size_t i = from; i < from + count; i += 64) {
      bucket.FreeBatchAt(blocks.data() + i, std::min<size_t>(64, from + count - i), t);
    }
  };
  const auto mapped = [&] { return bucket.Stats().bytes_mapped; };
  constexpr uint64_t kCycle = SmallBucket::kCycleMillis;
  constexpr size_t kFloor = SmallBucket::kEmptyBytesLimit;

  // The first time the data is dropped, nothing says it comes back.
  fill(1000);
  drop(0, n, 1000);
  EXPECT_LE(mapped(), kFloor);

  // Built again after regions emptied, and dropped right away: a cycle.
  // Three quarters dropped: all their regions stay (the bound alone, as
  // much as is in use, would keep half of them).
  fill(2000);
  drop(0, n / 4 * 3, 2000 + kCycle - 1);
  EXPECT_GE(mapped(), n * 64);
  drop(n / 4 * 3, n - n / 4 * 3, 2000 + kCycle - 1);
  const size_t kept = mapped();
  EXPECT_GE(kept, n * 64);
  // A region that empties, just short of kCycle after it emptied, with an
  // allocation since, keeps them...
  void* one;
  ASSERT_EQ(bucket.AllocateBatchAt(&one, 1, 2000 + kCycle), 1u);
  bucket.FreeBatchAt(&one, 1, 2000 + 2 * kCycle - 2);
  EXPECT_EQ(mapped(), kept);
  // ...a purge then gives back those empty for kCycle...
  bucket.Purge(2000 + 2 * kCycle - 1, /*max_age_ms=*/3600 * 1000);
  EXPECT_LE(mapped(), kFloor);

  // ...and a drop that comes long after the last allocation is no cycle:
  // its regions go back at once, as the first time.
  fill(3000);
  drop(0, n, 60000);
  EXPECT_LE(mapped(), kFloor);
  EXPECT_EQ(bucket.Stats().blocks_in_use, 0u);
}

TEST(AllocatorTest, EmptyRegionsAreReusedBeforeNewOnesAreMapped) {
  Allocator a;
  std::vector<void*> blocks;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 10000; ++i) blocks.push_back(a.allocate(64));
    for (void* p : blocks) a.deallocate(p);
    blocks.clear();
  }
  const AllocatorStats s = a.stats();
  // 640 KB of blocks: the first round maps the regions, later rounds reuse.
  EXPECT_LE(s.regions_mapped, 12u);
}

struct TinyBuckets {
  static constexpr std::array<uint32_t, 3> kSizes{64, 512, 4096};
};

TEST(AllocatorTest, CustomBucketTable) {
  BasicAllocator<TinyBuckets> a;
  EXPECT_EQ(a.bucket_count(), 3u);
  void* p = a.allocate(65);
  EXPECT_EQ(a.usable_size(p), 512u);
  EXPECT_EQ(a.bucket_stats(1).blocks_in_use, 1u);
  void* q = a.allocate(5000);  // above the table: large path
  EXPECT_GE(a.usable_size(q), 5000u);
  a.deallocate(p);
  a.deallocate(q);
}

// Every size a block was allocated or reallocated with is accepted by the
// sized deallocate, in every range and with a coarse custom table too (65
// bytes take a 512-byte block there: not half of it, but more than the
// class below).
template <class Table>
void EverySizeGivenIsAccepted(BasicAllocator<Table>& a) {
  std::mt19937_64 rng(11);
  const auto pick = [&]() -> size_t {
    const uint64_t r = rng() % 8;
    if (r < 4) return 1 + rng() % 5000;
    if (r < 7) return 5000 + rng() % 2000000;
    return (size_t{2} << 20) + rng() % (size_t{8} << 20);
  };
  for (int i = 0; i < 600; ++i) {
    const size_t first = pick();
    const size_t alignment = rng() % 4 == 0 ? size_t{64} << (rng() % 7) : kMinAlignment;
    void* p = a.allocate(first, alignment);
    ASSERT_NE(p, nullptr);
    size_t size = first;
    if (rng() % 2 == 0) {
      size = rng() % 2 == 0 ? pick() : first / 2 + rng() % (first / 2 + 1);
      p = a.reallocate(p, size, alignment);
      ASSERT_NE(p, nullptr);
    }
    a.deallocate(p, size, alignment);
  }
}

struct TwoBuckets {
  static constexpr std::array<uint32_t, 2> kSizes{16, 256};
};

TEST(AllocatorTest, SizedDeallocateAcceptsEverySizeGiven) {
  Allocator a;
  EverySizeGivenIsAccepted(a);
  BasicAllocator<TinyBuckets> tiny;
  EverySizeGivenIsAccepted(tiny);
  // A large block that realloc kept because less than a split's worth
  // (1 KiB) was left: under half of it, and no class below to check.
  BasicAllocator<TwoBuckets> two;
  void* p = two.allocate(1000);
  ASSERT_EQ(two.reallocate(p, 300), p);
  two.deallocate(p, 300);
  EverySizeGivenIsAccepted(two);
}

struct OnlySixteenByteBlocks {
  static constexpr std::array<uint32_t, 1> kSizes{16};
};

TEST(AllocatorTest, ATableOfOnlySixteenByteBlocksServesTinyLargeBlocks) {
  // Requests just above the one class go to the large bucket, whose free
  // blocks keep their list links in their payload: a 32-byte payload was
  // too small for them, and freeing one overwrote its neighbour's header.
  BasicAllocator<OnlySixteenByteBlocks> a;
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  for (size_t size = 17; size <= 96; ++size) {
    auto* p = static_cast<unsigned char*>(a.allocate(size));
    ASSERT_NE(p, nullptr);
    std::memset(p, static_cast<int>(size), size);
    blocks.emplace_back(p, size);
  }
  for (size_t i = 0; i < blocks.size(); i += 2) a.deallocate(blocks[i].first, blocks[i].second);
  for (size_t i = 1; i < blocks.size(); i += 2) {
    auto [p, size] = blocks[i];
    EXPECT_EQ(p[0], static_cast<unsigned char>(size));
    EXPECT_EQ(p[size - 1], static_cast<unsigned char>(size));
    a.deallocate(p, size);
  }
  EXPECT_EQ(a.stats().large_blocks_in_use, 0u);
  EverySizeGivenIsAccepted(a);
  // A 17-byte request (padded to 48) that takes a freed 1 KiB block whole,
  // or a 1 KiB block realloc keeps for 17 bytes: the size given is the
  // right one, however much of the block is left past it.
  void* x = a.allocate(1048);
  void* pin = a.allocate(100);
  a.deallocate(x);
  void* p = a.allocate(17);
  EXPECT_GT(a.usable_size(p), 1000u);
  a.deallocate(p, 17);
  p = a.allocate(1041);
  ASSERT_EQ(a.reallocate(p, 17), p);
  a.deallocate(p, 17);
  a.deallocate(pin, 100);
}

TEST(AllocatorTest, OwnsNothingPastAHugeMappingsLastPage) {
  // The page map covers whole 64 KiB granules; a huge block's mapping ends
  // at a page, and the rest of its last granule is none of this instance's.
  Allocator a;
  const size_t size = (size_t{3} << 20) + 5000;
  auto* p = static_cast<char*>(a.allocate(size));
  ASSERT_NE(p, nullptr);
  const auto* region = internal::PageMap::Lookup(p);
  ASSERT_NE(region, nullptr);
  const char* end = reinterpret_cast<const char*>(region) + region->size;
  ASSERT_NE(reinterpret_cast<uintptr_t>(end) % internal::kGranule, 0u) << "ends on a granule";
  EXPECT_TRUE(a.owns(end - 1));
  EXPECT_EQ(internal::PageMap::Lookup(end), region);  // the granule's tail...
  EXPECT_FALSE(a.owns(end));                          // ...is not the instance's
  a.deallocate(p);
}

TEST(AllocatorTest, ANewLargeRegionsFreeSpaceIsYoung) {
  // Its pages were never touched: a decay purge right after leaves them.
  Allocator a;
  void* p = a.allocate(300000);
  a.heap().Purge(/*max_age_ms=*/1000);
  EXPECT_EQ(a.heap().LargeStats(0).bytes_decommitted, 0u);
  a.deallocate(p);
}

}  // namespace
}  // namespace rulloc

extern "C" void rulloc_decommit_observer(void* ptr, size_t size) {
  if (rulloc::decommit_observer != nullptr) rulloc::decommit_observer(ptr, size);
}
