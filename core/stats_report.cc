#include "core/stats_report.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/region_carver.h"
#include "platform/pages.h"

namespace rulloc {
namespace {

// Formats into a stack buffer and writes it out when full: no allocation.
class FdWriter {
 public:
  explicit FdWriter(int fd) : fd_(fd) {}
  ~FdWriter() { Flush(); }

  __attribute__((format(printf, 2, 3))) void Printf(const char* format, ...) {
    va_list args;
    va_start(args, format);
    char line[512];
    const int n = std::vsnprintf(line, sizeof(line), format, args);
    va_end(args);
    if (n <= 0) return;
    const size_t length = static_cast<size_t>(n) < sizeof(line) ? n : sizeof(line) - 1;
    if (used_ + length > sizeof(buffer_)) Flush();
    for (size_t i = 0; i < length; ++i) buffer_[used_++] = line[i];
  }
  bool ok() {
    Flush();
    return ok_;
  }

 private:
  void Flush() {
    size_t done = 0;
    while (done < used_) {
      const ssize_t n = write(fd_, buffer_ + done, used_ - done);
      if (n <= 0) {
        ok_ = false;
        break;
      }
      done += static_cast<size_t>(n);
    }
    used_ = 0;
  }

  const int fd_;
  char buffer_[4096];
  size_t used_ = 0;
  bool ok_ = true;
};

// Every figure of the report, read once, for either format.
struct Snapshot {
  AllocatorStats heap;
  ProcessStats process;
  internal::SmallBucketStats small[internal::ThreadCache::kBins];
  BucketCounts counts[internal::ThreadCache::kBins];
  internal::LargeBucketStats large[internal::Heap::kLargeBuckets];
  internal::HugeStats huge;
  size_t resident;
  size_t retained;  // address space kept for small regions, decommitted
};

void Take(Snapshot* s) {
  internal::Heap& heap = DefaultAllocator().heap();
  s->heap = heap.Stats();
  s->process = GetProcessStats();
  for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
    s->small[b] = heap.SmallStats(b);
    s->counts[b] = GetBucketCounts(b);
  }
  for (size_t b = 0; b < internal::Heap::kLargeBuckets; ++b) s->large[b] = heap.LargeStats(b);
  s->huge = heap.HugeBlockStats();
  s->resident = platform::ResidentBytes();
  s->retained = internal::RegionCarver::RetainedBytes();
}

void WriteText(FdWriter& out, const Snapshot& s) {
  out.Printf("rulloc: stats: pid %d\n", static_cast<int>(getpid()));
  out.Printf(
      "  totals: %zu KiB mapped, %zu KiB committed, %zu KiB resident, %zu KiB in use; "
      "%zu regions mapped, %zu unmapped in all; %zu KiB of address space kept for reuse\n",
      s.heap.bytes_mapped >> 10, s.heap.bytes_committed >> 10, s.resident >> 10,
      s.heap.bytes_in_use >> 10, s.heap.regions_mapped, s.heap.regions_unmapped, s.retained >> 10);
  out.Printf("  thread caches: %zu threads, %zu blocks cached, %zu refills, %zu flushes in all\n",
             s.process.threads_with_cache, s.process.blocks_in_caches, s.process.refills,
             s.process.flushes);
  out.Printf("  small  %8s %10s %10s %10s %8s %11s\n", "block", "in_use", "in_caches", "free",
             "regions", "mapped_kib");
  for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
    const internal::SmallBucketStats& bucket = s.small[b];
    if (bucket.regions == 0 && bucket.regions_mapped == 0) continue;
    const BucketCounts& counts = s.counts[b];
    out.Printf("         %8zu %10zu %10zu %10zu %8zu %11zu\n", bucket.block_size, counts.in_use(),
               counts.in_caches, bucket.blocks_free, bucket.regions, bucket.bytes_mapped >> 10);
  }
  out.Printf("  large  %8s %10s %10s %10s %8s %11s\n", "max", "in_use", "in_use_kib", "decommit_k",
             "regions", "mapped_kib");
  for (size_t b = 0; b < internal::Heap::kLargeBuckets; ++b) {
    const internal::LargeBucketStats& bucket = s.large[b];
    out.Printf("         %8zu %10zu %10zu %10zu %8zu %11zu\n", bucket.max_size,
               bucket.blocks_in_use, bucket.bytes_in_use >> 10, bucket.bytes_decommitted >> 10,
               bucket.regions, bucket.bytes_mapped >> 10);
  }
  out.Printf(
      "  huge: %zu blocks, %zu KiB in use, %zu KiB mapped, %zu KiB cached, %zu KiB kept "
      "slack; cache %zu hits, %zu misses (%zu grown)\n",
      s.huge.blocks_in_use, s.huge.bytes_in_use >> 10, s.huge.bytes_mapped >> 10,
      s.huge.bytes_cached >> 10, s.huge.bytes_kept_slack >> 10, s.huge.cache_hits,
      s.huge.cache_misses, s.huge.cache_grows);
}

