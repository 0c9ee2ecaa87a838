// fork() while a free gives the kept large region's pages back, which it
// does with no lock held: the free never finishes in the child, so the
// child must take the region's block back itself, or the region would stay
// off its lists for good (never reused, never unmapped). The same for a
// purge of large free blocks and of partial small regions, and for a batch
// of emptied small regions that the region carver gives back.
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "core/c_api.h"
#include "core/page_map.h"
#include "gtest/gtest.h"
#include "platform/pages.h"

namespace {

// Atomics: the compiler knows free() as a builtin that reads neither, and
// would drop a plain store before it or a plain load after it.
std::atomic<pid_t> child{-1};
std::atomic<const void*> region{nullptr};  // of the blocks the test frees, once set
// The second test: a purged block's range, and the child that forks there.
std::atomic<uintptr_t> purged_from{0};
std::atomic<uintptr_t> purged_to{0};
std::atomic<pid_t> purge_child{-1};
// The third test: a small region whose free pages a purge gives back, the
// blocks the test kept there, and the child that forks there.
std::atomic<const void*> small_region{nullptr};
std::atomic<std::vector<void*>*> small_kept{nullptr};
std::atomic<pid_t> small_child{-1};
// The fourth test: the span of its blocks, the first range of it the
// carver gives back while watched, and the child another thread forks then.
std::atomic<uintptr_t> carved_from{0};
std::atomic<uintptr_t> carved_to{0};
std::atomic<uintptr_t> in_flight{0};
std::atomic<pid_t> carver_child{-1};

}  // namespace

// Called by the allocator on entry to every Decommit (see platform/pages.h).
extern "C" void rulloc_decommit_observer(void* ptr, size_t) {
  const auto addr = reinterpret_cast<uintptr_t>(ptr);
  // A range of no region (unmapped ones, given back by the carver): another
  // thread forks while this one has the range in flight.
  if (addr >= carved_from && addr < carved_to &&
      rulloc::internal::PageMap::Lookup(ptr) == nullptr && in_flight == 0) {
    in_flight = addr;
    in_flight.notify_all();
    carver_child.wait(-1);
    return;
  }
  if (addr >= purged_from && addr < purged_to && purge_child == -1) {
    purge_child = fork();
    if (purge_child != 0) return;
    // The child: the block is free here too, the purge never finishes
    // here, so the child must have put the block back on its lists.
    void* again = malloc(size_t{1} << 20);
    _exit(reinterpret_cast<uintptr_t>(again) == purged_from.load() ? 0 : 1);
  }
  if (small_region != nullptr && rulloc::internal::PageMap::Lookup(ptr) == small_region &&
      small_child == -1) {
    small_child = fork();
    if (small_child != 0) return;
    // The child: the purge never finishes here. With the region back on
    // its lists, freeing the kept blocks empties it and trim unmaps it.
    for (void* p : *small_kept.load()) free(p);
    rulloc_trim();
    _exit(rulloc::internal::PageMap::Lookup(ptr) == nullptr ? 0 : 1);
  }
  // (Not a decay's madvise, say, of another region.)
  if (region == nullptr || rulloc::internal::PageMap::Lookup(ptr) != region || child != -1) return;
  child = fork();
  if (child != 0) return;
  // The child: trim unmaps every empty region, the kept one included if it
  // is back on the lists.
  rulloc_trim();
  _exit(rulloc::internal::PageMap::Lookup(ptr) == nullptr ? 0 : 1);
}

namespace {

TEST(ForkDuringDecommitTest, TheChildTakesTheKeptRegionBack) {
  // One CPU, so one arena's large bucket takes every block.
  cpu_set_t one_cpu;
  CPU_ZERO(&one_cpu);
  CPU_SET(sched_getcpu(), &one_cpu);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one_cpu), &one_cpu), 0);
  using rulloc::internal::PageMap;
  constexpr size_t kSize = size_t{1} << 20;
  // No empty region kept from before (start-up's), so that the one the
  // test empties is kept, not unmapped.
  rulloc_trim();
  // Blocks until one starts a region of its own (the first region holds
  // other blocks of the process), then more in that region: past the 4 MiB
  // it keeps resident once empty.
  std::vector<void*> filler{malloc(kSize)};
  while (PageMap::Lookup(filler.back()) == PageMap::Lookup(filler.front())) {
    ASSERT_LT(filler.size(), 100u);
    filler.push_back(malloc(kSize));
  }
  std::vector<void*> blocks{filler.back()};
  filler.pop_back();
  while (blocks.size() < 12) blocks.push_back(malloc(kSize));
  for (void* p : blocks) {
    ASSERT_EQ(PageMap::Lookup(p), PageMap::Lookup(blocks.front()));
    std::memset(p, 1, kSize);
  }
  region = PageMap::Lookup(blocks.front());
  for (void* p : blocks) free(p);  // the last one empties the new region
  region = nullptr;
  for (void* p : filler) free(p);
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// The same for a purge, which gives free blocks' pages back with no lock
// held: a child forked meanwhile puts them back on its lists itself.
TEST(ForkDuringDecommitTest, TheChildTakesAPurgedBlockBack) {
  cpu_set_t one_cpu;
  CPU_ZERO(&one_cpu);
  CPU_SET(sched_getcpu(), &one_cpu);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one_cpu), &one_cpu), 0);
  constexpr size_t kSize = size_t{1} << 20;
  rulloc_trim();
  void* before = malloc(100000);
  void* purged = malloc(kSize);
  void* after = malloc(100000);  // keeps it off the region's free tail
  std::memset(purged, 1, kSize);
  free(purged);
  purged_from = reinterpret_cast<uintptr_t>(purged);
  purged_to = reinterpret_cast<uintptr_t>(purged) + kSize;
  rulloc_trim();  // purges whatever the age
  purged_from = 0;
  purged_to = 0;
  ASSERT_GT(purge_child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(purge_child, &status, 0), purge_child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  free(before);
  free(after);
}

