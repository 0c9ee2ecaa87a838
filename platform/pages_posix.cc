// POSIX pages: mmap, mprotect, madvise, munmap, mremap.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <sys/uio.h>
#endif
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "platform/pages.h"

namespace rulloc::platform {
namespace {

// Calls `op(piece, length)` on [ptr, ptr+size) in pieces of at most
// kMaxPagesDroppedPerCall bytes; true if every call succeeded. Off the
// guests that need it (pages.h), a piece of small pages costs one more
// system call per MiB; one of a huge page, splitting it (docs/design.md).
template <typename Op>
bool InPieces(void* ptr, size_t size, Op op) {
  char* at = static_cast<char*>(ptr);
  bool ok = true;
  while (size != 0) {
    const size_t length = size < kMaxPagesDroppedPerCall ? size : kMaxPagesDroppedPerCall;
    ok = op(at, length) && ok;
    at += length;
    size -= length;
  }
  return ok;
}

void* MapRaw(size_t size, bool commit, Charge charge) {
  int prot = commit ? (PROT_READ | PROT_WRITE) : PROT_NONE;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | (charge == Charge::kOnTouch ? MAP_NORESERVE : 0);
  void* p = mmap(nullptr, size, prot, flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

size_t PageSize() {
  // Constant-initialised, so no guard (and no C++ runtime call) on the way.
  static constinit std::atomic<size_t> page{0};
  size_t size = page.load(std::memory_order_relaxed);
  if (__builtin_expect(size == 0, 0)) {
    size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    page.store(size, std::memory_order_relaxed);
  }
  return size;
}

void* Reserve(size_t size, size_t alignment, bool commit, Charge charge) {
  const size_t page = PageSize();
  if (size == 0 || size % page != 0 || alignment < page || (alignment & (alignment - 1)) != 0) {
    return nullptr;
  }
  const int saved_errno = errno;  // mmap failures must not leak errno changes.
  if (alignment == page) {
    void* p = MapRaw(size, commit, charge);
    errno = saved_errno;
    return p;
  }
  const size_t padded = size + alignment - page;
  if (padded < size) return nullptr;
  // The kernel places a new mapping right below the previous one, so after
  // an aligned reservation of a multiple of the alignment the next one of
  // that size is aligned too: try the exact size first (one mmap), and
  // over-reserve only if it is not.
  if (size % alignment == 0) {
    if (void* exact = MapRaw(size, commit, charge)) {
      if ((reinterpret_cast<uintptr_t>(exact) & (alignment - 1)) == 0) {
        errno = saved_errno;
        return exact;
      }
      munmap(exact, size);
    }
  }
  // Over-reserve, then trim both ends so that the range is aligned. Charged
  // up front, only the range kept is: the padding is mapped inaccessible
  // (which the OS does not charge) and the range made writable once trimmed.
  const bool charge_after_trim = commit && charge == Charge::kUpFront;
  char* raw = static_cast<char*>(MapRaw(padded, commit && !charge_after_trim, charge));
  if (raw == nullptr) {
    errno = saved_errno;
    return nullptr;
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + alignment - 1) & ~(uintptr_t{alignment} - 1);
  const size_t head = aligned - start;
  const size_t tail = padded - head - size;
  if (head != 0) munmap(raw, head);
  if (tail != 0) munmap(reinterpret_cast<char*>(aligned) + size, tail);
  if (charge_after_trim &&
      mprotect(reinterpret_cast<void*>(aligned), size, PROT_READ | PROT_WRITE) != 0) {
    munmap(reinterpret_cast<void*>(aligned), size);
    errno = saved_errno;
    return nullptr;
  }
  errno = saved_errno;
  return reinterpret_cast<void*>(aligned);
}

void* ReserveAt(void* at, size_t size, Charge charge, bool* taken) {
  *taken = false;
#ifdef MAP_FIXED_NOREPLACE
  const int saved_errno = errno;
  const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE |
                    (charge == Charge::kOnTouch ? MAP_NORESERVE : 0);
  void* p = mmap(at, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) {
    *taken = errno == EEXIST;
  } else if (p != at) {
    munmap(p, size);  // a kernel older than the flag (4.17) took `at` as a hint
    p = MAP_FAILED;
  }
  errno = saved_errno;
  return p == MAP_FAILED ? nullptr : p;
#else
  (void)at;
  (void)size;
  (void)charge;
  return nullptr;
#endif
}

bool Commit(void* ptr, size_t size) { return mprotect(ptr, size, PROT_READ | PROT_WRITE) == 0; }

bool Guard(void* ptr, size_t size) {
  const int saved_errno = errno;
  const bool ok = mprotect(ptr, size, PROT_NONE) == 0;
  errno = saved_errno;
  return ok;
}

namespace {

bool DropPages(void* ptr, size_t size) {
  return InPieces(ptr, size, [](char* piece, size_t length) {
    return madvise(piece, length, MADV_DONTNEED) == 0;
  });
}

#if defined(__linux__) && defined(SYS_process_madvise)
// process_madvise's name for the calling thread (Linux 6.15), whose memory
// is the process's: no file descriptor to open, to keep, or to take across
// fork(), and, unlike the name for the process (its first thread), still
// valid once the main thread has exited.
constexpr int kPidfdSelfThread = -10000;
// Pieces per call (well under IOV_MAX, 1024: 512 B of stack), and bytes:
// the kernel holds the memory map's lock for reading across the vector.
constexpr size_t kPiecesPerCall = 32;
constexpr size_t kBytesPerCall = size_t{8} << 20;

enum BatchedState : int { kUnknown, kOn, kOff };
std::atomic<int> batched_state{kUnknown};

// Whether process_madvise can drop the calling process's pages, asked once
// with an empty vector: 0 where it can; EBADF before 6.15 (no such name),
// EINVAL before 6.13 (not this advice), ENOSYS before 5.10, EPERM from a
// filter that refuses it.
bool BatchedDecommitOn() {
  int state = batched_state.load(std::memory_order_relaxed);
  if (state == kUnknown) {
    const int saved_errno = errno;
    iovec none = {nullptr, 0};
    const bool on = syscall(SYS_process_madvise, kPidfdSelfThread, &none, 0, MADV_DONTNEED, 0) == 0;
    errno = saved_errno;
    int unknown = kUnknown;  // DisableBatchedDecommit meanwhile wins
    batched_state.compare_exchange_strong(unknown, on ? kOn : kOff, std::memory_order_relaxed);
    state = batched_state.load(std::memory_order_relaxed);
  }
  return state == kOn;
}

// Decommits the first ranges that fit one process_madvise call, each in
// pieces as DropPages splits it; returns how many (0: none, batching is
// off or the first range alone is more than a call takes).
size_t DecommitBatch(const PageRange* ranges, size_t count, bool* decommitted) {
  if (!BatchedDecommitOn()) return 0;
  iovec pieces[kPiecesPerCall];
  size_t used = 0, taken = 0, bytes = 0;
  for (; taken < count; ++taken) {
    const size_t size = ranges[taken].size;
    const size_t need =
        size / kMaxPagesDroppedPerCall + (size % kMaxPagesDroppedPerCall != 0 ? 1 : 0);
    if (need > kPiecesPerCall - used || size > kBytesPerCall - bytes) break;
    InPieces(ranges[taken].base, size, [&](char* piece, size_t length) {
      pieces[used++] = {piece, length};
      return true;
    });
    bytes += size;
  }
  if (taken == 0) return 0;
  for (size_t i = 0; i < taken; ++i) {
    if (rulloc_decommit_observer != nullptr) {
      rulloc_decommit_observer(ranges[i].base, ranges[i].size);
    }
  }
  long done = 0;
  if (used != 0) {
    done = syscall(SYS_process_madvise, kPidfdSelfThread, pieces, used, MADV_DONTNEED, 0);
    // Refused as a call since the probe (a filter installed later): off.
    if (done < 0 && (errno == EBADF || errno == ENOSYS || errno == EPERM)) {
      batched_state.store(kOff, std::memory_order_relaxed);
    }
  }
  // The kernel goes through the vector in order and stops at a range it
  // refuses (locked pages: EINVAL): the ranges its count covers are done,
  // the rest go one call each, which tells which failed.
  size_t covered = done > 0 ? static_cast<size_t>(done) : 0;
  size_t i = 0;
  for (; i < taken && ranges[i].size <= covered; ++i) {
    covered -= ranges[i].size;
    decommitted[i] = true;
  }
  for (; i < taken; ++i) decommitted[i] = DropPages(ranges[i].base, ranges[i].size);
  return taken;
}
#else
size_t DecommitBatch(const PageRange*, size_t, bool*) { return 0; }
#endif

}  // namespace

bool Decommit(void* ptr, size_t size) {
  const int saved_errno = errno;
  if (rulloc_decommit_observer != nullptr) rulloc_decommit_observer(ptr, size);
  const bool ok = DropPages(ptr, size);
  errno = saved_errno;
  return ok;
}

void DecommitRanges(const PageRange* ranges, size_t count, bool* decommitted) {
  const int saved_errno = errno;
  for (size_t i = 0; i < count;) {
    const size_t taken = DecommitBatch(ranges + i, count - i, decommitted + i);
    if (taken == 0) decommitted[i] = Decommit(ranges[i].base, ranges[i].size);
    i += taken == 0 ? 1 : taken;
  }
  errno = saved_errno;
}

#ifdef __linux__
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older C libraries lack the name
#endif
namespace {
enum PopulateState : int { kPopulateUnknown, kPopulateOn, kPopulateOff };
std::atomic<int> populate_state{kPopulateUnknown};

// Whether the kernel knows the advice, asked once with an empty range at
// `page`: 0 from 5.14 on, EINVAL before (which later on only means a range
// it cannot populate, such as one with a guard page in it).
bool PopulateOn(void* page) {
  int state = populate_state.load(std::memory_order_relaxed);
  if (state == kPopulateUnknown) {
    const int saved_errno = errno;
    const bool on = madvise(page, 0, MADV_POPULATE_WRITE) == 0;
    errno = saved_errno;
    int unknown = kPopulateUnknown;  // DisablePopulate meanwhile wins
    populate_state.compare_exchange_strong(unknown, on ? kPopulateOn : kPopulateOff,
                                           std::memory_order_relaxed);
    state = populate_state.load(std::memory_order_relaxed);
  }
  return state == kPopulateOn;
}
}  // namespace

bool Populate(void* ptr, size_t size) {
  if (size == 0) return false;
  const int saved_errno = errno;
  bool ok = false;
  if (PopulateOn(ptr)) {
    ok = madvise(ptr, size, MADV_POPULATE_WRITE) == 0;
    // Refused as a call (a system-call filter): off, as DecommitRanges does.
    if (!ok && (errno == EPERM || errno == ENOSYS)) {
      populate_state.store(kPopulateOff, std::memory_order_relaxed);
    }
  }
  errno = saved_errno;
  return ok;
}
void DisablePopulate() { populate_state.store(kPopulateOff, std::memory_order_relaxed); }
// (An empty range needs an aligned address, not a mapped one.)
bool PopulateInUse() { return PopulateOn(reinterpret_cast<void*>(PageSize())); }
#else
bool Populate(void*, size_t) { return false; }
void DisablePopulate() {}
bool PopulateInUse() { return false; }
#endif

void DisableBatchedDecommit() {
#if defined(__linux__) && defined(SYS_process_madvise)
  batched_state.store(kOff, std::memory_order_relaxed);
#endif
}

bool BatchedDecommitInUse() {
#if defined(__linux__) && defined(SYS_process_madvise)
  return BatchedDecommitOn();
#else
  return false;
#endif
}

bool Release(void* ptr, size_t size) {
  const int saved_errno = errno;
  char* const end = static_cast<char*>(ptr) + size;
  bool ok = true, rest_gone = false;
  InPieces(ptr, size, [&](char* piece, size_t length) {
    // A piece inside a kernel mapping (VMA) splits it, which the map-count
    // limit can refuse where one call that trims its end would not: then
    // the rest goes in one call.
    if (!rest_gone && munmap(piece, length) != 0) {
      ok = munmap(piece, static_cast<size_t>(end - piece)) == 0;
      rest_gone = true;
    }
    return true;
  });
  errno = saved_errno;
  return ok;
}

namespace {
// Whether the page at `at` is mapped (so that reading it cannot fault),
// asked with mmap alone: a filter of system calls in a sandbox lets it by.
[[maybe_unused]] bool FirstPageMapped(void* at, size_t page) {
#ifdef MAP_FIXED_NOREPLACE
  void* probe = mmap(at, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (probe == MAP_FAILED) return errno == EEXIST;
  munmap(probe, page);  // it was free (or a kernel took the address as a hint)
#endif
  return false;
}
}  // namespace

MoveResult MovePages(void* from, size_t from_size, void* to, size_t to_size) {
#if defined(MREMAP_FIXED) && defined(MAP_FIXED_NOREPLACE)
  const int saved_errno = errno;
  // A source the kernel will not move (a mapping the program split with
  // mprotect or madvise, say) is refused before the target is touched on
  // kernels that check the source first (6.18), which would leave no way
  // to tell our reservation from another thread's mapping there. Growing
  // the source in place by a page runs the same checks first: any answer
  // but "no room" (ENOMEM) means the move would be refused.
  const size_t page = PageSize();
  if (mremap(from, from_size, from_size + page, 0) == MAP_FAILED) {
    if (errno != ENOMEM) {
      errno = saved_errno;
      return MoveResult::kFailed;  // the target is untouched: still ours
    }
  } else {
    mremap(from, from_size + page, from_size, 0);  // back (shrinking cannot fail)
  }
  // A mark in the target's first page tells our reservation from a mapping
  // of another thread's there if the move fails: a refusal the kernel
  // makes before it touches the target (the address-space limit, the map
  // count: ENOMEM, as "no room") leaves the reservation, mark and all.
  auto* mark = static_cast<volatile uint64_t*>(to);
  const uint64_t cookie = 0x52756c6c6f634d76ull ^ reinterpret_cast<uintptr_t>(to) ^
                          reinterpret_cast<uintptr_t>(from) ^ to_size;
  *mark = cookie;
  MoveResult result = MoveResult::kMoved;
  if (mremap(from, from_size, to_size, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED) {
    // Take the target back if it is free; if something is mapped there, it
    // is ours if it still has the mark, else another thread's: left alone.
    void* again = mmap(to, to_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (again == to) {
      result = MoveResult::kFailed;
    } else if (again == MAP_FAILED && FirstPageMapped(to, page) && *mark == cookie) {
      result = MoveResult::kFailed;  // never touched: still our reservation
    } else {
      if (again != MAP_FAILED) munmap(again, to_size);  // a kernel that took it as a hint
      result = MoveResult::kFailedTargetLost;
    }
  }
  errno = saved_errno;
  return result;
#else
  (void)from;
  (void)from_size;
  (void)to;
  (void)to_size;
  return MoveResult::kFailed;
#endif
}

bool ResizePagesInPlace(void* from, size_t from_size, size_t to_size) {
#ifdef __linux__
  const int saved_errno = errno;
  const bool resized = mremap(from, from_size, to_size, 0) != MAP_FAILED;
  errno = saved_errno;
  return resized;
#else
  (void)from;
  (void)from_size;
  (void)to_size;
  return false;
#endif
}

void AdviseHugePages(void* ptr, size_t size) {
#ifdef MADV_HUGEPAGE
  const int saved_errno = errno;
  madvise(ptr, size, MADV_HUGEPAGE);
  errno = saved_errno;
#else
  (void)ptr;
  (void)size;
#endif
}

namespace {

// Field `index` of /proc/self/statm ("size resident shared ...", in pages),
// in bytes; 0 if unknown. Read with raw calls: this may run inside the
// allocator, where stdio could allocate.
size_t StatmBytes(int index) {
  const int saved_errno = errno;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved_errno;
    return 0;
  }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  errno = saved_errno;
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* s = buf;
  for (int field = 0; field < index; ++field) {
    while (*s != ' ' && *s != '\0') ++s;
    while (*s == ' ') ++s;
  }
  size_t pages = 0;
  for (; *s >= '0' && *s <= '9'; ++s) pages = pages * 10 + static_cast<size_t>(*s - '0');
  return pages * PageSize();
}

}  // namespace

size_t ResidentBytes() { return StatmBytes(1); }
size_t AddressSpaceBytes() { return StatmBytes(0); }

uint64_t CoarseMonotonicMillis() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000 + static_cast<uint64_t>(now.tv_nsec) / 1000000;
}

}  // namespace rulloc::platform