void WriteJson(FdWriter& out, const Snapshot& s) {
  out.Printf(
      "{\"pid\":%d,\"totals\":{\"bytes_mapped\":%zu,\"bytes_committed\":%zu,"
      "\"bytes_resident\":%zu,\"bytes_in_use\":%zu,\"regions_mapped\":%zu,"
      "\"regions_unmapped\":%zu,\"bytes_retained\":%zu},",
      static_cast<int>(getpid()), s.heap.bytes_mapped, s.heap.bytes_committed, s.resident,
      s.heap.bytes_in_use, s.heap.regions_mapped, s.heap.regions_unmapped, s.retained);
  out.Printf(
      "\"thread_caches\":{\"threads\":%zu,\"blocks_cached\":%zu,\"refills\":%zu,"
      "\"flushes\":%zu},",
      s.process.threads_with_cache, s.process.blocks_in_caches, s.process.refills,
      s.process.flushes);
  out.Printf("\"small\":[");
  for (size_t b = 0; b < internal::ThreadCache::kBins; ++b) {
    const internal::SmallBucketStats& bucket = s.small[b];
    const BucketCounts& counts = s.counts[b];
    out.Printf(
        "%s{\"block_size\":%zu,\"blocks_in_use\":%zu,\"blocks_in_caches\":%zu,"
        "\"blocks_free\":%zu,\"regions\":%zu,\"bytes_mapped\":%zu,"
        "\"regions_mapped\":%zu,\"regions_unmapped\":%zu}",
        b == 0 ? "" : ",", bucket.block_size, counts.in_use(), counts.in_caches, bucket.blocks_free,
        bucket.regions, bucket.bytes_mapped, bucket.regions_mapped, bucket.regions_unmapped);
  }
  out.Printf("],\"large\":[");
  for (size_t b = 0; b < internal::Heap::kLargeBuckets; ++b) {
    const internal::LargeBucketStats& bucket = s.large[b];
    out.Printf(
        "%s{\"max_size\":%zu,\"blocks_in_use\":%zu,\"bytes_in_use\":%zu,"
        "\"bytes_decommitted\":%zu,\"regions\":%zu,\"bytes_mapped\":%zu,"
        "\"regions_mapped\":%zu,\"regions_unmapped\":%zu}",
        b == 0 ? "" : ",", bucket.max_size, bucket.blocks_in_use, bucket.bytes_in_use,
        bucket.bytes_decommitted, bucket.regions, bucket.bytes_mapped, bucket.regions_mapped,
        bucket.regions_unmapped);
  }
  out.Printf(
      "],\"huge\":{\"blocks_in_use\":%zu,\"bytes_in_use\":%zu,\"bytes_mapped\":%zu,"
      "\"bytes_cached\":%zu,\"bytes_kept_slack\":%zu,\"cache_hits\":%zu,"
      "\"cache_misses\":%zu,\"cache_grows\":%zu}}\n",
      s.huge.blocks_in_use, s.huge.bytes_in_use, s.huge.bytes_mapped, s.huge.bytes_cached,
      s.huge.bytes_kept_slack, s.huge.cache_hits, s.huge.cache_misses, s.huge.cache_grows);
}

}  // namespace

bool WriteStatsReport(int fd, StatsReportFormat format) {
  Snapshot snapshot;
  Take(&snapshot);
  FdWriter out(fd);
  if (format == StatsReportFormat::kJson) {
    WriteJson(out, snapshot);
  } else {
    WriteText(out, snapshot);
  }
  return out.ok();
}

}  // namespace rulloc
