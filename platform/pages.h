// Pages from the operating system: the only layer that talks to the kernel.
//
//   reserve ──► [ address range, no memory behind it ]
//   commit  ──► [ readable/writable, zero-filled on first touch ]
//   decommit──► [ physical pages returned, range stays reserved ]
//   release ──► [ range given back ]
//
// Every size and address here is a multiple of PageSize(). Failure is a
// null/false return, never an abort or an exception.
#ifndef RULLOC_PLATFORM_PAGES_H_
#define RULLOC_PLATFORM_PAGES_H_

#include <cstddef>
#include <cstdint>

#ifndef _WIN32
// A seam for tests that check what the allocator holds while pages go back:
// a program that defines this function has it called on entry to every
// Decommit, and for every range of a DecommitRanges. A weak function, not a
// settable pointer: nothing a write to memory could redirect, and a null
// test when no program defines it.
extern "C" void rulloc_decommit_observer(void* ptr, size_t size) __attribute__((weak));
#endif

namespace rulloc::platform {

// The operating system's page size (4096 on x86-64 Linux).
size_t PageSize();

// How a reservation counts against the OS's commit limit. kOnTouch
// (Linux's MAP_NORESERVE) charges nothing up front: for regions that a heap
// fills a page at a time. kUpFront lets the OS refuse at once what it could
// never back (a huge block, as glibc's mmap'd chunks), under its overcommit
// policy, rather than at a page fault. (Windows always charges a commit.)
enum class Charge { kOnTouch, kUpFront };

// Reserves `size` bytes of address space aligned to `alignment` (a power of
// two, at least PageSize()). With `commit` the range is also readable and
// writable. Returns nullptr on failure.
void* Reserve(size_t size, size_t alignment, bool commit, Charge charge = Charge::kOnTouch);

// Reserves and commits `size` bytes at exactly `at` (page aligned). On
// failure, nullptr, with `*taken` set when something is mapped there (as
// opposed to the OS refusing: no memory, a limit, no way to ask).
void* ReserveAt(void* at, size_t size, Charge charge, bool* taken);

// Makes [ptr, ptr+size) readable and writable. Returns false on failure.
bool Commit(void* ptr, size_t size);

// Returns the physical memory of [ptr, ptr+size) to the OS. The range stays
// reserved; on POSIX it stays accessible and reads back as zeros.
bool Decommit(void* ptr, size_t size);

// Makes the pages of [ptr, ptr+size), committed and not yet touched, resident
// and writable now, in one system call instead of a page fault each (Linux
// 5.14 and later: madvise(MADV_POPULATE_WRITE)); on the 2-core benchmark
// guest, 512 MiB took 1.1 s so, written afterwards, against 1.9 s of page
// faults (docs/design.md, "Small regions populated"). False where the OS
// has no such call or a filter refuses it (it then stays off), after
// DisablePopulate, or when the OS refuses the range (no memory, a guard
// page): those pages then fault in on touch as before.
bool Populate(void* ptr, size_t size);
// Makes Populate do nothing from now on.
void DisablePopulate();
// Whether Populate asks the OS (the first call asks the kernel).
bool PopulateInUse();

// A range of pages, for the calls that take several.
struct PageRange {
  void* base;
  size_t size;
};

// Decommits each of `count` ranges as Decommit does, in as few system
// calls as the OS allows; `decommitted[i]` tells whether range i was. On
// Linux 6.15 and later, one process_madvise(2) per group of ranges (at
// most 8 MiB), which costs one system call instead of one per range, and
// since 6.16 one TLB flush on the other CPUs (docs/design.md, "Giving
// pages back"); elsewhere, where the kernel refuses it, or after
// DisableBatchedDecommit, one call per range. The observer above sees
// every range of a group before any of the group's pages go.
void DecommitRanges(const PageRange* ranges, size_t count, bool* decommitted);
// Makes DecommitRanges decommit one range per call from now on: for a
// program whose system-call filter kills it on calls it does not expect.
void DisableBatchedDecommit();
// Whether DecommitRanges groups ranges (the first call asks the kernel).
bool BatchedDecommitInUse();

// Makes [ptr, ptr+size) inaccessible (a guard: any access faults). The
// range must be committed pages of one reservation. Returns false on failure.
bool Guard(void* ptr, size_t size);

// Gives [ptr, ptr+size) back to the OS. The range must have come from
// Reserve (on POSIX any page-aligned sub-range of it is allowed; on Windows
// only the whole reservation).
bool Release(void* ptr, size_t size);

// Whether decommitted pages read back as zeros (POSIX's MADV_DONTNEED on
// private memory; Windows' MEM_RESET keeps them as they were): calloc and
// the page map rely on it only where it holds.
#ifdef _WIN32
inline constexpr bool kDecommitReadsZero = false;
#else
inline constexpr bool kDecommitReadsZero = true;
#endif

// Whether MovePages can succeed on this system (only Linux has mremap).
#ifdef __linux__
inline constexpr bool kCanMovePages = true;
#else
inline constexpr bool kCanMovePages = false;
#endif

// Bytes of pages one Decommit or Release system call drops at most. On a
// guest whose hypervisor shadows its page tables, one call that drops more
// than about 5 MiB of small pages, or a whole 2 MiB huge page, makes every
// page the process touches afterwards fault into the hypervisor once
// (docs/design.md, "Giving pages back"). Larger ranges go in pieces (a
// 1 MiB piece of a huge page splits it first).
inline constexpr size_t kMaxPagesDroppedPerCall = size_t{1} << 20;

// Moves the pages of the reservation [from, from+from_size) to `to`, a
// reservation of `to_size` bytes that they replace; the rest of `to` reads
// as zeros and `from` is released. The kernel moves page-table entries:
// nothing is copied. On failure nothing moved; kFailed says that `to` is
// still the caller's reservation, kFailedTargetLost that it may not be:
// the kernel may unmap the target before a late failure, and another
// thread may have mapped the range since, so the caller must leave that
// range alone. A source the kernel refuses outright is found before the
// target is touched (kFailed), and so is a refusal that leaves the target
// as it was (a mark written in it is still there: kFailed).
enum class MoveResult { kMoved, kFailed, kFailedTargetLost };
MoveResult MovePages(void* from, size_t from_size, void* to, size_t to_size);

// Resizes the reservation [from, from+from_size) to `to_size` bytes in
// place (growth reads as zeros). False, with nothing changed, if it cannot
// (the next pages are taken, or the OS cannot resize mappings).
bool ResizePagesInPlace(void* from, size_t from_size, size_t to_size);

// Asks the OS to back [ptr, ptr+size) with huge pages (2 MiB on x86-64)
// where it can: far fewer page faults for large blocks that are written
// through. Advisory: does nothing where the OS has no such option.
void AdviseHugePages(void* ptr, size_t size);
inline constexpr size_t kHugePageSize = size_t{2} << 20;

// Resident set size of the calling process in bytes (0 if unknown).
size_t ResidentBytes();
// Address space the calling process has mapped, in bytes (0 if unknown).
size_t AddressSpaceBytes();

// A cheap monotonic clock in milliseconds (coarse: a few ms of resolution).
uint64_t CoarseMonotonicMillis();

}  // namespace rulloc::platform

#endif  // RULLOC_PLATFORM_PAGES_H_
