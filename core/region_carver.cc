#include "core/region_carver.h"

#include "concurrency/spin_lock.h"
#include "platform/pages.h"

namespace rulloc::internal {
namespace {

// One huge page: where the system backs memory with huge pages on its own,
// each chunk is one.
constexpr size_t kChunkBytes = platform::kHugePageSize;

struct Chunk {
  SpinLock lock;
  char* next = nullptr;  // the part of the current chunk not cut yet
  char* end = nullptr;
};
constinit Chunk chunk;

}  // namespace

void RegionCarver::LockForFork() { chunk.lock.lock(); }
void RegionCarver::UnlockAfterFork() { chunk.lock.unlock(); }

void* RegionCarver::Carve(size_t size) {
#ifdef _WIN32
  return nullptr;
#endif
  if (kChunkBytes % size != 0) return nullptr;
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
      void* fresh = platform::Reserve(kChunkBytes, kChunkBytes, /*commit=*/true);
      if (fresh != nullptr) {
        chunk.next = static_cast<char*>(fresh);
        chunk.end = chunk.next + kChunkBytes;
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
