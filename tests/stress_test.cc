// Many threads (2×, 4× and 16× the cores) with random sizes across every
// bucket and beyond, cross-thread frees, and frees of blocks whose
// allocating thread has exited. Each block carries a pattern checked on free
// (never 0, which a page given back would read as).
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "concurrency/thread_cache.h"
#include "core/c_api.h"
#include "gtest/gtest.h"
#include "tests/sanitizers.h"

namespace rulloc {
namespace {

constexpr int kOpsPerThread = test_support::kUnderSanitizer ? 3000 : 40000;

struct Block {
  unsigned char* ptr;
  size_t size;
  unsigned char tag;
};

struct Shared {
  std::mutex mu;
  std::vector<Block> pool;  // blocks any thread may free
  std::atomic<long> corrupted{0};
};

size_t RandomSize(std::mt19937& rng) {
  const unsigned r = rng() % 1000;
  if (r == 0) return 3000000 + rng() % 1000000;  // huge
  if (r < 20) return 40000 + rng() % 400000;     // large
  return 1 + rng() % 32768;                      // every small bucket
}

void Check(Shared& shared, const Block& b) {
  for (size_t i = 0; i < b.size; i += 61) {
    if (b.ptr[i] != b.tag) {
      ++shared.corrupted;
      return;
    }
  }
  rulloc_free(b.ptr);
}

void Worker(Shared& shared, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Block> mine;
  for (int op = 0; op < kOpsPerThread; ++op) {
    const unsigned action = rng() % 8;
    if (action < 4 || mine.empty()) {
      Block b{nullptr, RandomSize(rng), static_cast<unsigned char>(rng() | 1)};
      b.ptr = static_cast<unsigned char*>(rulloc_malloc(b.size));
      ASSERT_NE(b.ptr, nullptr);
      for (size_t i = 0; i < b.size; i += 61) b.ptr[i] = b.tag;
      if (rng() % 3 == 0) {
        std::lock_guard<std::mutex> hold(shared.mu);
        shared.pool.push_back(b);
      } else {
        mine.push_back(b);
      }
    } else if (action < 7) {
      const size_t i = rng() % mine.size();
      Check(shared, mine[i]);
      mine[i] = mine.back();
      mine.pop_back();
    } else {
      Block b{};
      {
        std::lock_guard<std::mutex> hold(shared.mu);
        if (shared.pool.empty()) continue;
        const size_t i = rng() % shared.pool.size();
        b = shared.pool[i];
        shared.pool[i] = shared.pool.back();
        shared.pool.pop_back();
      }
      Check(shared, b);
    }
  }
  // Half of what is left outlives this thread, in the shared pool.
  std::lock_guard<std::mutex> hold(shared.mu);
  for (size_t i = 0; i < mine.size(); ++i) {
    if (i % 2 == 0) {
      shared.pool.push_back(mine[i]);
    } else {
      Check(shared, mine[i]);
    }
  }
}

class StressTest : public ::testing::TestWithParam<int> {};

TEST_P(StressTest, ThreadsPerCore) {
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  const unsigned threads = cores * static_cast<unsigned>(GetParam());
  Shared shared;
  // Two waves, so that the second frees blocks of threads that have exited.
  for (int wave = 0; wave < 2; ++wave) {
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back(Worker, std::ref(shared), wave * 1000 + t);
    }
    for (auto& w : workers) w.join();
  }
  for (const Block& b : shared.pool) Check(shared, b);
  EXPECT_EQ(shared.corrupted.load(), 0);
  rulloc_thread_cache_flush();
  const ProcessStats stats = GetProcessStats();
  EXPECT_EQ(stats.blocks_in_use, 0u);
  EXPECT_EQ(stats.blocks_in_caches, 0u);
  std::printf("%u threads: refills %zu, flushes %zu\n", threads, stats.refills, stats.flushes);
}

INSTANTIATE_TEST_SUITE_P(Multiples, StressTest, ::testing::Values(2, 4, 16));

// Threads leave their regions fragmented (one small block kept in 64, so
// that free runs cover whole pages; a large block kept in 4) and free the
// kept blocks later, some from other threads, while another thread trims
// without pause: purges give pages back with no lock held, with regions
// and large blocks off their lists meanwhile. A block handed out of a range
// whose pages go back would lose its pattern.
size_t SmallBytesDecommitted() {
  internal::Heap& heap = internal::DefaultHeap();
  size_t bytes = 0;
  for (size_t b = 0; b < heap.small_bucket_count(); ++b)
    bytes += heap.SmallStats(b).bytes_decommitted;
  return bytes;
}

TEST(StressTest, TrimsRunAlongsideFragmentingThreads) {
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  const int rounds = test_support::kUnderSanitizer ? 20 : 200;
  const size_t decommitted_before = SmallBytesDecommitted();
  Shared shared;
  std::atomic<bool> done{false};
  std::thread trimmer([&] {
    while (!done.load(std::memory_order_relaxed)) rulloc_trim();
  });
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < 2 * cores; ++t) {
    workers.emplace_back([&shared, t, rounds] {
      std::mt19937 rng(t);
      for (int round = 0; round < rounds; ++round) {
        std::vector<Block> blocks;
        for (int i = 0; i < 4096; ++i) {
          const size_t size = i % 256 == 255 ? 100000 + rng() % 100000 : 16 + 16 * (t % 8);
          Block b{static_cast<unsigned char*>(rulloc_malloc(size)), size,
                  static_cast<unsigned char>(rng() | 1)};
          ASSERT_NE(b.ptr, nullptr);
          for (size_t k = 0; k < b.size; k += 61) b.ptr[k] = b.tag;
          blocks.push_back(b);
        }
        std::vector<Block> kept;
        for (size_t i = 0; i < blocks.size(); ++i) {
          // (Small: runs of free blocks two pages long between kept ones.)
          const bool keep =
              blocks[i].size >= 100000 ? i % 1024 == 255 : i % (8192 / blocks[i].size) == 0;
          if (keep) {
            kept.push_back(blocks[i]);
          } else {
            Check(shared, blocks[i]);
          }
        }
        std::lock_guard<std::mutex> hold(shared.mu);
        for (const Block& b : shared.pool) Check(shared, b);  // another thread's
        shared.pool = kept;
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  trimmer.join();
  for (const Block& b : shared.pool) Check(shared, b);
  EXPECT_EQ(shared.corrupted.load(), 0);
  // The trims gave free pages of fragmented regions back meanwhile.
  EXPECT_GT(SmallBytesDecommitted(), decommitted_before);
  rulloc_thread_cache_flush();
  EXPECT_EQ(GetProcessStats().blocks_in_use, 0u);
}

}  // namespace
}  // namespace rulloc
