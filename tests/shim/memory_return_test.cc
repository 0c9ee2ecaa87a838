// Memory goes back to the OS after a peak, including what threads that are
// now idle freed: at once with malloc_trim, or by decay from the background
// purge thread while every thread sleeps. The binary's allocator is Rulloc.
#include <malloc.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/barrier.h"
#include "absl/synchronization/notification.h"
#include "concurrency/thread_cache.h"
#include "gtest/gtest.h"
#include "platform/pages.h"
#include "shim/background_purge.h"

namespace {

constexpr int kThreads = 8;
constexpr size_t kPeakPerThread = size_t{40} << 20;
constexpr size_t kLivePerThread = size_t{2} << 20;

// Threads that build a long-lived set and a temporary peak (all threads'
// peaks resident together), free the peak, then stay alive and idle until
// released.
class IdleAfterPeak {
 public:
  IdleAfterPeak() : built_(kThreads), measured_(kThreads), peaked_(kThreads + 1) {
    for (int t = 0; t < kThreads; ++t) threads_.emplace_back([this, t] { Run(t); });
    peaked_.Block();
  }
  ~IdleAfterPeak() {
    release_.Notify();
    for (auto& t : threads_) t.join();
  }
  size_t live_bytes() const { return live_bytes_; }
  size_t peak_rss() const { return peak_rss_; }

 private:
  void Run(int t) {
    std::mt19937_64 rng(t);
    std::vector<void*> live, temp;
    size_t live_bytes = 0, temp_bytes = 0;
    while (live_bytes < kLivePerThread) {
      const size_t size = 16 + rng() % 2000;
      live.push_back(malloc(size));
      std::memset(live.back(), 1, size);
      live_bytes += size;
    }
    while (temp_bytes < kPeakPerThread) {
      const size_t size = rng() % 50 == 0 ? 40000 + rng() % 400000 : 16 + rng() % 4000;
      temp.push_back(malloc(size));
      std::memset(temp.back(), 2, size);
      temp_bytes += size;
    }
    live_bytes_ += live_bytes;
    // Every thread's peak is resident at once when RSS is read: without the
    // barriers, threads that ran early freed theirs (and others reused it)
    // before late ones built, and the peak depended on scheduling.
    built_.Block();
    size_t rss = rulloc::platform::ResidentBytes();
    size_t seen = peak_rss_.load();
    while (rss > seen && !peak_rss_.compare_exchange_weak(seen, rss)) {
    }
    measured_.Block();
    for (void* p : temp) free(p);
    temp = {};
    peaked_.Block();
    release_.WaitForNotification();  // idle: no allocation, no free
    for (void* p : live) free(p);
  }

  absl::Barrier built_;
  absl::Barrier measured_;
  absl::Barrier peaked_;
  absl::Notification release_;
  std::atomic<size_t> live_bytes_{0};
  std::atomic<size_t> peak_rss_{0};
  std::vector<std::thread> threads_;
};

// What may stay resident besides the live data: the idle threads' own
// caches (their frees beyond it went back) and a little slack.
size_t Allowance() {
  return kThreads * rulloc::internal::ThreadCache::kThreadBudget + (size_t{12} << 20);
}

TEST(MemoryReturnTest, MallocTrimReturnsWhatIdleThreadsFreed) {
  malloc_trim(0);
  const size_t start = rulloc::platform::ResidentBytes();
  IdleAfterPeak workers;
  const size_t before = rulloc::platform::ResidentBytes();
  EXPECT_EQ(malloc_trim(0), 1);
  const size_t after = rulloc::platform::ResidentBytes();
  std::printf("RSS MiB: start %zu, peak %zu, idle %zu, after trim %zu; live %zu\n", start >> 20,
              workers.peak_rss() >> 20, before >> 20, after >> 20, workers.live_bytes() >> 20);
  EXPECT_GT(workers.peak_rss(), start + kThreads * kPeakPerThread * 3 / 4);
  EXPECT_LT(after, start + workers.live_bytes() + Allowance());
}

TEST(MemoryReturnTest, BackgroundPurgeReturnsMemoryWhileEveryThreadIsIdle) {
  malloc_trim(0);
  const size_t start = rulloc::platform::ResidentBytes();
  ASSERT_TRUE(rulloc::shim::StartBackgroundPurge());
  IdleAfterPeak workers;
  const size_t bound = start + workers.live_bytes() + Allowance();
  // The main thread waits without allocating: only the decay thread runs.
  // Decay takes a few seconds (regions empty for 1 s; transfer caches idle
  // for a whole decay period); allow ten.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  size_t rss = rulloc::platform::ResidentBytes();
  while (rss >= bound && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    rss = rulloc::platform::ResidentBytes();
  }
  std::printf("RSS MiB: start %zu, peak %zu, after decay %zu (bound %zu); live %zu\n", start >> 20,
              workers.peak_rss() >> 20, rss >> 20, bound >> 20, workers.live_bytes() >> 20);
  EXPECT_LT(rss, bound);
}

}  // namespace