// The same for a purge of a partial small region, which it takes off the
// lists while it gives the region's free pages back with no lock held.
TEST(ForkDuringDecommitTest, TheChildTakesADecommittingSmallRegionBack) {
  using rulloc::internal::PageMap;
  constexpr size_t kSize = 512;
  constexpr size_t kCount = 20000;  // regions of them, past start-up's blocks
  // (Both vectors' buffers are large blocks, none in the region.)
  std::vector<void*> blocks;
  std::vector<void*> kept;
  blocks.reserve(kCount);
  kept.reserve(kCount);
  for (size_t i = 0; i < kCount; ++i) blocks.push_back(malloc(kSize));
  const void* region = PageMap::Lookup(blocks[kCount / 2]);
  // A block kept in every two pages' worth of the region: free runs of
  // whole pages between them.
  const size_t stride = 2 * rulloc::platform::PageSize() / kSize;
  for (size_t i = 0; i < kCount; ++i) {
    if (PageMap::Lookup(blocks[i]) == region && i % stride == 0) {
      kept.push_back(blocks[i]);
    } else {
      free(blocks[i]);
    }
  }
  ASSERT_FALSE(kept.empty());
  small_kept = &kept;
  small_region = region;
  rulloc_trim();  // purges whatever the age
  small_region = nullptr;
  ASSERT_GT(small_child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(small_child, &status, 0), small_child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent's purge put the region back: it empties and goes too.
  for (void* p : kept) free(p);
  rulloc_trim();
  EXPECT_EQ(PageMap::Lookup(kept.front()), nullptr);
}

// The same for the region carver, which gives a batch of emptied small
// regions back with no lock held: a child forked meanwhile (by another
// thread) gives the batch back and keeps its address space itself, or it
// would stay mapped there, off every list, for good.
TEST(ForkDuringDecommitTest, TheChildTakesTheCarversBatchInFlightBack) {
  constexpr size_t kSize = 512;
  constexpr size_t kCount = 100000;  // 48 MiB of regions
  std::vector<void*> blocks(kCount);
  uintptr_t lowest = UINTPTR_MAX, highest = 0;
  for (void*& p : blocks) {
    p = malloc(kSize);
    lowest = std::min(lowest, reinterpret_cast<uintptr_t>(p));
    highest = std::max(highest, reinterpret_cast<uintptr_t>(p));
  }
  std::thread forker([] {
    in_flight.wait(0);
    if (in_flight == 1) return;  // nothing was given back
    const pid_t pid = fork();
    if (pid == 0) {
      // The child, this thread alone: a trim unmaps every range the
      // carver keeps, the one in flight included if it was taken back.
      rulloc_trim();
      unsigned char resident;
      const bool unmapped = mincore(reinterpret_cast<void*>(in_flight.load()),
                                    rulloc::platform::PageSize(), &resident) != 0 &&
                            errno == ENOMEM;
      _exit(unmapped ? 0 : 1);
    }
    carver_child = pid;
    carver_child.notify_all();
  });
  for (void* p : blocks) free(p);
  // Every block back in its bucket first, so that the trim below runs with
  // no lock held when it gives the emptied regions back.
  rulloc_thread_cache_flush();
  // (A merged range may start below the lowest block.)
  constexpr uintptr_t kChunk = uintptr_t{2} << 20;
  carved_from = lowest & ~(kChunk - 1);
  carved_to = highest + kChunk;
  rulloc_trim();
  carved_from = carved_to = 0;
  if (in_flight == 0) {  // (the forker must not wait for good)
    in_flight = 1;
    in_flight.notify_all();
  }
  forker.join();
  ASSERT_NE(in_flight, 1u) << "the trim gave no range of the test's regions back";
  ASSERT_GT(carver_child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(carver_child, &status, 0), carver_child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
