// The malloc family, replaced by Rulloc: the only file (with new_delete.cc)
// that defines these names. Everything forwards to the rulloc_* C API,
// whose small sizes take the thread-cache fast path.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "concurrency/thread_cache.h"
#include "core/allocator.h"
#include "core/c_api.h"
#include "core/runtime_options.h"
#include "platform/pages.h"
#include "shim/background_purge.h"
#include "shim/options.h"
#include "shim/start.h"

#define RULLOC_EXPORT extern "C" __attribute__((visibility("default")))

using rulloc::platform::PageSize;

// The hottest two inline the fast paths (no call into the C API).
RULLOC_EXPORT void* malloc(size_t size) { return rulloc::internal::CachedMalloc(size); }
RULLOC_EXPORT void free(void* ptr) { rulloc::internal::CachedFreeUnlessNull(ptr); }
RULLOC_EXPORT void* calloc(size_t count, size_t size) { return rulloc_calloc(count, size); }
RULLOC_EXPORT void* realloc(void* ptr, size_t size) { return rulloc_realloc(ptr, size); }

RULLOC_EXPORT void* reallocarray(void* ptr, size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return rulloc_realloc(ptr, bytes);
}

RULLOC_EXPORT void* memalign(size_t alignment, size_t size) {
  return rulloc_memalign(alignment, size);
}
RULLOC_EXPORT void* aligned_alloc(size_t alignment, size_t size) {
  return rulloc_aligned_alloc(alignment, size);
}
RULLOC_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) {
  return rulloc_posix_memalign(out, alignment, size);
}
RULLOC_EXPORT void* valloc(size_t size) { return rulloc_aligned_alloc(PageSize(), size); }
RULLOC_EXPORT void* pvalloc(size_t size) {
  const size_t page = PageSize();
  if (size > SIZE_MAX - page) {
    errno = ENOMEM;
    return nullptr;
  }
  return rulloc_aligned_alloc(page, size == 0 ? page : (size + page - 1) & ~(page - 1));
}
RULLOC_EXPORT size_t malloc_usable_size(void* ptr) { return rulloc_usable_size(ptr); }

// glibc's internal names, which some programs and libraries call directly.
RULLOC_EXPORT void* __libc_malloc(size_t size) { return rulloc_malloc(size); }
RULLOC_EXPORT void __libc_free(void* ptr) { rulloc_free(ptr); }
RULLOC_EXPORT void* __libc_calloc(size_t count, size_t size) { return rulloc_calloc(count, size); }
RULLOC_EXPORT void* __libc_realloc(void* ptr, size_t size) { return rulloc_realloc(ptr, size); }
RULLOC_EXPORT void* __libc_memalign(size_t alignment, size_t size) {
  return rulloc_memalign(alignment, size);
}
RULLOC_EXPORT void* __libc_valloc(size_t size) { return valloc(size); }
RULLOC_EXPORT void* __libc_pvalloc(size_t size) { return pvalloc(size); }
RULLOC_EXPORT int __posix_memalign(void** out, size_t alignment, size_t size) {
  return rulloc_posix_memalign(out, alignment, size);
}
// glibc still exports cfree (compat, GLIBC_2.2.5) for programs linked before 2.26.
RULLOC_EXPORT void cfree(void* ptr) { rulloc_free(ptr); }

// Returns free memory to the OS. Returns 1 if any was released.
RULLOC_EXPORT int malloc_trim(size_t /*pad*/) { return rulloc_trim() > 0 ? 1 : 0; }

// Rulloc has no tunables behind mallopt: every request is declined.
RULLOC_EXPORT int mallopt(int /*param*/, int /*value*/) { return 0; }

RULLOC_EXPORT struct mallinfo2 mallinfo2() {
  // As glibc: huge blocks (mapped on their own) in hblks and hblkhd, the
  // rest (cached huge mappings too) in arena, uordblks and fordblks.
  const rulloc::AllocatorStats heap = rulloc::DefaultAllocator().stats();
  const rulloc::internal::HugeStats huge = rulloc::DefaultAllocator().heap().HugeBlockStats();
  const size_t huge_mapped = huge.bytes_mapped - huge.bytes_cached;
  struct mallinfo2 info = {};
  info.arena = heap.bytes_mapped - std::min(huge_mapped, heap.bytes_mapped);
  info.ordblks = heap.small_blocks_free;
  info.hblks = heap.huge_blocks_in_use;
  info.hblkhd = huge_mapped;
  info.uordblks = heap.bytes_in_use - std::min(huge.bytes_in_use, heap.bytes_in_use);
  info.fordblks = info.arena > info.uordblks ? info.arena - info.uordblks : 0;
  info.keepcost = 0;
  return info;
}

RULLOC_EXPORT struct mallinfo mallinfo() {
  const struct mallinfo2 wide = mallinfo2();
  struct mallinfo info = {};
  info.arena = static_cast<int>(wide.arena);
  info.ordblks = static_cast<int>(wide.ordblks);
  info.hblks = static_cast<int>(wide.hblks);
  info.hblkhd = static_cast<int>(wide.hblkhd);
  info.uordblks = static_cast<int>(wide.uordblks);
  info.fordblks = static_cast<int>(wide.fordblks);
  return info;
}

