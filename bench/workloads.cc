// Server-like allocation workloads, one per run, for side-by-side runs under
// different allocators (glibc, or one preloaded with LD_PRELOAD). Each
// workload has a fixed seed, a thread count and a size knob, verifies the
// data it wrote (a broken allocator cannot look fast), and prints one line.
// At scale 1 every run takes well over the ~15 ms a process needs to start
// and load its libraries, so that start-up does not drown the allocator:
//
//   workload=larson threads=4 checksum=... peak_rss_kb=... after_idle_rss_kb=...
//
//   workloads --workload=larson --threads=4 --scale=1
#include <sys/resource.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "bench/batch_queue.h"
#include "platform/pages.h"

ABSL_FLAG(std::string, workload, "larson",
          "larson, prodcons, threads, burst, realloc, churn, large, fragment, peakidle");
ABSL_FLAG(int, threads, 4, "worker threads");
ABSL_FLAG(double, scale, 1.0, "multiplies the amount of work");
ABSL_FLAG(uint64_t, seed, 42, "random seed");
ABSL_FLAG(int, idle_ms, 500,
          "peakidle: how long the process idles, its worker threads alive, before its resident "
          "memory is read");

namespace {

std::atomic<bool> corrupted{false};

// Fills a block with bytes derived from a tag; Verify checks them.
void Fill(void* p, size_t size, uint64_t tag) {
  auto* bytes = static_cast<unsigned char*>(p);
  const size_t stride = size < 64 ? 1 : 61;
  for (size_t i = 0; i < size; i += stride) bytes[i] = static_cast<unsigned char>(tag + i);
  if (size > 0) bytes[size - 1] = static_cast<unsigned char>(tag * 31);
}
uint64_t Verify(const void* p, size_t size, uint64_t tag) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  const size_t stride = size < 64 ? 1 : 61;
  uint64_t sum = 0;
  for (size_t i = 0; i + 1 < size; i += stride) {
    if (bytes[i] != static_cast<unsigned char>(tag + i)) corrupted = true;
    sum += bytes[i];
  }
  if (size > 0 && bytes[size - 1] != static_cast<unsigned char>(tag * 31)) corrupted = true;
  return sum + size;
}

struct Block {
  void* ptr = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

Block Make(size_t size, uint64_t tag) {
  Block b{std::malloc(size), size, tag};
  if (b.ptr == nullptr) {
    std::fprintf(stderr, "allocation of %zu bytes failed\n", size);
    std::exit(2);
  }
  Fill(b.ptr, size, tag);
  return b;
}
uint64_t Release(Block& b) {
  const uint64_t sum = Verify(b.ptr, b.size, b.tag);
  std::free(b.ptr);
  b.ptr = nullptr;
  return sum;
}

// The process's peak resident memory (VmHWM), which, unlike the rusage
// figure its parent sees, does not include the parent's memory before exec.
size_t PeakResidentKb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb;
}

struct Context {
  int threads;
  double scale;
  uint64_t seed;
  size_t Ops(double base) const { return static_cast<size_t>(base * scale); }
};

// Runs body(thread index) on `threads` threads; returns the sum of results.
uint64_t RunThreads(int threads, const std::function<uint64_t(int)>& body) {
  std::vector<std::thread> pool;
  std::vector<uint64_t> results(threads);
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { results[t] = body(t); });
  for (auto& t : pool) t.join();
  uint64_t sum = 0;
  for (uint64_t r : results) sum += r;
  return sum;
}

// Larson: each thread replaces random objects in its slots; after every
// round the slot arrays rotate, so objects are freed by other threads.
uint64_t Larson(const Context& c) {
  constexpr size_t kSlots = 2000;
  const size_t rounds = 40;
  const size_t per_round = c.Ops(800000) / static_cast<size_t>(c.threads) / rounds + 1;
  std::vector<std::vector<Block>> slots(c.threads, std::vector<Block>(kSlots));
  std::barrier sync(c.threads);
  return RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    uint64_t sum = 0;
    for (size_t round = 0; round < rounds; ++round) {
      auto& mine = slots[(t + round) % c.threads];
      for (size_t i = 0; i < per_round; ++i) {
        Block& b = mine[rng() % kSlots];
        if (b.ptr != nullptr) sum += Release(b);
        b = Make(16 + rng() % 1000, rng());
      }
      sync.arrive_and_wait();
    }
    if (t == 0) {
      for (auto& array : slots)
        for (Block& b : array)
          if (b.ptr != nullptr) sum += Release(b);
    }
    return sum;
  });
}

