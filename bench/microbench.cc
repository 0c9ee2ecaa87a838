// Microbenchmarks of the allocation fast path against the peers, in one
// binary. After the runs, a table gives each allocator's median time per
// operation and its ratio to Rulloc's.
//
//   bazel run //bench:microbench -- --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/batch_queue.h"
#include "bench/peer_allocators.h"

namespace rulloc::bench {
namespace {

// malloc + free of one size, repeated: the thread-cache fast path.
void SameSizePair(benchmark::State& state, PeerAllocator a, size_t size) {
  for (auto _ : state) {
    void* p = a.malloc(size);
    benchmark::DoNotOptimize(p);
    a.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// 256 live blocks of random sizes up to `max`, replaced in random order.
void RandomSizes(benchmark::State& state, PeerAllocator a, size_t max) {
  std::mt19937 rng(42);
  std::vector<size_t> sizes(4096);
  for (size_t& s : sizes) s = 1 + rng() % max;
  std::vector<unsigned> slots(4096);
  for (unsigned& s : slots) s = rng() % 256;
  std::vector<void*> live(256);
  for (size_t i = 0; i < live.size(); ++i) live[i] = a.malloc(sizes[i]);
  size_t i = 0;
  for (auto _ : state) {
    void*& slot = live[slots[i % slots.size()]];
    a.free(slot);
    slot = a.malloc(sizes[i % sizes.size()]);
    benchmark::DoNotOptimize(slot);
    ++i;
  }
  for (void* p : live) a.free(p);
  state.SetItemsProcessed(state.iterations());
}

// Allocate a batch of blocks, then free them all: a request's objects. At
// 200000 blocks of 64 B, each cycle builds and drops 12.8 MB.
void BatchThenFree(benchmark::State& state, PeerAllocator a, size_t size, size_t batch) {
  std::vector<void*> blocks(batch);
  for (auto _ : state) {
    for (void*& p : blocks) p = a.malloc(size);
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) a.free(p);
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// A buffer grown by realloc from 1 MiB to 64 MiB in 1.5x steps, each new
// part written, then freed: huge blocks that grow (mremap territory).
void HugeReallocGrowth(benchmark::State& state, PeerAllocator a) {
  constexpr size_t kStart = size_t{1} << 20;
  constexpr size_t kEnd = size_t{64} << 20;
  for (auto _ : state) {
    size_t size = kStart;
    auto* p = static_cast<char*>(a.malloc(size));
    std::memset(p, 1, size);
    while (size < kEnd) {
      const size_t grown = size * 3 / 2;
      p = static_cast<char*>(a.realloc(p, grown));
      if (p == nullptr) {
        state.SkipWithError("realloc failed");
        return;
      }
      std::memset(p + size, 2, grown - size);
      size = grown;
    }
    benchmark::DoNotOptimize(p);
    a.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// Buffers built by realloc as string builders do: from 16 bytes, 1.5x plus
// a bit per step, to a target of 100 B .. 20 KB (one in eight: 200 KB ..
// 1 MB); the last byte of each step is written. Realloc's own cost.
void BufferGrowth(benchmark::State& state, PeerAllocator a) {
  std::mt19937_64 rng(42);
  std::vector<size_t> targets(256);
  for (size_t& t : targets) t = rng() % 8 == 0 ? 200000 + rng() % 800000 : 100 + rng() % 20000;
  size_t i = 0;
  for (auto _ : state) {
    const size_t target = targets[i++ % targets.size()];
    size_t capacity = 16;
    auto* p = static_cast<char*>(a.malloc(capacity));
    while (capacity < target) {
      capacity = capacity * 3 / 2 + 32;
      p = static_cast<char*>(a.realloc(p, capacity));
      if (p == nullptr) {
        state.SkipWithError("realloc failed");
        return;
      }
      p[capacity - 1] = 1;
    }
    benchmark::DoNotOptimize(p);
    a.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// One thread allocates, another frees, through a queue of batches.
void ProducerConsumer(benchmark::State& state, PeerAllocator a, size_t size) {
  constexpr size_t kBatch = 256;
  constexpr size_t kBatchesPerIteration = 64;
  BatchQueue<std::vector<void*>> queue(8);
  std::thread consumer([&] {
    std::vector<void*> batch;
    while (queue.Pop(&batch)) {
      for (void* p : batch) a.free(p);
    }
  });
  for (auto _ : state) {
    for (size_t b = 0; b < kBatchesPerIteration; ++b) {
      std::vector<void*> batch(kBatch);
      for (void*& p : batch) p = a.malloc(size);
      queue.Push(std::move(batch));
    }
  }
  queue.Close();
  consumer.join();
  state.SetItemsProcessed(state.iterations() * kBatch * kBatchesPerIteration);
}

// Collects the median time per item of every run, keyed by workload and
// allocator, and prints the ratio table after the console output.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
      const std::string name = run.run_name.function_name;  // "workload/allocator"
      const size_t slash = name.rfind('/');
      auto items = run.counters.find("items_per_second");
      if (items == run.counters.end() || items->second.value <= 0) continue;
      ns_per_item_[name.substr(0, slash)][name.substr(slash + 1)] = 1e9 / items->second.value;
    }
  }

  void PrintTable() const {
    std::vector<std::string> names;
    for (const auto& peer : PeerAllocators()) names.push_back(peer.name);
    std::printf("\nns per operation (median), and ratio to rulloc (>1: rulloc is faster)\n");
    std::printf("%-28s", "workload");
    for (const auto& n : names) std::printf(" %16s", n.c_str());
    std::printf("\n");
    for (const auto& [workload, by_allocator] : ns_per_item_) {
      std::printf("%-28s", workload.c_str());
      const auto own = by_allocator.find("rulloc");
      for (const auto& n : names) {
        const auto it = by_allocator.find(n);
        if (it == by_allocator.end()) {
          std::printf(" %16s", "-");
        } else if (own == by_allocator.end()) {
          std::printf(" %16.2f", it->second);
        } else {
          std::printf("   %6.2f (%5.2fx)", it->second, it->second / own->second);
        }
      }
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, std::map<std::string, double>> ns_per_item_;
};

void RegisterAll() {
  for (const PeerAllocator& a : PeerAllocators()) {
    for (size_t size : {16, 64, 512, 4096}) {
      benchmark::RegisterBenchmark(
          ("same_size_pair_" + std::to_string(size) + "/" + a.name).c_str(), SameSizePair, a, size);
    }
    benchmark::RegisterBenchmark(("random_sizes_1k/" + a.name).c_str(), RandomSizes, a, 1024);
    benchmark::RegisterBenchmark(("random_sizes_32k/" + a.name).c_str(), RandomSizes, a, 32768);
    benchmark::RegisterBenchmark(("batch_then_free_64/" + a.name).c_str(), BatchThenFree, a, 64,
                                 10000);
    benchmark::RegisterBenchmark(("batch_then_free_64_200k/" + a.name).c_str(), BatchThenFree, a,
                                 64, 200000);
    benchmark::RegisterBenchmark(("producer_consumer_64/" + a.name).c_str(), ProducerConsumer, a,
                                 64)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("buffer_growth/" + a.name).c_str(), BufferGrowth, a);
    benchmark::RegisterBenchmark(("huge_realloc_growth/" + a.name).c_str(), HugeReallocGrowth, a)
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace rulloc::bench

int main(int argc, char** argv) {
  rulloc::bench::PreloadJemallocAndReexec(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  rulloc::bench::RegisterAll();
  rulloc::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintTable();
  benchmark::Shutdown();
  return 0;
}
