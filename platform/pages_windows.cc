// Windows pages: VirtualAlloc / VirtualFree.
#include <psapi.h>
#include <windows.h>

#include <cstdint>

#include "platform/pages.h"

namespace rulloc::platform {

size_t PageSize() {
  SYSTEM_INFO info;
  GetSystemInfo(&info);
  return info.dwPageSize;
}

void* Reserve(size_t size, size_t alignment, bool commit, Charge /*charge*/) {
  const size_t page = PageSize();
  if (size == 0 || size % page != 0 || alignment < page || (alignment & (alignment - 1)) != 0) {
    return nullptr;
  }
  const DWORD type = MEM_RESERVE | (commit ? MEM_COMMIT : 0);
  const DWORD prot = commit ? PAGE_READWRITE : PAGE_NOACCESS;
  // Reservations are 64 KiB aligned; beyond that, find an aligned hole by
  // over-reserving, releasing, and reserving again at the aligned address.
  for (int attempt = 0; attempt < 16; ++attempt) {
    if (alignment <= 65536) return VirtualAlloc(nullptr, size, type, prot);
    const size_t padded = size + alignment;
    if (padded < size) return nullptr;
    void* probe = VirtualAlloc(nullptr, padded, MEM_RESERVE, PAGE_NOACCESS);
    if (probe == nullptr) return nullptr;
    const uintptr_t aligned =
        (reinterpret_cast<uintptr_t>(probe) + alignment - 1) & ~(uintptr_t{alignment} - 1);
    VirtualFree(probe, 0, MEM_RELEASE);
    void* p = VirtualAlloc(reinterpret_cast<void*>(aligned), size, type, prot);
    if (p != nullptr) return p;
  }
  return nullptr;
}

bool Commit(void* ptr, size_t size) {
  return VirtualAlloc(ptr, size, MEM_COMMIT, PAGE_READWRITE) != nullptr;
}

bool Guard(void* ptr, size_t size) {
  DWORD old;
  return VirtualProtect(ptr, size, PAGE_NOACCESS, &old) != 0;
}

bool Decommit(void* ptr, size_t size) {
  // MEM_RESET returns the contents without making the range inaccessible,
  // which keeps the POSIX meaning of Decommit.
  return VirtualAlloc(ptr, size, MEM_RESET, PAGE_READWRITE) != nullptr;
}

void DecommitRanges(const PageRange* ranges, size_t count, bool* decommitted) {
  for (size_t i = 0; i < count; ++i) decommitted[i] = Decommit(ranges[i].base, ranges[i].size);
}

// Committed pages fault in on touch; Windows has no call that makes
// anonymous ones resident ahead (PrefetchVirtualMemory reads files).
bool Populate(void*, size_t) { return false; }
void DisablePopulate() {}
bool PopulateInUse() { return false; }

void DisableBatchedDecommit() {}

bool BatchedDecommitInUse() { return false; }

bool Release(void* ptr, size_t size) {
  // VirtualFree can only release whole reservations; the allocator releases
  // exactly what it reserved.
  (void)size;
  return VirtualFree(ptr, 0, MEM_RELEASE) != 0;
}

MoveResult MovePages(void*, size_t, void*, size_t) { return MoveResult::kFailed; }
bool ResizePagesInPlace(void*, size_t, size_t) { return false; }

void* ReserveAt(void* at, size_t size, Charge /*charge*/, bool* taken) {
  *taken = false;
  void* p = VirtualAlloc(at, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  if (p != nullptr && p != at) {  // rounded down to the allocation granularity
    VirtualFree(p, 0, MEM_RELEASE);
    return nullptr;
  }
  return p;
}

void AdviseHugePages(void*, size_t) {
  // Large pages on Windows need a privilege and are never swapped: not used.
}

size_t ResidentBytes() {
  PROCESS_MEMORY_COUNTERS counters;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &counters, sizeof(counters))) return 0;
  return counters.WorkingSetSize;
}

size_t AddressSpaceBytes() {
  MEMORYSTATUSEX status;
  status.dwLength = sizeof(status);
  if (!GlobalMemoryStatusEx(&status)) return 0;
  return static_cast<size_t>(status.ullTotalVirtual - status.ullAvailVirtual);
}

uint64_t CoarseMonotonicMillis() { return GetTickCount64(); }

}  // namespace rulloc::platform