// Producer/consumer: half the threads allocate messages, half verify and
// free them, through a bounded queue.
uint64_t ProducerConsumer(const Context& c) {
  const int producers = std::max(1, c.threads / 2);
  const int consumers = std::max(1, c.threads - producers);
  const size_t per_producer = c.Ops(800000) / producers;
  rulloc::bench::BatchQueue<std::vector<Block>> queue(256);
  std::atomic<int> producing{producers};
  return RunThreads(producers + consumers, [&](int t) -> uint64_t {
    uint64_t sum = 0;
    if (t < producers) {
      std::mt19937_64 rng(c.seed + t);
      for (size_t made = 0; made < per_producer; made += 64) {
        std::vector<Block> batch;
        for (int i = 0; i < 64; ++i) batch.push_back(Make(16 + rng() % 2048, rng()));
        queue.Push(std::move(batch));
      }
      if (--producing == 0) queue.Close();
      return 0;
    }
    std::vector<Block> batch;
    while (queue.Pop(&batch)) {
      for (Block& b : batch) sum += Release(b);
    }
    return sum;
  });
}

// Many short-lived threads, in waves of `threads`.
uint64_t ShortLivedThreads(const Context& c) {
  const size_t waves = c.Ops(1200) / static_cast<size_t>(c.threads) + 1;
  uint64_t sum = 0;
  for (size_t wave = 0; wave < waves; ++wave) {
    sum += RunThreads(c.threads, [&](int t) {
      std::mt19937_64 rng(c.seed + wave * 1000 + t);
      std::vector<Block> blocks;
      uint64_t s = 0;
      for (int i = 0; i < 500; ++i) blocks.push_back(Make(16 + rng() % 512, rng()));
      for (Block& b : blocks) s += Release(b);
      return s;
    });
  }
  return sum;
}

// Per-request bursts: allocate a few hundred small objects, free them all.
uint64_t Bursts(const Context& c) {
  const size_t requests = c.Ops(16000) / static_cast<size_t>(c.threads) + 1;
  return RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    std::vector<Block> request;
    uint64_t sum = 0;
    for (size_t r = 0; r < requests; ++r) {
      const size_t objects = 200 + rng() % 300;
      for (size_t i = 0; i < objects; ++i) request.push_back(Make(16 + rng() % 240, rng()));
      for (Block& b : request) sum += Release(b);
      request.clear();
    }
    return sum;
  });
}

// String and vector building: buffers grow by realloc, small to large.
uint64_t ReallocGrowth(const Context& c) {
  const size_t builds = c.Ops(3000) / static_cast<size_t>(c.threads) + 1;
  return RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    uint64_t sum = 0;
    for (size_t n = 0; n < builds; ++n) {
      const size_t target = rng() % 8 == 0 ? 200000 + rng() % 800000 : 100 + rng() % 20000;
      size_t capacity = 16, length = 0;
      auto* buffer = static_cast<unsigned char*>(std::malloc(capacity));
      while (length < target) {
        const size_t chunk = 1 + rng() % 64;
        if (length + chunk > capacity) {
          capacity = capacity * 3 / 2 + chunk;
          buffer = static_cast<unsigned char*>(std::realloc(buffer, capacity));
          if (buffer == nullptr) std::exit(2);
        }
        for (size_t i = 0; i < chunk; ++i)
          buffer[length + i] = static_cast<unsigned char>(length + i);
        length += chunk;
      }
      for (size_t i = 0; i < length; i += 97) {
        if (buffer[i] != static_cast<unsigned char>(i)) corrupted = true;
        sum += buffer[i];
      }
      std::free(buffer);
    }
    return sum;
  });
}

// Single-threaded churn over a mixed live set (the thread count is ignored).
uint64_t Churn(const Context& c) {
  std::mt19937_64 rng(c.seed);
  std::vector<Block> live(20000);
  uint64_t sum = 0;
  const size_t ops = c.Ops(2000000);
  for (size_t i = 0; i < ops; ++i) {
    Block& b = live[rng() % live.size()];
    if (b.ptr != nullptr) sum += Release(b);
    const unsigned kind = rng() % 100;
    const size_t size = kind < 90   ? 8 + rng() % 256
                        : kind < 99 ? 256 + rng() % 8000
                                    : 8000 + rng() % 100000;
    b = Make(size, rng());
  }
  for (Block& b : live)
    if (b.ptr != nullptr) sum += Release(b);
  return sum;
}

