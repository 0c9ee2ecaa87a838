// Several threads allocate and free on the bucket path; a shared queue makes
// most frees happen on a different thread than the allocation.
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/allocator.h"
#include "core/c_api.h"
#include "gtest/gtest.h"

namespace rulloc {
namespace {

struct Handoff {
  std::mutex mu;
  std::vector<std::pair<unsigned char*, size_t>> blocks;
};

void Fill(unsigned char* p, size_t size) {
  const auto tag = static_cast<unsigned char>(reinterpret_cast<uintptr_t>(p) >> 4);
  std::memset(p, tag, size);
}
bool Intact(const unsigned char* p, size_t size) {
  const auto tag = static_cast<unsigned char>(reinterpret_cast<uintptr_t>(p) >> 4);
  for (size_t i = 0; i < size; ++i) {
    if (p[i] != tag) return false;
  }
  return true;
}

void Worker(Allocator& a, Handoff& handoff, int seed, int iterations, std::atomic<int>& bad) {
  std::mt19937 rng(seed);
  std::vector<std::pair<unsigned char*, size_t>> mine;
  for (int i = 0; i < iterations; ++i) {
    size_t size = rng() % 16 == 0 ? rng() % 200000 : rng() % 1024;
    auto* p = static_cast<unsigned char*>(a.allocate(size));
    if (p == nullptr) {
      ++bad;
      continue;
    }
    Fill(p, size);
    if (rng() % 2 == 0) {
      mine.emplace_back(p, size);
    } else {
      std::lock_guard<std::mutex> hold(handoff.mu);
      handoff.blocks.emplace_back(p, size);
    }
    if (mine.size() > 64) {
      for (auto [q, n] : mine) {
        if (!Intact(q, n)) ++bad;
        a.deallocate(q);
      }
      mine.clear();
    }
    std::vector<std::pair<unsigned char*, size_t>> theirs;
    {
      std::lock_guard<std::mutex> hold(handoff.mu);
      if (handoff.blocks.size() > 32) theirs.swap(handoff.blocks);
    }
    for (auto [q, n] : theirs) {
      if (!Intact(q, n)) ++bad;
      a.deallocate(q);
    }
  }
  for (auto [q, n] : mine) {
    if (!Intact(q, n)) ++bad;
    a.deallocate(q);
  }
}

TEST(ThreadsTest, CrossThreadFreesOnTheBucketPath) {
  Allocator a;
  Handoff handoff;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back(Worker, std::ref(a), std::ref(handoff), t, 20000, std::ref(bad));
  }
  for (auto& t : threads) t.join();
  for (auto [q, n] : handoff.blocks) {
    EXPECT_TRUE(Intact(q, n));
    a.deallocate(q);
  }
  EXPECT_EQ(bad.load(), 0);
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.small_blocks_in_use, 0u);
  EXPECT_EQ(s.large_blocks_in_use, 0u);
}

TEST(ThreadsTest, DefaultAllocatorFromManyThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&bad, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 20000; ++i) {
        size_t size = rng() % 3000;
        auto* p = static_cast<unsigned char*>(rulloc_malloc(size));
        const auto tag = static_cast<unsigned char>(i);
        std::memset(p, tag, size);
        p = static_cast<unsigned char*>(rulloc_realloc(p, size + 10));
        for (size_t j = 0; j < size; ++j) {
          if (p[j] != tag) ++bad;
        }
        rulloc_free(p);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace rulloc
