#include "shim/options.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <strings.h>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"

namespace rulloc::shim {

bool ParseFlag(const char* value) {
  if (value == nullptr) return false;
  for (const char* yes : {"1", "true", "yes", "on"}) {
    if (strcasecmp(value, yes) == 0) return true;
  }
  return false;
}

Options ReadOptions() {
  Options options;
  options.verbose = ParseFlag(getenv("RULLOC_VERBOSE"));
  options.stats_file = getenv("RULLOC_STATS_FILE");
  if (options.stats_file != nullptr && options.stats_file[0] == '\0') options.stats_file = nullptr;
  options.stats_at_exit =
      options.verbose || options.stats_file != nullptr || ParseFlag(getenv("RULLOC_STATS"));
  return options;
}

void PrintStatsTo(const char* path) {
  if (path == nullptr) return PrintStats(STDERR_FILENO);
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  PrintStats(fd);
  close(fd);
}

void PrintStats(int fd) {
  const AllocatorStats heap = DefaultAllocator().stats();
  const ProcessStats process = GetProcessStats();
  char line[512];
  const int n = std::snprintf(
      line, sizeof(line),
      "rulloc: stats: pid %d: %zu KiB mapped; %zu regions mapped, %zu unmapped in all; "
      "in use: %zu small, %zu large, %zu huge blocks, %zu KiB; thread caches: %zu threads, "
      "%zu blocks, %zu refills, %zu flushes\n",
      static_cast<int>(getpid()), heap.bytes_mapped >> 10, heap.regions_mapped,
      heap.regions_unmapped, process.blocks_in_use, heap.large_blocks_in_use,
      heap.huge_blocks_in_use, heap.bytes_in_use >> 10, process.threads_with_cache,
      process.blocks_in_caches, process.refills, process.flushes);
  if (n > 0) {
    const size_t length = static_cast<size_t>(n) < sizeof(line) ? n : sizeof(line) - 1;
    ssize_t ignored = write(fd, line, length);
    (void)ignored;
  }
}

}  // namespace rulloc::shim