// Large blocks of 1 to 64 MiB, written through and freed.
uint64_t LargeBlocks(const Context& c) {
  const size_t per_thread = c.Ops(16) / static_cast<size_t>(c.threads) + 1;
  return RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    uint64_t sum = 0;
    for (size_t i = 0; i < per_thread; ++i) {
      const size_t size = (size_t{1} << 20) + rng() % (size_t{63} << 20);
      auto* p = static_cast<unsigned char*>(std::malloc(size));
      if (p == nullptr) std::exit(2);
      std::memset(p, static_cast<int>(i), size);
      for (size_t k = 0; k < size; k += 4096) sum += p[k];
      if (p[size - 1] != static_cast<unsigned char>(i)) corrupted = true;
      std::free(p);
    }
    return sum;
  });
}

// Fragmentation: many small objects, free every other, then bigger ones.
// The threads go through the phases together, so that the peak is every
// thread's live set at once, whatever the scheduler overlaps.
uint64_t Fragmentation(const Context& c) {
  const size_t count = c.Ops(300000) / static_cast<size_t>(c.threads) + 1;
  std::barrier sync(c.threads);
  return RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    std::vector<Block> blocks;
    uint64_t sum = 0;
    for (size_t i = 0; i < count; ++i) blocks.push_back(Make(32 + rng() % 96, rng()));
    sync.arrive_and_wait();
    for (size_t i = 0; i < count; i += 2) sum += Release(blocks[i]);
    sync.arrive_and_wait();
    std::vector<Block> bigger;
    for (size_t i = 0; i < count / 4; ++i) bigger.push_back(Make(256 + rng() % 768, rng()));
    sync.arrive_and_wait();
    for (Block& b : blocks)
      if (b.ptr != nullptr) sum += Release(b);
    for (Block& b : bigger) sum += Release(b);
    return sum;
  });
}

size_t after_idle_rss_kb = 0;

// A peak of small and medium objects on every thread, all freed, then the
// process idles; the resident memory left after the idle time is reported.
uint64_t PeakThenIdle(const Context& c) {
  const size_t per_thread = c.Ops(600000) / static_cast<size_t>(c.threads) + 1;
  std::barrier sync(c.threads);
  const uint64_t sum = RunThreads(c.threads, [&](int t) {
    std::mt19937_64 rng(c.seed + t);
    std::vector<Block> blocks;
    uint64_t s = 0;
    for (size_t i = 0; i < per_thread; ++i) {
      blocks.push_back(Make(16 + rng() % (rng() % 10 == 0 ? 4000 : 300), rng()));
    }
    sync.arrive_and_wait();
    for (Block& b : blocks) s += Release(b);
    blocks = {};
    sync.arrive_and_wait();
    // The worker threads stay alive through the idle time, as a server's do.
    std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_idle_ms)));
    if (t == 0) after_idle_rss_kb = rulloc::platform::ResidentBytes() / 1024;
    sync.arrive_and_wait();
    return s;
  });
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const Context c{std::max(1, absl::GetFlag(FLAGS_threads)), absl::GetFlag(FLAGS_scale),
                  absl::GetFlag(FLAGS_seed)};
  const std::map<std::string, uint64_t (*)(const Context&)> workloads = {
      {"larson", Larson},     {"prodcons", ProducerConsumer}, {"threads", ShortLivedThreads},
      {"burst", Bursts},      {"realloc", ReallocGrowth},     {"churn", Churn},
      {"large", LargeBlocks}, {"fragment", Fragmentation},    {"peakidle", PeakThenIdle},
  };
  const std::string name = absl::GetFlag(FLAGS_workload);
  const auto it = workloads.find(name);
  if (it == workloads.end()) {
    std::fprintf(stderr, "unknown workload %s\n", name.c_str());
    return 2;
  }
  const uint64_t checksum = it->second(c);
  if (corrupted) {
    std::fprintf(stderr, "workload %s: data corrupted\n", name.c_str());
    return 3;
  }
  std::printf("%s\n", absl::StrFormat(
                          "workload=%s threads=%d checksum=%d peak_rss_kb=%d after_idle_rss_kb=%d",
                          name, c.threads, checksum, PeakResidentKb(), after_idle_rss_kb)
                          .c_str());
  return 0;
}
