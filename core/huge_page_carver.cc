#include "core/huge_page_carver.h"

#include <atomic>

#include "concurrency/spin_lock.h"
#include "core/runtime_options.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

constinit std::atomic<size_t> small_region_bytes{0};

struct Chunk {
  SpinLock lock;
  char* next = nullptr;  // the part of the current chunk not cut yet
  char* end = nullptr;
};
constinit Chunk chunk;

}  // namespace

void HugePageCarver::Mapped(size_t size) {
  small_region_bytes.fetch_add(size, std::memory_order_relaxed);
}

void HugePageCarver::Unmapped(size_t size) {
  small_region_bytes.fetch_sub(size, std::memory_order_relaxed);
}

void HugePageCarver::LockForFork() { chunk.lock.lock(); }
void HugePageCarver::UnlockAfterFork() { chunk.lock.unlock(); }

void* HugePageCarver::Carve(size_t size) {
#ifdef _WIN32
  // VirtualFree releases whole reservations only: regions cannot share one.
  return nullptr;
#endif
  if (!runtime_options.huge_pages || runtime_options.hardened ||
      small_region_bytes.load(std::memory_order_relaxed) < kThresholdBytes ||
      platform::kHugePageSize % size != 0) {
    return nullptr;
  }
  char* leftover = nullptr;
  size_t leftover_bytes = 0;
  void* region = nullptr;
  {
    SpinLockHolder hold(chunk.lock);
    if (static_cast<size_t>(chunk.end - chunk.next) < size) {
      leftover = chunk.next;
      leftover_bytes = static_cast<size_t>(chunk.end - chunk.next);
      chunk.next = chunk.end = nullptr;
    }
    if (chunk.next == nullptr) {
      void* fresh = platform::Reserve(platform::kHugePageSize, platform::kHugePageSize, true);
      if (fresh != nullptr) {
        platform::AdviseHugePages(fresh, platform::kHugePageSize);
        chunk.next = static_cast<char*>(fresh);
        chunk.end = chunk.next + platform::kHugePageSize;
      }
    }
    if (chunk.next != nullptr) {
      region = chunk.next;
      chunk.next += size;
    }
  }
  // Unused tails (only when region sizes are mixed) go back to the OS.
  if (leftover_bytes != 0) platform::Release(leftover, leftover_bytes);
  return region;
}

}  // namespace rulloc::internal