RULLOC_EXPORT struct mallinfo __libc_mallinfo() { return mallinfo(); }
RULLOC_EXPORT int __libc_mallopt(int param, int value) { return mallopt(param, value); }

RULLOC_EXPORT void malloc_stats() { rulloc_stats_write(STDERR_FILENO, /*json=*/0); }

// glibc's XML report, with its top-level totals only (Rulloc has no
// arenas of glibc's kind): free bytes in regions as "rest", huge blocks as
// "mmap", committed and mapped bytes as the system and address-space sizes.
RULLOC_EXPORT int malloc_info(int options, FILE* out) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  const rulloc::AllocatorStats s = rulloc::DefaultAllocator().stats();
  const size_t huge_bytes = rulloc::DefaultAllocator().heap().HugeBlockStats().bytes_in_use;
  const size_t free_bytes = s.bytes_mapped > s.bytes_in_use ? s.bytes_mapped - s.bytes_in_use : 0;
  std::fprintf(out,
               "<malloc version=\"1\">\n"
               "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
               "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
               "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
               "<system type=\"current\" size=\"%zu\"/>\n"
               "<system type=\"max\" size=\"%zu\"/>\n"
               "<aspace type=\"total\" size=\"%zu\"/>\n"
               "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
               "</malloc>\n",
               s.small_blocks_free, free_bytes, s.huge_blocks_in_use, huge_bytes, s.bytes_committed,
               s.bytes_mapped, s.bytes_mapped, s.bytes_mapped);
  return 0;
}

namespace {

rulloc::shim::Options options;
// options.stats_file, made absolute at start-up: a program that changes
// directory still gets its statistics where it started.
char stats_path[4096];

void ResolveStatsPath() {
  const char* file = options.stats_file;
  if (file[0] == '\0' || file[0] == '/' || getcwd(stats_path, sizeof(stats_path)) == nullptr) {
    std::snprintf(stats_path, sizeof(stats_path), "%s", file);
    return;
  }
  const size_t used = std::strlen(stats_path);
  const int n = std::snprintf(stats_path + used, sizeof(stats_path) - used, "/%s", file);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(stats_path) - used) {
    std::snprintf(stats_path, sizeof(stats_path), "%s", file);  // too long: as given
  }
}

int OpenStatsFile() { return open(stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644); }

void WriteLine(const char* line, int length) {
  if (length <= 0) return;
  ssize_t ignored = write(STDERR_FILENO, line, static_cast<size_t>(length));
  (void)ignored;
}

}  // namespace

namespace rulloc::shim {

void Start(char* const* environment) {
  static bool started = false;  // start-up runs on one thread
  if (started) return;
  started = true;
  options = ReadOptions(environment);
  runtime_options.huge_pages = options.huge_pages;
  runtime_options.hardened = options.hardened;
  if (!options.batched_decommit) platform::DisableBatchedDecommit();
  if (!options.populate_pages) platform::DisablePopulate();
  ResolveStatsPath();
  if (stats_path[0] != '\0' && options.stats != StatsFormat::kNone) {
    // Reported now, while stderr is still the one the program started with
    // (the option is for programs that close it); at exit, silently.
    const int fd = OpenStatsFile();
    if (fd >= 0) {
      close(fd);
    } else {
      char line[4200];
      WriteLine(line, std::snprintf(line, sizeof(line),
                                    "rulloc: cannot open the stats file %s (errno %d)\n",
                                    stats_path, errno));
    }
  }
  RegisterForkHandlers();  // the first registered: see start.h
  if (options.background_purge) StartBackgroundPurge();
  if (options.verbose) {
    char line[96];
    WriteLine(line, std::snprintf(line, sizeof(line), "rulloc: serving malloc in pid %d\n",
                                  static_cast<int>(getpid())));
  }
}

}  // namespace rulloc::shim

namespace {

// librulloc.so is linked with -z initfirst: the loader runs this before the
// constructors of every other library, libc's included, so `environ` is not
// set yet; glibc passes the environment to constructors. (A program linked
// with the shim has already started it from .preinit_array.) The allocator
// itself needs no initialisation: it is constant-initialised and serves any
// call that comes earlier, from the loader or another library.
__attribute__((constructor(101))) void InstallShim(int /*argc*/, char** /*argv*/, char** envp) {
#ifdef __GLIBC__
  rulloc::shim::Start(envp);
#else
  rulloc::shim::Start(environ);
#endif
}

__attribute__((destructor(101))) void FinishShim() {
  using rulloc::shim::StatsFormat;
  if (options.stats == StatsFormat::kNone) return;
  int fd = STDERR_FILENO;
  if (stats_path[0] != '\0') {
    fd = OpenStatsFile();
    if (fd < 0) return;  // reported at start-up, unless it failed only now
  }
  rulloc_stats_write(fd, options.stats == StatsFormat::kJson);
  if (fd != STDERR_FILENO) close(fd);
}

}  // namespace
